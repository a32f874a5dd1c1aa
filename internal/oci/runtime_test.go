package oci

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
)

// A runtime that cannot be found or run is refused in words podman does
// not misread ("no such file or directory" would become "OCI runtime
// attempted to invoke a command that was not found", "permission denied"
// "OCI permission denied"), naming the file; the errno stays reachable.
func TestRuntimeRefusalsAreWorded(t *testing.T) {
	dir := t.TempDir()
	noExec := filepath.Join(dir, "runc")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noInterp := filepath.Join(dir, "crun")
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	for _, tc := range []struct {
		name string
		err  func() error
		want string
		is   error
	}{
		{"missing", func() error { _, err := Locate(dir+"/none", nil, ""); return err },
			"no OCI runtime found: configured runtime " + dir + "/none does not exist", fs.ErrNotExist},
		{"not in PATH", func() error { _, err := Locate("no-such-runtime", nil, ""); return err },
			`no OCI runtime found: configured runtime "no-such-runtime": no executable of that name in $PATH (` + dir + ")", ErrRuntimeNotFound},
		// Exec returns only when execve fails: never replaces the test
		{"exec: not executable", func() error { return NewRuntime(noExec).Exec(nil) },
			"runtime " + noExec + " is not executable (EACCES; mode -rw-r--r--", syscall.EACCES},
		{"exec: interpreter missing", func() error { return NewRuntime(noInterp).Exec(nil) },
			"runtime " + noInterp + " does not exist, or the interpreter it names (ELF interpreter or #! line) does not", fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s...", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("%v is not %v", err, tc.is)
			}
			if p := fserr.Misreads(err.Error()); p != "" {
				t.Errorf("%q contains %q", err, p)
			}
		})
	}
}
