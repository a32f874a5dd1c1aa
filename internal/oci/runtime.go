package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

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
// --preserve-fds, NOTIFY_SOCKET and --console-socket keep working.
func (r execRuntime) Exec(args []string) error {
	argv := append([]string{r.path}, args...)
	if err := syscall.Exec(r.path, argv, os.Environ()); err != nil {
		return fserr.New("runtime", r.path, &fs.PathError{Op: "exec", Path: r.path, Err: err})
	}
	return nil
}

// Locate returns the real runtime: configured (an absolute path) when set,
// otherwise the first of candidates that exists. self is cfs-runtime's own
// executable, which is never chosen.
func Locate(configured string, candidates []string, self string) (string, error) {
	selfInfo, _ := os.Stat(self)
	isSelf := func(fi os.FileInfo) bool { return selfInfo != nil && os.SameFile(fi, selfInfo) }
	if configured != "" {
		if !strings.HasPrefix(configured, "/") {
			p, err := exec.LookPath(configured)
			if err != nil {
				if errors.Is(err, exec.ErrNotFound) {
					// Not exec.ErrNotFound's text, which podman reads as
					// a missing container command.
					return "", fmt.Errorf("%w: configured runtime %q: no executable of that name in $PATH (%s)", ErrRuntimeNotFound, configured, os.Getenv("PATH"))
				}
				return "", fmt.Errorf("%w: configured runtime %q: %w", ErrRuntimeNotFound, configured, fserr.Scrubbed(err))
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
