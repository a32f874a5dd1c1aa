package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportCommand(t *testing.T) {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "big"), bytes.Repeat([]byte("0123456789"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "small"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	got, err := runInfo(t, "import", "--store", store, tree)
	if err != nil {
		t.Fatal(err)
	}
	want, err := runInfo(t, "digest", tree)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || len(strings.TrimSpace(got)) != 64 {
		t.Fatalf("import printed %q, digest printed %q", got, want)
	}
	d := strings.TrimSpace(got)
	if _, err := os.Stat(filepath.Join(store, "images", d)); err != nil {
		t.Fatal(err)
	}
	missing, err := runInfo(t, "info", "missing-objects", "--basedir", filepath.Join(store, "objects"), filepath.Join(store, "images", d))
	if err != nil || missing != "" {
		t.Fatalf("missing objects after import: %q, %v", missing, err)
	}
	if _, err := runInfo(t, "import", "--store", store); err == nil || !strings.Contains(err.Error(), "want exactly one TREE") {
		t.Errorf("import without TREE: %v", err)
	}
	if _, err := runInfo(t, "import", "--store", store, filepath.Join(tree, "nonexistent")); err == nil {
		t.Error("import of a missing tree succeeded")
	}
}
