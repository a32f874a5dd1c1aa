// Package fserr words failed file accesses for the people who read
// cfs-runtime's refusals, and keeps container engines from misreading them.
//
// podman (4.3, libpod's getOCIRuntimeError) pattern-matches the error text of
// an OCI runtime: a line containing "permission denied" or "operation not
// permitted" becomes "OCI permission denied", and one containing "no such
// file or directory", "executable file not found in" or "open executable"
// becomes "OCI runtime attempted to invoke a command that was not found"
// (exit status 127). Those are the texts of ENOENT, EACCES, EPERM and
// exec.ErrNotFound, so a cfs-runtime refusal such as a policy naming a key
// file that does not exist reached podman's user as the wrong problem.
//
// New wraps such an error in an Error whose text names the file and says
// what is wrong with it ("key file /etc/cfs-runtime/x.pub does not
// exist"), while errors.Is still finds the errno (fs.ErrNotExist works).
// Scrub rewrites what remains of those phrases in a finished message, as
// the last step before a refusal is printed.
package fserr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Misread are the phrases container engines map to another error than the
// one cfs-runtime reports (lower case; podman matches case-insensitively).
var Misread = []string{
	"no such file or directory",
	"permission denied",
	"operation not permitted",
	"executable file not found in",
	"open executable",
}

// Misreads returns the first phrase of Misread that s contains, "" if none.
func Misreads(s string) string {
	l := strings.ToLower(s)
	for _, p := range Misread {
		if strings.Contains(l, p) {
			return p
		}
	}
	return ""
}

// scrubbed is what each phrase of Misread becomes in Scrub: the errno's
// name says the same to anyone who needs it.
var scrubbed = [...]string{
	"does not exist (ENOENT)",
	"access refused (EACCES)",
	"not allowed (EPERM)",
	"not found as an executable in",
	"opening the executable",
}

// Scrub rewrites every phrase of Misread in msg (in any letter case).
func Scrub(msg string) string {
	if Misreads(msg) == "" {
		return msg
	}
	for i, p := range Misread {
		for {
			at := strings.Index(strings.ToLower(msg), p)
			if at < 0 {
				break
			}
			msg = msg[:at] + scrubbed[i] + msg[at+len(p):]
		}
	}
	return msg
}

// Scrubbed returns err with Scrub applied to its text; errors.Is and
// errors.As see err. nil stays nil.
func Scrubbed(err error) error {
	if err == nil || Misreads(err.Error()) == "" {
		return err
	}
	return &scrubbedError{err}
}

type scrubbedError struct{ err error }

func (e *scrubbedError) Error() string { return Scrub(e.err.Error()) }
func (e *scrubbedError) Unwrap() error { return e.err }

// Error is a failed access to a file: what the file is for, the path it
// was named by, and the error of the system call (a *fs.PathError,
// *os.SyscallError, syscall.Errno, ...), which Unwrap returns.
type Error struct {
	What string // "key file", "bundle directory", ...; "" for none
	Path string
	Err  error
}

// New returns an *Error for err, or nil if err is nil.
func New(what, path string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{What: what, Path: path, Err: err}
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	name := e.Path
	if e.What != "" {
		name = e.What + " " + e.Path
	}
	// The call may have failed on another path: a parent directory, a
	// symlink's target.
	op, at := "", ""
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		op = pe.Op
		if pe.Path != e.Path {
			at = pe.Path
		}
	}
	var errno syscall.Errno
	if !errors.As(e.Err, &errno) {
		return name + ": " + Scrub(e.Err.Error())
	}
	exec := op == "fork/exec" || op == "exec"
	switch errno {
	case syscall.ENOENT:
		switch {
		case exec:
			return name + " does not exist, or the interpreter it names (ELF interpreter or #! line) does not"
		case op == "mkdir" || op == "mkdirat":
			return name + " cannot be created: its parent directory does not exist"
		case at != "":
			return name + " does not exist (" + at + " does not exist)"
		}
		return name + " does not exist"
	case syscall.EACCES:
		if exec {
			return name + " is not executable (EACCES" + describe(e.Path, "") + "; it needs execute permission, on a filesystem not mounted noexec)"
		}
		verb := "readable"
		switch op {
		case "mkdir", "mkdirat", "create":
			verb = "writable"
		}
		return fmt.Sprintf("%s is not %s by uid %d (EACCES%s)", name, verb, os.Geteuid(), describe(e.Path, at))
	case syscall.EPERM:
		switch {
		case op == "":
			return name + ": refused by the kernel (EPERM)"
		case at != "":
			return name + ": " + op + " " + at + " refused by the kernel (EPERM)"
		}
		return name + ": " + op + " refused by the kernel (EPERM)"
	}
	if op == "" {
		return name + ": " + errno.Error()
	}
	if at != "" {
		return name + ": " + op + " " + at + ": " + errno.Error()
	}
	return name + ": " + op + ": " + errno.Error()
}

// describe says the mode and owner of path (or of at, the path the call
// failed on, when set): "; mode -rw-------, owner uid 1000", "" when it
// cannot be read either.
func describe(path, at string) string {
	if at != "" {
		path = at
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return ""
	}
	s := "; "
	if at != "" {
		s += at + ": "
	}
	s += "mode " + fi.Mode().String()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprintf(", owner uid %d", st.Uid)
	}
	return s
}
