package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// heavyDeps are packages cfs-runtime must not link: their initializers cost
// milliseconds at every start, and cfs-runtime is exec'd for every runtime
// call (state, kill, delete, ...). sigstore-go lives in the separate
// cfs-runtime-sigstore helper.
var heavyDeps = regexp.MustCompile(`sigstore|protobuf|grpc|openapi|govalidator|containerregistry|opencontainers/runc`)

// The cfs-runtime binary links none of the heavy packages; the
// cfs-runtime-sigstore helper does (which shows the check can fail).
func TestNoHeavyDependencies(t *testing.T) {
	if offenders := heavyPackages(t, "."); len(offenders) > 0 {
		t.Fatalf("cfs-runtime links %d heavy packages:\n%s", len(offenders), strings.Join(offenders, "\n"))
	}
	if offenders := heavyPackages(t, "./cmd/cfs-runtime-sigstore"); len(offenders) == 0 {
		t.Fatal("the dependency check finds nothing heavy in cfs-runtime-sigstore, which links sigstore-go")
	}
}

// heavyPackages lists the heavy packages that pkg links, each with the
// packages that import it (target: a package pattern for go list).
func heavyPackages(t *testing.T, target string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", target).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
	}
	var all []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	if len(all) < 10 {
		t.Fatalf("go list -deps found only %d packages", len(all))
	}
	var offenders []string
	for _, p := range all {
		if !heavyDeps.MatchString(p.ImportPath) {
			continue
		}
		// Name who pulls it in, so the fix is obvious.
		var by []string
		for _, q := range all {
			for _, imp := range q.Imports {
				if imp == p.ImportPath && !heavyDeps.MatchString(q.ImportPath) {
					by = append(by, q.ImportPath)
				}
			}
		}
		offenders = append(offenders, p.ImportPath+" (imported by "+strings.Join(by, ", ")+")")
	}
	return offenders
}
