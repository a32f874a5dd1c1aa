package wrapper

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

// The runtime binary and the tools binary. cfs-runtime is exec'd for every
// runtime call (state, kill, delete, ...), so each package it links costs
// every container start its initialisation and page faults. It therefore
// holds only the runtime path; cfs-runtime-tools, installed next to it,
// holds every other command (cmd/cfs-runtime-tools), and cfs-runtime execs
// it for them. Users only ever type cfs-runtime.
const (
	toolsBinaryName = "cfs-runtime-tools"
	// toolsBinaryEnv names another tools binary (tests, unusual installs).
	toolsBinaryEnv = "CFS_RUNTIME_TOOLS"
)

// ErrNoToolsBinary: cfs-runtime cannot find cfs-runtime-tools.
var ErrNoToolsBinary = errors.New("cfs-runtime-tools not found (make install puts it next to cfs-runtime; $CFS_RUNTIME_TOOLS names another)")

// ToolsBinaryCommands are the other commands (and aliases): cfs-runtime
// hands them to cfs-runtime-tools. Its own are RuntimePathCommands;
// cfs-runtime-tools' TestToolsBinaryCommands keeps the two lists complete.
var ToolsBinaryCommands = []string{"completion", "digest", "fsck", "gc", "images", "import", "info", "mkimage", "policy", "seal", "sign", "verify", "verity"}

// needsToolsBinary reports whether cfs-runtime must hand the invocation to
// cfs-runtime-tools: one of the tools' commands, or cfs-runtime's own help
// (which lists every command, then the runtime's).
func needsToolsBinary(inv *oci.Invocation) bool {
	if inv.Command == "" {
		return wantsHelp(inv)
	}
	return slices.Contains(ToolsBinaryCommands, inv.Command)
}

// toolsBinaryPath resolves cfs-runtime-tools: $CFS_RUNTIME_TOOLS, else
// next to this executable.
func toolsBinaryPath() (string, error) {
	if p := os.Getenv(toolsBinaryEnv); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", toolsBinaryName, err)
	}
	return filepath.Join(filepath.Dir(self), toolsBinaryName), nil
}

// execToolsBinary replaces this process with cfs-runtime-tools, argv and
// environment untouched. It returns only on failure.
func execToolsBinary(inv *oci.Invocation) int {
	path, err := toolsBinaryPath()
	if err == nil {
		argv := append([]string{path}, os.Args[1:]...)
		err = syscall.Exec(path, argv, os.Environ())
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", ErrNoToolsBinary, path)
		} else {
			err = fmt.Errorf("exec %s: %w", path, err)
		}
	}
	what := "cfs-runtime's help"
	if inv.Command != "" {
		what = fmt.Sprintf("the %q command", inv.Command)
	}
	fmt.Fprintf(os.Stderr, "cfs-runtime: %s needs %s: %v\n", what, toolsBinaryName, err)
	return 1
}
