// Package wrapper is cfs-runtime's runtime path: what runs when a container
// engine calls cfs-runtime as it would call runc. create and run verify the
// bundle's signed composefs digest and mount the image as its root
// filesystem before the real runtime is exec'd; every other runtime command
// is handed over untouched; cleanup (the poststop hook) and hook (OCI hook
// mode) run here too. The tools (import, sign, fsck, ...) are
// cfs-runtime-tools', which Main execs for them.
package wrapper

import "github.com/cfs-runtime/cfs-runtime/internal/oci"

// Version is the runtime binary's version, printed by --version.
var Version = "dev"

// Main runs the runtime binary with args (os.Args[1:]) and returns its exit
// status; for a runtime command that cfs-runtime hands over it does not
// return (the process becomes the runtime).
func Main(args []string) int {
	inv := oci.Parse(args)
	switch {
	case ownCommand(inv.Command):
		return runOwn(inv)
	case needsToolsBinary(inv):
		return execToolsBinary(inv)
	}
	return runRuntime(inv)
}
