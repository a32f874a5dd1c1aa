//go:build !vmtest

package store

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// sha512Of is `fsverity digest --hash-alg=sha512 --compact path`.
func sha512Of(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg=sha512", path).Output()
	if err != nil {
		t.Fatalf("fsverity digest %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

func id512(t *testing.T, h string) composefs.ImageDigest {
	t.Helper()
	d, err := composefs.ParseDigestValue(verity.SHA512, verity.DefaultBlockSize, h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSHA512Import: a store opened WithHash(SHA512) stores every object
// under its SHA-512 fs-verity digest (objects/XX/ and 126 more digits, as
// composefs-rs lays out a sha512 repository) and the image under the
// SHA-512 digest of its bytes, next to SHA-256 images of the same tree;
// the image checks, lists, fscks (damage found) and is collected by gc.
func TestSHA512Import(t *testing.T) {
	tree, d256 := fsckTree(t, 1)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImportTreeAs(tree, "five-twelve")
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != 128 {
		t.Fatalf("image digest %q", img)
	}
	if got := sha512Of(t, objPath(s, img)); got != img {
		t.Fatalf("image object hashes to %s, named %s", got, img)
	}
	objs := map[string]string{}
	for _, name := range []string{"a", "b", "c", "big"} {
		objs[name] = sha512Of(t, filepath.Join(tree, name))
		p := filepath.Join(dir, "objects", objs[name][:2], objs[name][2:])
		if got := sha512Of(t, p); got != objs[name] {
			t.Errorf("%s: object %s hashes to %s", name, p, got)
		}
	}
	// The same tree as SHA-256, in the same store.
	s256, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	img256, err := s256.ImportTree(tree)
	if err != nil || len(img256) != 64 {
		t.Fatalf("SHA-256 import: %q, %v", img256, err)
	}
	if _, err := os.Stat(objPath(s, d256["big"])); err != nil {
		t.Fatal(err)
	}

	// Checked as create checks it; listed; found by a prefix.
	id := id512(t, img)
	if !s.HasImage(id) {
		t.Fatal("HasImage: false")
	}
	f, err := s.OpenImage(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckImageFile(f, id, CheckHash); err != nil {
		t.Fatalf("CheckImageFile: %v", err)
	}
	f.Close()
	infos, err := s.Images()
	if err != nil || len(infos) != 2 {
		t.Fatalf("Images: %+v, %v", infos, err)
	}
	i := slices.IndexFunc(infos, func(in ImageInfo) bool { return in.Digest == img })
	if i < 0 || infos[i].Objects != 4 || infos[i].Refs[0] != "five-twelve" || infos[i].Error != "" {
		t.Fatalf("Images: %+v", infos)
	}
	if d, err := s.ResolvePrefix(img[:10]); err != nil || d != img {
		t.Fatalf("ResolvePrefix: %s, %v", d, err)
	}
	rep := fsck1(t, s, img)
	if rep.Status != FsckClean || rep.Objects != 4 {
		t.Fatalf("fsck: %+v", rep)
	}

	// Damage: fsck names exactly the damaged SHA-512 objects, and the
	// check before a mount refuses the image.
	flip(t, filepath.Join(dir, "objects", objs["c"][:2], objs["c"][2:]), 500)
	if err := os.Remove(filepath.Join(dir, "objects", objs["b"][:2], objs["b"][2:])); err != nil {
		t.Fatal(err)
	}
	rep = fsck1(t, s, img)
	if rep.Status != FsckDamaged || len(rep.Corrupt) != 1 || rep.Corrupt[0].Object != objs["c"] ||
		len(rep.Missing) != 1 || rep.Missing[0].Object != objs["b"] || rep.Missing[0].Paths[0] != "/b" {
		t.Fatalf("fsck of the damage: %+v", rep)
	}
	if rep := fsck1(t, s, img, WithUserspace()); rep.Status != FsckDamaged || len(rep.Corrupt) != 1 {
		t.Fatalf("fsck --userspace of the damage: %+v", rep)
	}
	f, _ = s.OpenImage(id)
	if _, err := s.CheckImageFile(f, id, CheckHash); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMissingObject) {
		t.Fatalf("CheckImageFile of the damage: %v", err)
	}
	f.Close()
	// The SHA-256 image is not touched.
	if r256 := fsck1(t, s256, img256); r256.Status != FsckClean {
		t.Fatalf("fsck of the SHA-256 image: %+v", r256)
	}

	// gc: kept by its ref; once the ref is gone, removed with its objects
	// (the SHA-256 image and its objects stay).
	if err := s256.SetRef("keep256", img256, RefSource{Kind: RefKindTag}); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.GC(); err != nil || len(rep.Images) != 0 {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	if _, err := s.RemoveRef("five-twelve"); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.GC(); err != nil || len(rep.Images) != 1 || rep.Images[0] != img {
		t.Fatalf("gc: %+v, %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", objs["a"][:2], objs["a"][2:])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gc left the SHA-512 object of /a: %v", err)
	}
	if r256 := fsck1(t, s256, img256); r256.Status != FsckClean {
		t.Fatalf("fsck of the SHA-256 image after gc: %+v", r256)
	}
}

// ImportTreeExpecting takes a SHA-512 digest: it imports with SHA-512.
func TestSHA512ImportExpecting(t *testing.T) {
	tree, _ := fsckTree(t, 3)
	tr, err := composefs.BuildTree(tree, composefs.WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	want, err := tr.Digest(composefs.WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t) // SHA-256 by default
	got, err := s.ImportTreeExpecting(tree, id512(t, hex.EncodeToString(want)))
	if err != nil || got.Algorithm != verity.SHA512 || hex.EncodeToString(got.Value) != hex.EncodeToString(want) {
		t.Fatalf("ImportTreeExpecting: %v, %v", got, err)
	}
	reps, err := s.Fsck(context.Background(), []string{hex.EncodeToString(want)})
	if err != nil || reps[0].Status != FsckClean {
		t.Fatalf("fsck: %+v, %v", reps, err)
	}
	// The wrong algorithm for a digest's size is refused.
	bad := composefs.ImageDigest{Algorithm: verity.SHA256, BlockSize: verity.DefaultBlockSize, Value: want}
	if err := Supports(bad); !errors.Is(err, ErrUnsupportedDigest) {
		t.Errorf("Supports(SHA-256 of 64 bytes): %v", err)
	}
}

// Repair restores damaged SHA-512 objects from the tree they came from.
func TestSHA512Repair(t *testing.T) {
	s, tree, img := sha512Store(t, 4)
	c, b := sha512Of(t, filepath.Join(tree, "c")), sha512Of(t, filepath.Join(tree, "b"))
	flip(t, filepath.Join(s.ObjectsDir(), c[:2], c[2:]), 7)
	if err := os.Remove(filepath.Join(s.ObjectsDir(), b[:2], b[2:])); err != nil {
		t.Fatal(err)
	}
	rep := fsck1(t, s, img)
	if rep.Status != FsckDamaged {
		t.Fatalf("fsck: %+v", rep)
	}
	rr, err := s.Repair(context.Background(), []FsckImage{rep}, []ObjectSource{NewTreeSource(tree)})
	if err != nil || len(rr.Restored) != 2 || len(rr.Unresolved) != 0 {
		t.Fatalf("repair: %+v, %v", rr, err)
	}
	if rep := fsck1(t, s, img); rep.Status != FsckClean {
		t.Fatalf("fsck after repair: %+v", rep)
	}
	if got := sha512Of(t, filepath.Join(s.ObjectsDir(), c[:2], c[2:])); got != c {
		t.Fatalf("restored object hashes to %s", got)
	}
}

// A missing SHA-512 image object is rebuilt from its tree.
func TestSHA512RepairImage(t *testing.T) {
	s, tree, img := sha512Store(t, 5)
	if err := os.Remove(objPath(s, img)); err != nil {
		t.Fatal(err)
	}
	rep := fsck1(t, s, img)
	if rep.Status != FsckDamaged || rep.ImageObject == nil {
		t.Fatalf("fsck: %+v", rep)
	}
	rr, err := s.Repair(context.Background(), []FsckImage{rep}, []ObjectSource{NewTreeSource(tree)})
	if err != nil || len(rr.Restored) != 1 || rr.Restored[0].Object != img || rr.Restored[0].File != "the composefs image built from it" {
		t.Fatalf("repair: %+v, %v", rr, err)
	}
	if rep := fsck1(t, s, img); rep.Status != FsckClean {
		t.Fatalf("fsck after repair: %+v", rep)
	}
}

// sha512Store imports fsckTree(seed) into a new store WithHash(SHA512).
func sha512Store(t *testing.T, seed uint64) (*Store, string, string) {
	t.Helper()
	tree, _ := fsckTree(t, seed)
	s, err := Open(filepath.Join(t.TempDir(), "store"), WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	return s, tree, img
}
