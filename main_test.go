package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// heavyDeps are packages cfs-runtime must not link: their initializers cost
// milliseconds at every start, and cfs-runtime is exec'd for every runtime
// call (state, kill, delete, ...). sigstore-go lives in the separate
// cfs-runtime-sigstore helper, containerd's gRPC API in cfs-runtime-engine.
var heavyDeps = regexp.MustCompile(`sigstore|protobuf|grpc|openapi|govalidator|containerregistry|opencontainers/runc|^go\.podman\.io/`)

// The cfs-runtime and cfs-runtime-mount binaries link none of the heavy
// packages; the helpers do (which shows the check can fail).
func TestNoHeavyDependencies(t *testing.T) {
	for _, bin := range []string{".", "./cmd/cfs-runtime-mount"} {
		if offenders := heavyPackages(t, heavyDeps, bin); len(offenders) > 0 {
			t.Fatalf("%s links %d heavy packages:\n%s", bin, len(offenders), strings.Join(offenders, "\n"))
		}
	}
	for bin, what := range map[string]string{"./cmd/cfs-runtime-sigstore": "sigstore-go", "./cmd/cfs-runtime-engine": "gRPC"} {
		if offenders := heavyPackages(t, heavyDeps, bin); len(offenders) == 0 {
			t.Fatalf("the dependency check finds nothing heavy in %s, which links %s", bin, what)
		}
	}
}

// toolsOnlyDeps are packages that only cfs-runtime's tools need (OCI
// import, the registry client (containers/image), fsck's progress bar,
// which links net/http, compression formats, urfave/cli) or that cost every start in their initializers
// (golang.org/x/sys/cpu runs CPUID, which traps in a VM): the runtime
// binary must not link them.
var toolsOnlyDeps = regexp.MustCompile(`/ociimage$|/ociimage/registry$|^go\.podman\.io/|opencontainers/image-spec|opencontainers/go-digest|klauspost|progressbar|^net/http$|urfave/cli|^golang.org/x/sys/cpu$|^compress/`)

// cfs-runtime-mount (create, run, delete) links none of the tools'
// packages; cfs-runtime-tools does.
func TestRuntimeBinaryDependencies(t *testing.T) {
	for _, bin := range []string{".", "./cmd/cfs-runtime-mount"} {
		if offenders := heavyPackages(t, toolsOnlyDeps, bin); len(offenders) > 0 {
			t.Fatalf("%s links %d packages only its tools need:\n%s", bin, len(offenders), strings.Join(offenders, "\n"))
		}
	}
	if offenders := heavyPackages(t, toolsOnlyDeps, "./cmd/cfs-runtime-tools"); len(offenders) < 5 {
		t.Fatalf("the check finds only %d tools-only packages in cfs-runtime-tools: %v", len(offenders), offenders)
	}
}

// heavyPackages lists the packages matching heavy that target (a package
// pattern for go list, then go list flags) links, each with the packages
// that import it.
func heavyPackages(t *testing.T, heavy *regexp.Regexp, target string, flags ...string) []string {
	t.Helper()
	args := append(append([]string{"list", "-deps", "-json=ImportPath,Imports"}, flags...), target)
	out, err := exec.Command("go", args...).Output()
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
		if !heavy.MatchString(p.ImportPath) {
			continue
		}
		// Name who pulls it in, so the fix is obvious.
		var by []string
		for _, q := range all {
			for _, imp := range q.Imports {
				if imp == p.ImportPath && !heavy.MatchString(q.ImportPath) {
					by = append(by, q.ImportPath)
				}
			}
		}
		offenders = append(offenders, p.ImportPath+" (imported by "+strings.Join(by, ", ")+")")
	}
	return offenders
}

