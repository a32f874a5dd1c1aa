package composefs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// Every directory of the store is root's only (0700), and a new store's
// lock file 0600; a store made before with 0755 directories is tightened
// when it is opened, down to the fan-out directories, and its files stay as
// they are (inside 0700 directories nobody else reaches them).
func TestStoreIsPrivate(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), bytes.Repeat([]byte("x"), 100), 0o644)
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRef("name", digest); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "locks"), 0o700)
	os.MkdirAll(filepath.Join(dir, "layers"), 0o700)
	modes := func() map[string]fs.FileMode {
		m := map[string]fs.FileMode{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && (d.IsDir() || p == filepath.Join(dir, "lock")) {
				fi, _ := d.Info()
				m[strings.TrimPrefix(p, dir)] = fi.Mode().Perm()
			}
			return err
		})
		return m
	}
	check := func(when string, lock fs.FileMode) {
		t.Helper()
		m := modes()
		if len(m) < 256+9 {
			t.Errorf("%s: only %d directories", when, len(m))
		}
		for p, mode := range m {
			want := fs.FileMode(0o700)
			if p == "/lock" {
				want = lock
			}
			if mode != want {
				t.Errorf("%s: %s has mode %v, want %v", when, p, mode, want)
			}
		}
	}
	check("new store", 0o600)

	// A store from before: every directory 0755, the lock 0644.
	for p := range modes() {
		mode := fs.FileMode(0o755)
		if p == "/lock" {
			mode = 0o644
		}
		if err := os.Chmod(dir+p, mode); err != nil {
			t.Fatal(err)
		}
	}
	objs := storeObjects(t, s)
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	check("old store opened", 0o644)
	if got := storeObjects(t, s); !slices.Equal(got, objs) {
		t.Errorf("objects changed: %q, were %q", got, objs)
	}
	if err := s.CheckImage(digest, CheckHash); err != nil {
		t.Error(err)
	}
}
