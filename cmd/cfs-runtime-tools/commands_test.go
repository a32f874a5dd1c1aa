package main

import (
	"os"
	"slices"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
)

// cfs-runtime hands exactly the commands it lacks to cfs-runtime-tools:
// handoff.ToolsBinaryCommands and handoff.RuntimePathCommands together are
// this binary's commands and aliases, with no overlap.
func TestToolsBinaryCommands(t *testing.T) {
	var all []string
	for _, c := range toolCommands {
		if c.Name == "generate-man" {
			continue // only in the docs build (make man), never installed
		}
		all = append(all, c.Name)
		all = append(all, c.Aliases...)
	}
	split := append(append([]string{}, handoff.ToolsBinaryCommands...), handoff.RuntimePathCommands...)
	slices.Sort(all)
	slices.Sort(split)
	if !slices.Equal(all, split) {
		t.Fatalf("commands %v, but handoff.ToolsBinaryCommands + RuntimePathCommands = %v", all, split)
	}
}

// TestMain runs the tests from the repository's root, where testdata/,
// README.md and the other commands are.
func TestMain(m *testing.M) {
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// urfave/cli's refusals of a command line are usage errors: exit 2.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"sign", "/dev/null"},             // Required flag "key" not set
		{"sign", "--bogus", "x"},          // flag provided but not defined
		{"digest", "--threads"},           // flag needs an argument
		{"digest", "--threads", "x", "."}, // invalid value
	} {
		if _, stderr, code := runSplit(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}
