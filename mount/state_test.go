package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// States lists each container's state directory.
func TestStates(t *testing.T) {
	parent := t.TempDir()
	os.MkdirAll(filepath.Join(parent, "c1", mergedName), 0o755)
	os.MkdirAll(filepath.Join(parent, ".hidden"), 0o755)
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
