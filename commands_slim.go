//go:build slim

package main

import (
	"errors"
	"flag"
	"io"
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// The slim build is the runtime binary (make build: bin/cfs-runtime): it
// holds only what a runtime invocation and the commands run along with one
// (the poststop cleanup, the exit watcher, hook mode) need, so that every
// runc call made through it starts as fast as possible. Every other
// command, and the help of all of them, runs in cfs-runtime-tools (see
// tools_binary.go).
//
// It does not link urfave/cli: its package initialisation and page faults
// cost about 0.2 ms on every runtime call, more than everything else the
// slim build does for a pass-through. Its two commands take at most one
// flag, parsed here with the standard library.

const slimBuild = true

// isTool reports whether the slim build runs name itself.
func isTool(name string) bool { return name == "cleanup" || name == "hook" }

// runTool runs cleanup or hook; their --help is cfs-runtime-tools'.
func runTool(inv *oci.Invocation) int {
	fs := flag.NewFlagSet(inv.Command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var afterExit *int
	if inv.Command == "cleanup" {
		afterExit = fs.Int(afterExitFlag, 0, afterExitUsage)
	}
	err := fs.Parse(inv.CommandArgs)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return execToolsBinary(inv)
	case err != nil:
		return commandExit(exitError(inv.Command+": "+err.Error(), 2))
	}
	if inv.Command == "hook" {
		return commandExit(runHookMode(inv, fs.Args(), os.Stdin))
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == afterExitFlag })
	if !set {
		afterExit = nil
	}
	return commandExit(runCleanup(inv, fs.Args(), afterExit, os.Stdout))
}

// printOwnHelp is never reached in the slim build: needsToolsBinary hands
// cfs-runtime's help to cfs-runtime-tools before runRuntime runs.
func printOwnHelp() {}
