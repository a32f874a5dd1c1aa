package runtimestate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// fakeRuntime writes an executable named name whose `state` exits with
// status (0: known).
func fakeRuntime(t *testing.T, name string, status int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	script := "#!/bin/sh\nexit " + string(rune('0'+status)) + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKnowsReadsRuncAndCrunState(t *testing.T) {
	for _, tc := range []struct{ runtime, file, other string }{
		{"runc", "state.json", "status"},
		{"crun", "status", "state.json"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			root := t.TempDir()
			// The fake answers `state` with "known": Knows must not ask it.
			rt := fakeRuntime(t, tc.runtime, 0)
			inv := oci.Parse([]string{"--root", root, "delete", "c1"})
			if Knows(rt, inv, "c1") {
				t.Fatal("known without a state directory")
			}
			if err := os.MkdirAll(filepath.Join(root, "c1"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "c1", tc.other), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if Knows(rt, inv, "c1") {
				t.Fatalf("known with only %s, which %s does not write", tc.other, tc.runtime)
			}
			if err := os.WriteFile(filepath.Join(root, "c1", tc.file), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			if !Knows(rt, inv, "c1") {
				t.Fatalf("not known with %s/c1/%s", root, tc.file)
			}
			if Knows(rt, inv, "c2") {
				t.Fatal("c2 known")
			}
		})
	}
}

func TestKnowsAsksOtherRuntimes(t *testing.T) {
	inv := oci.Parse([]string{"--root", t.TempDir(), "delete", "c1"})
	if !Knows(fakeRuntime(t, "youki", 0), inv, "c1") {
		t.Fatal("a runtime whose state succeeds: not known")
	}
	if Knows(fakeRuntime(t, "youki", 1), inv, "c1") {
		t.Fatal("a runtime whose state fails: known")
	}
}
