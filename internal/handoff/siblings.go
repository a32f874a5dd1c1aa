package handoff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// cfs-runtime is three programs installed side by side, so that each call
// pays only for what it runs: cfs-runtime itself is exec'd for every
// runtime call (state, kill, start, ...), and every package it links costs
// each of them its initialisation and page faults. It therefore links only
// argv reading, the configuration and exec (this package), and execs
// cfs-runtime-mount for what verifies or mounts (create, run, delete, and
// the poststop cleanup and hook mode that run along with containers) and
// cfs-runtime-tools for every other command. Users only ever type
// cfs-runtime.

// Sibling is another cfs-runtime program, installed next to cfs-runtime.
type Sibling struct {
	// Name is the file name, Env the variable that names another path
	// (tests, unusual installs).
	Name, Env string
}

var (
	// Mount is cfs-runtime-mount: the runtime path (internal/wrapper).
	Mount = Sibling{"cfs-runtime-mount", "CFS_RUNTIME_MOUNT"}
	// Tools is cfs-runtime-tools (cmd/cfs-runtime-tools).
	Tools = Sibling{"cfs-runtime-tools", "CFS_RUNTIME_TOOLS"}
)

// ErrNoSibling: cfs-runtime cannot find one of its other programs.
var ErrNoSibling = errors.New("not found")

// ToolsBinaryCommands are the commands (and aliases) cfs-runtime hands to
// cfs-runtime-tools. RuntimePathCommands are cfs-runtime-mount's own.
// cfs-runtime-tools' TestToolsBinaryCommands keeps the two lists equal to
// its commands.
var (
	ToolsBinaryCommands = []string{"audit", "completion", "digest", "doctor", "fsck", "gc", "images", "import", "info", "mkimage", "policy", "revoke", "seal", "sign", "verify", "verity"}
	RuntimePathCommands = []string{"cleanup", "hook"}
)

// needsTools reports whether inv is for cfs-runtime-tools: one of its
// commands, or cfs-runtime's own help (which lists every command, then the
// runtime's).
func needsTools(inv *oci.Invocation) bool {
	if inv.Command == "" {
		return WantsHelp(inv)
	}
	return slices.Contains(ToolsBinaryCommands, inv.Command)
}

// Path resolves the sibling: $Env, else next to this executable.
func (s Sibling) Path() (string, error) {
	if p := os.Getenv(s.Env); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", s.Name, err)
	}
	return filepath.Join(filepath.Dir(self), s.Name), nil
}

// Exec replaces this process with the sibling, argv (os.Args[1:]: with
// cfs-runtime's own options) and environment untouched, so that it reads
// the same command line. It returns only on failure.
func (s Sibling) Exec(inv *oci.Invocation) int {
	path, err := s.Path()
	if err == nil {
		argv := append([]string{path}, os.Args[1:]...)
		err = syscall.Exec(path, argv, os.Environ())
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%s %w (make install puts it next to cfs-runtime; $%s names another): %s", s.Name, ErrNoSibling, s.Env, path)
		} else {
			err = fmt.Errorf("exec %s: %w", path, err)
		}
	}
	what := "cfs-runtime's help"
	if inv.Command != "" {
		what = fmt.Sprintf("the %q command", inv.Command)
	}
	return Fail(inv, fmt.Errorf("%s needs %s: %w", what, s.Name, err))
}
