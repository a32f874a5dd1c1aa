// Command cfs-runtime-mount is cfs-runtime's runtime path: cfs-runtime
// execs it for the calls that verify or mount (create, run, delete) and
// for the commands that run along with containers (cleanup, hook). See
// package internal/wrapper.
//
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/wrapper"
)

func main() { os.Exit(wrapper.Main(os.Args[1:])) }
