package fserr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// No errno, system call or path shape makes an Error say what podman
// misreads, and every one still unwraps to its errno.
func TestNoErrorTextIsMisread(t *testing.T) {
	ops := []string{"", "open", "stat", "lstat", "read", "mkdir", "mkdirat", "create", "rename", "fork/exec", "exec", "readlink"}
	n := 0
	for errno := syscall.Errno(1); errno < 134; errno++ {
		for _, op := range ops {
			for _, at := range []string{"/etc/cfs-runtime/x.pub", "/etc/cfs-runtime"} {
				var cause error = errno
				if op != "" {
					cause = &fs.PathError{Op: op, Path: at, Err: errno}
				}
				for _, what := range []string{"", "key file"} {
					err := New(what, "/etc/cfs-runtime/x.pub", cause)
					n++
					if p := Misreads(err.Error()); p != "" {
						t.Errorf("errno %d (%v), op %q: %q contains %q", int(errno), errno, op, err, p)
					}
					if !errors.Is(err, errno) {
						t.Errorf("errno %d, op %q: %v does not unwrap to its errno", int(errno), op, err)
					}
					if errno == syscall.ENOENT && !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("op %q: %v is not fs.ErrNotExist", op, err)
					}
					// Wrapped further, as callers do: still found.
					if !errors.Is(fmt.Errorf("invalid trust policy: %w", err), errno) {
						t.Errorf("errno %d: lost when wrapped", int(errno))
					}
				}
			}
		}
	}
	if n < 5000 {
		t.Fatalf("only %d combinations checked", n)
	}
}

// What the errors of real calls read like.
func TestWording(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "x.pub")
	_, err := os.ReadFile(missing)
	if got, want := New("key file", missing, err).Error(), "key file "+missing+" does not exist"; got != want {
		t.Errorf("missing file:\n got %s\nwant %s", got, want)
	}
	// lstat of a missing parent directory (what filepath.EvalSymlinks returns)
	inMissing := filepath.Join(dir, "keys", "x.pub")
	_, err = filepath.EvalSymlinks(inMissing)
	if got, want := New("key file", inMissing, err).Error(), "key file "+inMissing+" does not exist ("+filepath.Join(dir, "keys")+" does not exist)"; got != want {
		t.Errorf("missing directory:\n got %s\nwant %s", got, want)
	}
	if got, want := New("", missing, err).Error(), missing+" does not exist ("+filepath.Join(dir, "keys")+" does not exist)"; got != want {
		t.Errorf("without what:\n got %s\nwant %s", got, want)
	}
	err = os.Mkdir(filepath.Join(dir, "a", "b"), 0o700)
	if got, want := New("state directory", filepath.Join(dir, "a", "b"), err).Error(), "state directory "+filepath.Join(dir, "a", "b")+" cannot be created: its parent directory does not exist"; got != want {
		t.Errorf("mkdir:\n got %s\nwant %s", got, want)
	}

	// exec of a file without execute permission: EACCES, also for root
	script := filepath.Join(dir, "helper")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = exec.Command(script).Run()
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("exec of a 0644 file: %v", err)
	}
	if got, want := New("sigstore helper", script, err).Error(), fmt.Sprintf("sigstore helper %s is not executable (EACCES; mode -rw-r--r--, owner uid %d; it needs execute permission, on a filesystem not mounted noexec)", script, os.Geteuid()); got != want {
		t.Errorf("exec EACCES:\n got %s\nwant %s", got, want)
	}
	// exec of a script whose interpreter does not exist: ENOENT
	noInterp := filepath.Join(dir, "runtime")
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = exec.Command(noInterp).Run()
	if got, want := New("runtime", noInterp, err).Error(), "runtime "+noInterp+" does not exist, or the interpreter it names (ELF interpreter or #! line) does not"; got != want {
		t.Errorf("exec ENOENT:\n got %s\nwant %s", got, want)
	}

	// EACCES on open (root gets it from security modules, FUSE, user
	// namespaces): the mode and owner are said
	acc := New("key file", script, &fs.PathError{Op: "open", Path: script, Err: syscall.EACCES}).Error()
	if want := fmt.Sprintf("key file %s is not readable by uid %d (EACCES; mode -rw-r--r--, owner uid %d)", script, os.Geteuid(), os.Geteuid()); acc != want {
		t.Errorf("open EACCES:\n got %s\nwant %s", acc, want)
	}
	if got, want := New("state directory", "/s/x", &fs.PathError{Op: "mkdir", Path: "/s/x", Err: syscall.EPERM}).Error(), "state directory /s/x: mkdir refused by the kernel (EPERM)"; got != want {
		t.Errorf("mkdir EPERM:\n got %s\nwant %s", got, want)
	}
	if got, want := New("configuration file", dir, &fs.PathError{Op: "read", Path: dir, Err: syscall.EISDIR}).Error(), "configuration file "+dir+": read: is a directory"; got != want {
		t.Errorf("EISDIR:\n got %s\nwant %s", got, want)
	}
	if New("x", "/p", nil) != nil {
		t.Error("New of a nil error is not nil")
	}
	// Not an errno: the text is kept, scrubbed.
	if got, want := New("helper", "/h", errors.New("exec: \"h\": executable file not found in $PATH")).Error(), `helper /h: exec: "h": not found as an executable in $PATH`; got != want {
		t.Errorf("no errno:\n got %s\nwant %s", got, want)
	}
}

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"open /x: no such file or directory":                                   "open /x: does not exist (ENOENT)",
		"mkdir /x: Permission denied; stat /y: permission denied":              "mkdir /x: access refused (EACCES); stat /y: access refused (EACCES)",
		"mount: operation not permitted":                                       "mount: not allowed (EPERM)",
		`exec: "runc": executable file not found in $PATH`:                     `exec: "runc": not found as an executable in $PATH`,
		"open executable: x":                                                   "opening the executable: x",
		"composefs digest mismatch: image I measures X, but the signed digest": "composefs digest mismatch: image I measures X, but the signed digest",
	} {
		got := Scrub(in)
		if got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
		if Misreads(got) != "" {
			t.Errorf("Scrub(%q) = %q still contains %q", in, got, Misreads(got))
		}
	}
	base := &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}
	err := Scrubbed(fmt.Errorf("policy: %w", base))
	if err.Error() != "policy: open /x: does not exist (ENOENT)" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Scrubbed: %q, errors.Is(ErrNotExist) %v", err, errors.Is(err, fs.ErrNotExist))
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != base {
		t.Error("Scrubbed hides the error chain from errors.As")
	}
	clean := errors.New("fine")
	if Scrubbed(clean) != clean || Scrubbed(nil) != nil {
		t.Error("Scrubbed changes an error without misread phrases, or nil")
	}
	if !strings.Contains(strings.Join(Misread, "|"), "no such file or directory") {
		t.Error("Misread lost ENOENT's text")
	}
}
