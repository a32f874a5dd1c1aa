package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// storeListing lists everything in the store as "PATH MODE SIZE" lines
// (symlinks with their target), sorted; the store lock file, which every
// import creates, is left out.
func storeListing(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Dir(), p)
		if rel == "lock" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d", rel, fi.Mode(), fi.Size())
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		if d.IsDir() {
			line = fmt.Sprintf("%s %v", rel, fi.Mode())
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// storeFilesContaining lists the store's files whose content holds secret.
func storeFilesContaining(t *testing.T, s *Store, secret []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, secret) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// treeDigest is the digest of tree's image, computed without a store.
func treeDigest(t *testing.T, tree string) string {
	t.Helper()
	tr, err := composefs.BuildTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tr.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(d)
}

// An import that must yield a digest (create's import of a bundle's root
// filesystem, as root, of whatever directory root.path names) and does not
// leaves the store exactly as it was: no image, no object, no provenance,
// nothing in tmp/, and no file anywhere with the tree's content. Then the
// same tree with its own digest is imported completely.
func TestImportTreeExpectingMismatchLeavesNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named-temporaries=%v", named), func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "store"), WithThreads(2))
			if err != nil {
				t.Fatal(err)
			}
			s.noTmpfile = named
			signed := t.TempDir()
			shared := bytes.Repeat([]byte("in both trees "), 10)
			os.WriteFile(filepath.Join(signed, "shared"), shared, 0o644)
			os.WriteFile(filepath.Join(signed, "app"), bytes.Repeat([]byte("the signed app "), 10), 0o644)
			want, err := s.ImportTree(signed)
			if err != nil {
				t.Fatal(err)
			}
			before := storeListing(t, s)

			// A 0700 directory holding 0600 secrets: small (read into
			// the worker's buffer), big (streamed), and a file the
			// store already has.
			host := filepath.Join(t.TempDir(), "host")
			os.Mkdir(host, 0o700)
			secret := make([]byte, 32)
			rand.Read(secret)
			secret = []byte(hex.EncodeToString(secret))
			os.WriteFile(filepath.Join(host, "shadow"), append([]byte("root:"), secret...), 0o600)
			big := bytes.Repeat(secret, 3<<20/len(secret))
			os.WriteFile(filepath.Join(host, "big"), big, 0o600)
			os.WriteFile(filepath.Join(host, "shared"), shared, 0o600)
			gotID, err := s.ImportTreeExpecting(host, id(t, want))
			got := gotID.Hex()
			if !errors.Is(err, ErrUnexpectedDigest) || got != treeDigest(t, host) || got == want {
				t.Fatalf("ImportTreeExpecting = %s, %v; want the tree's digest %s and ErrUnexpectedDigest", got, err, treeDigest(t, host))
			}
			if wantErr := fmt.Sprintf("the image has another digest than expected: %s has composefs digest %s, not %s", host, got, want); err.Error() != wantErr {
				t.Errorf("error %q\nwant  %q", err, wantErr)
			}
			if after := storeListing(t, s); !slices.Equal(after, before) {
				t.Errorf("store changed by a refused import:\nbefore %q\nafter  %q", before, after)
			}
			if files := storeFilesContaining(t, s, secret); len(files) > 0 {
				t.Errorf("the secret is in the store: %q", files)
			}
			if s.HasImage(gotID) {
				t.Errorf("image %s in the store", got)
			}
			if _, err := s.Provenance(got); !errors.Is(err, ErrNoProvenance) {
				t.Errorf("provenance of the refused image: %v", err)
			}

			// The digest it does have: imported, as ImportTree would.
			if d, err := s.ImportTreeExpecting(host, gotID); err != nil || d.Hex() != got {
				t.Fatalf("ImportTreeExpecting(own digest) = %s, %v", d, err)
			}
			if !s.HasImage(gotID) || s.CheckImage(gotID, CheckHash) != nil {
				t.Errorf("image %s not imported completely: %v", got, s.CheckImage(gotID, CheckHash))
			}
			storeVerify(t, s, true)
			if files := storeFilesContaining(t, s, secret); len(files) != 2 {
				t.Errorf("objects with the tree's content: %q, want shadow's and big's", files)
			}
		})
	}
}

// Every directory of the store is root's only (0700), and a new store's
// lock file 0600; a store made before with 0755 directories is tightened
// when it is opened, down to the fan-out directories, and its files stay as
// they are (inside 0700 directories nobody else reaches them).
func TestStoreIsPrivate(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), bytes.Repeat([]byte("x"), 100), 0o644)
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRef("name", digest, RefSource{Kind: RefKindTag}); err != nil {
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
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	check("old store opened", 0o644)
	if got := storeObjects(t, s); !slices.Equal(got, objs) {
		t.Errorf("objects changed: %q, were %q", got, objs)
	}
	if err := s.CheckImage(id(t, digest), CheckHash); err != nil {
		t.Error(err)
	}
}

// A store opened for create (WithLazyFanout) makes no objects/XX until an
// import needs them; then an import works as with Open.
func TestLazyFanout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, WithLazyFanout())
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "objects")); len(ents) != 0 {
		t.Fatalf("objects/ holds %d entries before any import", len(ents))
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), bytes.Repeat([]byte("an object "), 20), 0o644)
	d, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "objects")); len(ents) != 256 {
		t.Fatalf("objects/ holds %d entries after an import, want 256", len(ents))
	}
	if err := s.CheckImage(id(t, d), CheckHash); err != nil {
		t.Fatal(err)
	}
}
