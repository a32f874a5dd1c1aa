// Package wrapper is cfs-runtime's runtime path, the program
// cfs-runtime-mount: what verifies and mounts. create and run verify the
// bundle's signed composefs digest and mount the image as its root
// filesystem before the real runtime is exec'd; delete unmounts it; cleanup
// (the poststop hook) and hook (OCI hook mode) run here too. cfs-runtime
// (package handoff) execs it for these calls only.
package wrapper

import "github.com/cfs-runtime/cfs-runtime/internal/oci"

// Main runs cfs-runtime-mount with args (os.Args[1:]) and returns its
// exit status; for a call it hands over it does not return (the process
// becomes the runtime).
func Main(args []string) int {
	inv := oci.Parse(args)
	if ownCommand(inv.Command) {
		return runOwn(inv)
	}
	return runRuntime(inv)
}
