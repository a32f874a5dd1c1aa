package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cfs-runtime/cfs-runtime/internal/environ"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
)

// DefaultRuntimes is where cfs-runtime looks for the real runtime when the
// configuration names none: the first that exists and is not cfs-runtime.
var DefaultRuntimes = []string{
	"/usr/bin/crun",
	"/usr/sbin/runc",
	"/usr/bin/runc",
	"/usr/local/sbin/runc",
	"/usr/local/bin/runc",
	"/usr/local/bin/crun",
}

var (
	// ErrRuntimeNotFound means no real runtime exists where we looked.
	ErrRuntimeNotFound = errors.New("no OCI runtime found")
	// ErrRuntimeIsSelf means the configured runtime is cfs-runtime itself,
	// which would exec itself forever.
	ErrRuntimeIsSelf = errors.New("runtime is cfs-runtime itself")
	// ErrRelativeRuntime means a runtime configured by name was found in
	// $PATH only relative to the working directory (an empty or "."
	// element), which would depend on where the engine runs cfs-runtime.
	ErrRelativeRuntime = errors.New("a runtime found relative to the working directory is not run")
)

// Runtime runs the real OCI runtime.
type Runtime interface {
	// Exec replaces the current process with the runtime, argv[1:] = args.
	// It returns only on failure.
	Exec(args []string) error
	// Path is the runtime's absolute path.
	Path() string
}

type execRuntime struct{ path string }

// NewRuntime returns a Runtime that execs the binary at path.
func NewRuntime(path string) Runtime { return execRuntime{path: path} }

func (r execRuntime) Path() string { return r.path }

// Exec keeps the PID, environment and every open fd, so LISTEN_PID,
// --preserve-fds, NOTIFY_SOCKET and --console-socket keep working. The
// environment is the one the process was started with (package environ:
// what os.Environ would return, without its cost to the front).
func (r execRuntime) Exec(args []string) error {
	argv := append([]string{r.path}, args...)
	if err := syscall.Exec(r.path, argv, environ.Environ()); err != nil {
		return fserr.New("runtime", r.path, &fs.PathError{Op: "exec", Path: r.path, Err: err})
	}
	return nil
}

// Locate returns the real runtime: configured (an absolute path) when set,
// otherwise the first of candidates that exists. cfs-runtime's own
// executable is never chosen: self names it, the first of those paths
// that can be stat'ed counts (none given: no such check, for callers that
// only report the runtime).
func Locate(configured string, candidates []string, self ...string) (string, error) {
	var selfInfo os.FileInfo
	for _, p := range self {
		if fi, err := os.Stat(p); p != "" && err == nil {
			selfInfo = fi
			break
		}
	}
	isSelf := func(fi os.FileInfo) bool { return selfInfo != nil && os.SameFile(fi, selfInfo) }
	if configured != "" {
		if !strings.HasPrefix(configured, "/") {
			p, err := lookPath(configured)
			if err != nil {
				return "", fmt.Errorf("%w: configured runtime %q: %w", ErrRuntimeNotFound, configured, err)
			}
			configured = p
		}
		fi, err := os.Stat(configured)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrRuntimeNotFound, fserr.New("configured runtime", configured, err))
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: configured runtime %s is not an executable file", ErrRuntimeNotFound, configured)
		}
		if isSelf(fi) {
			return "", fmt.Errorf("%w: configured runtime %s; set runtime in the configuration to the real runc or crun", ErrRuntimeIsSelf, configured)
		}
		return configured, nil
	}
	for _, c := range candidates {
		fi, err := os.Stat(c)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 || isSelf(fi) {
			continue
		}
		return c, nil
	}
	return "", fmt.Errorf("%w: looked in %s; set runtime in the configuration", ErrRuntimeNotFound, strings.Join(candidates, ", "))
}

// lookPath finds a runtime configured by name in $PATH, with
// exec.LookPath's rules (a name with a slash is taken as it is; an empty
// element of $PATH is the working directory, and an executable found
// relative to it is refused, as Go refuses it since 1.19) but without
// package os/exec, which the front would link only for this: it and
// package context cost every runtime call their initialisation. Its
// errors are worded for the configuration ("no such file or directory"
// would be read by podman as a missing container command).
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if err := isExecutable(name); err != nil {
			return "", fserr.Scrubbed(err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) != nil {
			continue
		}
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("found as %s, relative to the working directory: %w", p, ErrRelativeRuntime)
		}
		return p, nil
	}
	return "", fmt.Errorf("no executable of that name in $PATH (%s)", os.Getenv("PATH"))
}

// isExecutable: a file that is not a directory, with an execute bit.
func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: fs.ErrPermission}
	}
	return nil
}
