// The go:debug directive below (updatemaxprocs=0): cfs-runtime lives for
// milliseconds before it execs the runtime, so no goroutine re-reading
// cgroup CPU limits to update GOMAXPROCS (Go 1.25+), whose start costs
// every runtime call a goroutine and often a thread.

// Command cfs-runtime is an OCI runtime wrapper that starts containers only
// from signed, fs-verity protected composefs images. It is invoked like
// runc: this front reads the call and hands it over (package
// internal/handoff) to the runtime, to cfs-runtime-mount (create, run,
// delete: cmd/cfs-runtime-mount) or to cfs-runtime-tools.
//
//go:debug updatemaxprocs=0
package main

import "os"

// The linker lays packages out in the order it first reaches them through
// these imports, each after what it imports: handoff, then unsigned, so
// that the code every runtime call runs (handoff and what it reads a call
// with) lies in one stretch, not split by what only a start reads (the
// policy, the bundle), and a call such as state touches fewer pages of the
// binary (each page a fault).
import (
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff/unsigned"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	handoff.Version = version
	os.Exit(handoff.Main(os.Args[1:], unsigned.Start))
}
