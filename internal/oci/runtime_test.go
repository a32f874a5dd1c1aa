package oci

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
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

// ExecFn names the file this process runs (the test binary), as
// /proc/self/exe does, by the path it was exec'd by.
func TestExecFnIsThisExecutable(t *testing.T) {
	p := ExecFn()
	if p == "" {
		t.Fatal("no AT_EXECFN in the auxiliary vector")
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, self) {
		t.Fatalf("ExecFn() = %s, not /proc/self/exe", p)
	}
}

// Locate never chooses the executable self names: configured, it is
// refused; among the candidates, it is passed over. The first of the self
// paths that can be stat'ed counts (the front passes ExecFn, which may name
// a closed descriptor, then /proc/self/exe).
func TestLocateNeverChoosesSelf(t *testing.T) {
	dir := t.TempDir()
	me, other := filepath.Join(dir, "cfs-runtime"), filepath.Join(dir, "runc")
	for _, p := range []string{me, other} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "runc-link")
	if err := os.Symlink(me, link); err != nil {
		t.Fatal(err)
	}
	self := []string{dir + "/closed-fd", me}
	if _, err := Locate(link, nil, self...); !errors.Is(err, ErrRuntimeIsSelf) {
		t.Errorf("configured as a link to itself: %v, want %v", err, ErrRuntimeIsSelf)
	}
	if got, err := Locate("", []string{link, me, other}, self...); err != nil || got != other {
		t.Errorf("candidates: %q, %v; want %s", got, err, other)
	}
	if got, err := Locate(link, nil); err != nil || got != link {
		t.Errorf("without self: %q, %v; want %s", got, err, link)
	}
}

// lookPath finds what exec.LookPath finds (the front links no os/exec):
// the same file, the same refusal of one found relative to the working
// directory (exec.ErrDot), nothing where it finds nothing.
func TestLookPathAgreesWithExec(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a", "b", "c/runc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a/runc", 0o644) // not executable: passed over
	write("b/runc", 0o755)
	write("b/crun", 0o755)
	write("runc", 0o755) // in the working directory
	t.Chdir(dir)
	for _, tc := range []struct{ path, name string }{
		{dir + "/a:" + dir + "/b", "runc"},
		{dir + "/c:" + dir + "/b", "runc"}, // c/runc is a directory
		{dir + "/a", "runc"},
		{":" + dir + "/b", "runc"}, // empty element: the working directory
		{"." + ":" + dir + "/b", "runc"},
		{dir + "/b", "youki"},
		{dir + "/b", "b/crun"}, // a slash: taken as it is
		{dir + "/b", "a/runc"},
		{dir + "/b", "./runc"},
		{"", "runc"},
	} {
		t.Run(tc.path+" "+tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			want, werr := exec.LookPath(tc.name)
			got, err := lookPath(tc.name)
			switch {
			case errors.Is(werr, exec.ErrDot):
				if !errors.Is(err, ErrRelativeRuntime) {
					t.Errorf("exec.LookPath: %q, %v; lookPath: %q, %v", want, werr, got, err)
				}
			case werr != nil:
				if err == nil {
					t.Errorf("exec.LookPath: %v; lookPath found %q", werr, got)
				}
			case err != nil || got != want:
				t.Errorf("exec.LookPath: %q; lookPath: %q, %v", want, got, err)
			}
		})
	}
}
