// Command bareshim is the benchmarks' floor for a runtime wrapper: a Go
// process that does nothing but syscall.Exec the real runtime with its own
// argv. What cfs-runtime adds is measured against it.
package main

import (
	"os"
	"syscall"
)

// runtime is set with -ldflags "-X main.runtime=PATH" for another runtime.
var runtime = "/usr/sbin/runc"

func main() {
	argv := append([]string{runtime}, os.Args[1:]...)
	panic(syscall.Exec(runtime, argv, os.Environ()))
}
