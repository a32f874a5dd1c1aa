package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// Vectors lists the golden composefs vectors (NN-name directories) in dir,
// testdata/vectors/out as the calling package's tests reach it. All 15
// must be there: a test over none of them would pass without checking.
func Vectors(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) != 15 {
		t.Fatalf("found %d vectors in %s, want 15", len(names), dir)
	}
	return names
}

// VectorFile returns the content of file in the vector name in dir.
func VectorFile(t testing.TB, dir, name, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
