// Package runtimestate answers whether the real runtime has a container,
// for delete and cleanup (cfs-runtime-mount), reading the runtime's own
// state where its layout is known. It is apart from package oci, which the
// front links, because asking an unknown runtime runs it (os/exec), and
// the front runs nothing but exec.
package runtimestate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// stateFile returns, for a runtime whose state layout is known (by the
// executable's base name), the file that exists in <root>/<id>/ exactly
// while the runtime knows the container, and the root it uses when it
// runs as real root without --root. (A switch, not a map: a package-level
// map is built by the package's init in every process that links it.)
func stateFile(base string) (file, defaultRoot string, ok bool) {
	switch base {
	case "runc":
		return "state.json", "/run/runc", true
	case "crun":
		return "status", "/run/crun", true
	}
	return "", "", false
}

// Knows reports whether the runtime at path has a container with that id
// (an id that is a single path element). inv is the invocation whose
// global options (--root) select the runtime's state. For runc and crun it
// looks for the container's state file, as `runtime state` would: asking
// the runtime would cost each delete a second runtime start. Other
// runtimes, and runc/crun running rootless (whose root depends on
// XDG_RUNTIME_DIR and user namespaces), are asked with `state`.
func Knows(path string, inv *oci.Invocation, id string) bool {
	if file, defaultRoot, ok := stateFile(filepath.Base(path)); ok {
		root := inv.Global["root"]
		if root == "" && os.Geteuid() == 0 && !inUserNamespace() {
			root = defaultRoot
		}
		if root != "" {
			_, err := os.Stat(filepath.Join(root, id, file))
			return err == nil
		}
	}
	args := append(append([]string{}, inv.GlobalArgs()...), "state", id)
	return exec.Command(path, args...).Run() == nil
}

// inUserNamespace: the uid map is not the initial namespace's identity map.
func inUserNamespace() bool {
	m, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := bytes.Fields(m)
	return !(len(f) == 3 && string(f[0]) == "0" && string(f[1]) == "0" && string(f[2]) == "4294967295")
}
