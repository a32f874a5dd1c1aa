package statedir

import (
	"os"
	"path/filepath"
	"testing"
)

// ContainerOf knows the mount point Mount makes (parent/ID/merged) and
// nothing else.
func TestContainerOf(t *testing.T) {
	parent := t.TempDir()
	os.MkdirAll(filepath.Join(parent, "c1", Merged), 0o755)
	for root, want := range map[string]string{
		filepath.Join(parent, "c1", Merged):       "c1",
		filepath.Join(parent, "c1", Merged) + "/": "c1",
		filepath.Join(parent, "c2", Merged):       "", // no state directory
		filepath.Join(parent, "c1"):               "",
		filepath.Join(parent, "c1", "upper"):      "",
		filepath.Join(parent, "..", "c1", Merged): "",
		"/elsewhere/c1/merged":                    "",
	} {
		if id, ok := ContainerOf(parent, filepath.Clean(root)); id != want || ok != (want != "") {
			t.Errorf("ContainerOf(%s) = %q, %v; want %q", root, id, ok, want)
		}
	}
}