// verifierDeps are what only a verified create, run and delete need:
// signatures, the store, mounts, the kernel's fs-verity. The front, exec'd
// for every runtime call, links none of them (it execs cfs-runtime-mount
// for those calls); it reads a bundle and the policy file (attest/policy)
// to start unsigned containers itself. No part of go-toml either, its
// parser included: internal/plaintoml scans the plain subset itself. Nor
// os/exec and context, whose initialisation every call would pay: the
// front only execs (internal/runtimestate runs the runtime as a child).
// Nor encoding/json: the front loads only plain bundles (bundle.Load
// without a bundle.JSON) and writes its JSON lines with internal/jsonstr.
var verifierDeps = regexp.MustCompile(`/(attest|composefs(/store)?|mount|verity|hooks|internal/wrapper|internal/runtimestate|internal/bundle/bundlejson)$|^crypto/(x509|ecdsa|rsa|ed25519)$|^log/slog$|go-toml/v2(/|$)|runtime-spec/specs-go$|^regexp$|^os/exec$|^context$|^encoding/json$`)

func TestFrontDependencies(t *testing.T) {
	if offenders := heavyPackages(t, verifierDeps, "."); len(offenders) > 0 {
		t.Fatalf("the cfs-runtime front links %d packages only cfs-runtime-mount needs:\n%s", len(offenders), strings.Join(offenders, "\n"))
	}
	if offenders := heavyPackages(t, verifierDeps, "./cmd/cfs-runtime-mount"); len(offenders) < 5 {
		t.Fatalf("the check finds only %d of them in cfs-runtime-mount: %v", len(offenders), offenders)
	}
}

// docs/architecture.md lists the packages so that imports point downward:
// each package imports only packages listed below it (or in its own row),
// and every package of the module is listed.
func TestArchitectureListsPackagesInImportOrder(t *testing.T) {
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## Packages")
	table, _, _ = strings.Cut(table, "\n## ")
	row := map[string]int{} // package → row
	for i, m := range regexp.MustCompile("(?m)^\\| `([^`]+)`").FindAllStringSubmatch(table, -1) {
		name, _, _ := strings.Cut(m[1], " ")
		if inner, ok := strings.CutPrefix(name, "internal/{"); ok {
			for _, n := range strings.Split(strings.TrimSuffix(inner, "}"), ",") {
				row["internal/"+n] = i
			}
			continue
		}
		row[name] = i
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/cfs-runtime/cfs-runtime/"
	// Programs, tests' tools and packages internal to a listed one are
	// not rows of their own.
	skip := regexp.MustCompile(`^(cmd/|tests/|contrib$|internal/config/|attest/internal/|attest/sigstorebundle$|ociimage/ocitest$)`)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		p, ok := strings.CutPrefix(fields[0], mod)
		if !ok || skip.MatchString(p) {
			continue
		}
		i, listed := row[p]
		if !listed {
			t.Errorf("docs/architecture.md does not list package %s", p)
			continue
		}
		for _, imp := range fields[1:] {
			q, ok := strings.CutPrefix(imp, mod)
			if j, listed := row[q]; ok && listed && j < i {
				t.Errorf("docs/architecture.md: %s imports %s, which is listed above it", p, q)
			}
		}
	}
}

// envChange is a call that changes the process's environment.
var envChange = regexp.MustCompile(`\b(os|syscall|unix)\.(Setenv|Unsetenv|Clearenv)\(`)

// The runtime binaries pass on and read the environment they were started
// with through package environ, which does not see changes made by
// os.Setenv and the like: nothing they link may make one.
func TestNothingChangesTheEnvironment(t *testing.T) {
	if !envChange.MatchString(`_ = os.Setenv("A", "1")`) {
		t.Fatal("the pattern finds no os.Setenv")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .GoFiles}} {{$.Dir}}/{{.}}{{end}}`, ".", "./cmd/cfs-runtime-mount").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if !strings.HasPrefix(f[0], "github.com/cfs-runtime/cfs-runtime") {
			continue
		}
		for _, file := range f[1:] {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if m := envChange.Find(src); m != nil {
				t.Errorf("%s calls %s: package environ would not see the change", file, m)
			}
		}
	}
}
