package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// ContainerOf knows the mount point Mount makes (parent/ID/merged) and
// nothing else; States lists each container's state directory.
func TestContainerOfAndStates(t *testing.T) {
	parent := t.TempDir()
	os.MkdirAll(filepath.Join(parent, "c1", mergedName), 0o755)
	os.MkdirAll(filepath.Join(parent, ".hidden"), 0o755)
	for root, want := range map[string]string{
		filepath.Join(parent, "c1", mergedName):       "c1",
		filepath.Join(parent, "c1", mergedName) + "/": "c1",
		filepath.Join(parent, "c2", mergedName):       "", // no state directory
		filepath.Join(parent, "c1"):                   "",
		filepath.Join(parent, "c1", "upper"):          "",
		filepath.Join(parent, "..", "c1", mergedName): "",
		"/elsewhere/c1/merged":                        "",
	} {
		if id, ok := ContainerOf(parent, filepath.Clean(root)); id != want || ok != (want != "") {
			t.Errorf("ContainerOf(%s) = %q, %v; want %q", root, id, ok, want)
		}
	}
	if err := writeState(filepath.Join(parent, "c1"), State{Version: 1, Digest: "ab"}); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(parent, "c3"), 0o755) // no state recorded
	states, err := States(parent)
	if err != nil || len(states) != 2 {
		t.Fatalf("States = %+v, %v", states, err)
	}
	if states[0].ID != "c1" || states[0].Err != nil || states[0].State.Digest != "ab" || states[1].ID != "c3" || states[1].Err == nil {
		t.Errorf("States = %+v", states)
	}
	if s, err := States(filepath.Join(parent, "none")); s != nil || err != nil {
		t.Errorf("States of a missing parent: %v, %v", s, err)
	}
}
