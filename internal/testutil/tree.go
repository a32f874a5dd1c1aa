package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteTree writes files (path below dir → content, parents made as
// needed, mode 0644) for tests that build images from a tree.
func WriteTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
