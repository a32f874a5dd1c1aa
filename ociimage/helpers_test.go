package ociimage

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
)

func ref(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dumpDigest is the digest of the image mkcomposefs --from-file makes of a
// dump: the independent expectation for an imported image.
func dumpDigest(t *testing.T, dump string, opts ...composefs.Option) string {
	t.Helper()
	tree, err := composefs.ParseDump(strings.NewReader(dump))
	if err != nil {
		t.Fatalf("expected dump: %v\n%s", err, dump)
	}
	d, err := tree.Digest(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(d)
}

// imageDump is composefs-info dump of an image in the store.
func imageDump(t *testing.T, s *store.Store, d string) string {
	t.Helper()
	p, err := s.ImagePath(d)
	if err != nil {
		t.Fatal(err)
	}
	img, err := composefs.ReadImageFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := img.WriteDump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// countObjects counts the files under the store's objects/.
func countObjects(t *testing.T, s *store.Store) int {
	t.Helper()
	n := 0
	filepath.WalkDir(s.ObjectsDir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
