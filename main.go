// The go:debug directive below (updatemaxprocs=0): cfs-runtime lives for milliseconds
// before it execs the runtime, so no goroutine re-reading cgroup CPU limits
// to update GOMAXPROCS (Go 1.25+), whose start costs every runtime call a
// goroutine and often a thread.

// Command cfs-runtime is an OCI runtime wrapper that starts containers only
// from signed, fs-verity protected composefs images.
//
// Invoked like runc, it hands every runtime subcommand to the real runtime
// with syscall.Exec, argv untouched; create and run first prepare the
// container's root filesystem. Its own tools (digest, import, sign, ...) are
// ordinary urfave/cli commands.
//
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	inv := oci.Parse(os.Args[1:])
	if isTool(inv.Command) {
		os.Exit(runTool(inv))
	}
	if needsToolsBinary(inv) {
		os.Exit(execToolsBinary(inv))
	}
	os.Exit(runRuntime(inv))
}
