package wrapper

import (
	"errors"
	"flag"
	"io"
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// cfs-runtime-mount runs two commands of its own, because they run along
// with containers: cleanup (the poststop hook create injects, and the exit
// watcher) and hook (OCI createRuntime hook mode); their help is
// cfs-runtime-tools'. Their one flag is parsed with the standard library:
// urfave/cli's package initialisation would cost every container start.

// ownCommand reports whether cfs-runtime-mount runs name itself.
func ownCommand(name string) bool { return name == "cleanup" || name == "hook" }

// runOwn runs cleanup or hook; their --help is cfs-runtime-tools'.
func runOwn(inv *oci.Invocation) int {
	fs := flag.NewFlagSet(inv.Command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var afterExit *int
	if inv.Command == "cleanup" {
		afterExit = fs.Int(AfterExitFlag, 0, AfterExitUsage)
	}
	err := fs.Parse(inv.CommandArgs)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return handoff.Tools.Exec(inv)
	case err != nil:
		return handoff.ExitCode(handoff.ExitError(inv.Command+": "+err.Error(), 2))
	}
	if inv.Command == "hook" {
		return handoff.ExitCode(Hook(inv, fs.Args(), os.Stdin))
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == AfterExitFlag })
	if !set {
		afterExit = nil
	}
	return handoff.ExitCode(Cleanup(inv, fs.Args(), afterExit, os.Stdout))
}
