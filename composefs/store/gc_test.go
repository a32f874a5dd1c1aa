package store

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/composefs"
)

// gcStore holds three images imported from trees that share the objects
// a, b, c and big (seed 1) or not (seed 2): kept by a ref, kept as in use,
// and unreferenced.
type gcStore struct {
	s                  *Store
	refd, used, unused string
	shared, own        map[string]string // objects of seed 1 and seed 2
}

func newGCStore(t *testing.T) gcStore {
	t.Helper()
	s, tree, refd, shared := fsckStore(t)
	// used: the same files plus one more object
	if err := os.WriteFile(filepath.Join(tree, "extra"), []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	used, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	tree2, own := fsckTree(t, 2)
	unused, err := s.ImportTree(tree2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRef("keep", refd, RefSource{Kind: RefKindTag}); err != nil {
		t.Fatal(err)
	}
	return gcStore{s: s, refd: refd, used: used, unused: unused, shared: shared, own: own}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestGC(t *testing.T) {
	g := newGCStore(t)
	s := g.s
	layersDir := filepath.Join(s.Dir(), "layers")
	keptLayer, goneLayer := strings.Repeat("1", 64), strings.Repeat("2", 64)
	for _, n := range []string{keptLayer + ".json", goneLayer + ".json", goneLayer + "-files"} {
		if err := os.MkdirAll(layersDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layersDir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The used image's record names a layer (as an OCI import would).
	src, err := s.Provenance(g.used)
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, Source{Kind: SourceOCILayer, Ref: "sha256:" + keptLayer, Layout: "oci:/x"})
	if err := s.SetProvenance(g.used, src); err != nil {
		t.Fatal(err)
	}
	// A leftover of an interrupted repair.
	leftover := filepath.Join(s.ObjectsDir(), "ab", ".repair-1-ab")
	if err := os.WriteFile(leftover, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := storeObjects(t, s)
	inUse := WithInUse(func() ([]string, error) { return []string{g.used}, nil })

	dry, err := s.GC(inUse, WithGCDryRun())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(storeObjects(t, s), before) || !s.HasImage(id(t, g.unused)) {
		t.Fatal("dry run removed something")
	}
	rep, err := s.GC(inUse)
	if err != nil {
		t.Fatal(err)
	}
	kept := []string{g.refd, g.used}
	slices.Sort(kept)
	// removed: the unused image object, its 4 objects, the leftover
	want := GCReport{Kept: kept, Images: []string{g.unused}, Objects: 6, Provenance: 1,
		Layers: []string{goneLayer + "-files", goneLayer + ".json"}}
	want.Bytes = fileSizeOr0(objPath(s, g.unused)) // gone by now: compare below
	rep.Bytes, want.Bytes = 0, 0
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("gc report %+v\nwant %+v", rep, want)
	}
	dry.DryRun, dry.Bytes = false, 0
	if !reflect.DeepEqual(dry, want) {
		t.Errorf("dry run report %+v\nwant %+v", dry, want)
	}
	if s.HasImage(id(t, g.unused)) || exists(objPath(s, g.unused)) || exists(leftover) {
		t.Error("the unused image is still there")
	}
	for _, d := range g.own {
		if exists(objPath(s, d)) {
			t.Errorf("object %s of the removed image is still there", d)
		}
	}
	for _, img := range kept {
		if got := fsck1(t, s, img); got.Status != FsckClean {
			t.Errorf("kept image %s: %+v", img, got)
		}
		if _, err := s.Provenance(img); err != nil {
			t.Errorf("kept image %s lost its provenance: %v", img, err)
		}
	}
	if _, err := s.Provenance(g.unused); !errors.Is(err, ErrNoProvenance) {
		t.Errorf("provenance of the removed image: %v", err)
	}
	if !exists(filepath.Join(layersDir, keptLayer+".json")) {
		t.Error("the kept image's layer record was removed")
	}
	// Nothing left to do.
	again, err := s.GC(inUse)
	if err != nil || len(again.Images)+again.Objects+again.Provenance+len(again.Layers) != 0 {
		t.Errorf("second gc: %+v, %v", again, err)
	}
	// Without the container, only the ref keeps its image.
	rep, err = s.GC()
	if err != nil || !reflect.DeepEqual(rep.Images, []string{g.used}) || rep.Objects != 2 {
		t.Errorf("gc without containers: %+v, %v (want the used image and its own object removed)", rep, err)
	}
}

func fileSizeOr0(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// A kept image that cannot be read stops gc before anything is removed.
func TestGCKeptUnreadable(t *testing.T) {
	g := newGCStore(t)
	s := g.s
	if err := os.Remove(objPath(s, g.refd)); err != nil {
		t.Fatal(err)
	}
	before := storeObjects(t, s)
	_, err := s.GC()
	if !errors.Is(err, ErrKeptUnreadable) || !strings.Contains(err.Error(), "gc: image "+g.refd+": ") {
		t.Fatalf("gc with a kept image gone: %v", err)
	}
	if !reflect.DeepEqual(storeObjects(t, s), before) || !s.HasImage(id(t, g.unused)) {
		t.Error("gc removed something")
	}
}

// The in-use callback's error ends gc.
func TestGCInUseError(t *testing.T) {
	g := newGCStore(t)
	boom := errors.New("boom")
	if _, err := g.s.GC(WithInUse(func() ([]string, error) { return nil, boom })); !errors.Is(err, boom) {
		t.Fatalf("gc: %v", err)
	}
	if !g.s.HasImage(id(t, g.unused)) {
		t.Error("gc removed an image")
	}
}

// Imports running while gc runs again and again lose nothing: the
// second import reuses objects of an unreferenced image that gc wants
// to remove; the store lock orders the two.
func TestGCConcurrentImport(t *testing.T) {
	for round := range 5 {
		s, tree, first, _ := fsckStore(t)
		// first is unreferenced: gc removes it and its objects. The
		// re-import of the same tree plus a file is kept by a ref set
		// before it exists.
		if err := os.WriteFile(filepath.Join(tree, "new"), []byte(strings.Repeat("n", 500)), 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := composefs.BuildTree(tree)
		if err != nil {
			t.Fatal(err)
		}
		d, err := want.Digest()
		if err != nil {
			t.Fatal(err)
		}
		second := hex.EncodeToString(d)
		if err := s.SetRef("second", second, RefSource{Kind: RefKindTag}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errs := make(chan error, 100)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.GC(); err != nil {
					errs <- err
					return
				}
			}
		}()
		got, err := s.ImportTree(tree)
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: gc: %v", round, err)
		}
		if err != nil || got != second {
			t.Fatalf("round %d: import: %s, %v", round, got, err)
		}
		if rep := fsck1(t, s, second); rep.Status != FsckClean {
			t.Fatalf("round %d: the image imported during gc: %+v", round, rep)
		}
		if _, err := s.GC(); err != nil {
			t.Fatal(err)
		}
		if s.HasImage(id(t, first)) {
			t.Errorf("round %d: the unreferenced image survived gc", round)
		}
		if rep := fsck1(t, s, second); rep.Status != FsckClean {
			t.Fatalf("round %d: after a last gc: %+v", round, rep)
		}
	}
}

// Fsck and gc exclude each other: a check never sees objects vanish.
func TestGCWaitsForHold(t *testing.T) {
	g := newGCStore(t)
	release, err := g.s.Hold()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := g.s.GC(); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("gc ran while the store was held: %v", err)
	default:
	}
	if !g.s.HasImage(id(t, g.unused)) {
		t.Fatal("gc removed an image while the store was held")
	}
	// A check holds it shared as well, alongside the hold.
	if rep := fsck1(t, g.s, g.unused); rep.Status != FsckClean {
		t.Fatalf("fsck while held: %+v", rep)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.s.HasImage(id(t, g.unused)) {
		t.Error("gc did not remove the unused image once released")
	}
}

func TestImages(t *testing.T) {
	g := newGCStore(t)
	s := g.s
	// Newer than "keep" (set now): its source is the image's.
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	also := RefSource{Kind: RefKindTree, Ref: "/srv/also", Created: created}
	if err := s.SetRef("also", g.refd, also); err != nil {
		t.Fatal(err)
	}
	keep, err := s.LookupRef("keep")
	if err != nil || keep.Source.Kind != RefKindTag || time.Since(keep.Source.Created) > time.Minute {
		t.Fatalf("ref keep: %+v, %v", keep, err)
	}
	infos, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	byDigest := map[string]ImageInfo{}
	for _, in := range infos {
		byDigest[in.Digest] = in
	}
	objs := int64(300 + 5000 + 100000 + 1<<20 + 5)
	want := ImageInfo{Digest: g.refd, Size: fileSizeOr0(objPath(s, g.refd)) + objs, Objects: 4, Refs: []string{"also", "keep"},
		RefSources: []Ref{{Name: "also", Digest: g.refd, Source: also}, keep}, Source: "/srv/also", Created: &created}
	if got := byDigest[g.refd]; !reflect.DeepEqual(got, want) {
		t.Errorf("images: %+v, want %+v", got, want)
	}
	want = ImageInfo{Digest: g.used, Size: fileSizeOr0(objPath(s, g.used)) + objs + 1000, Objects: 5, Refs: []string{}, RefSources: []Ref{}}
	if got := byDigest[g.used]; !reflect.DeepEqual(got, want) {
		t.Errorf("images: %+v, want %+v", got, want)
	}
	if len(infos) != 3 || !slices.IsSortedFunc(infos, func(a, b ImageInfo) int { return strings.Compare(a.Digest, b.Digest) }) {
		t.Errorf("images: %d, not sorted by digest", len(infos))
	}
	// Fsck --all's list.
	ds, err := s.ImageDigests()
	if err != nil || len(ds) != 3 {
		t.Fatalf("ImageDigests: %q, %v", ds, err)
	}
	reps, err := s.Fsck(context.Background(), ds)
	if err != nil || len(reps) != 3 {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Status != FsckClean {
			t.Errorf("%+v", r)
		}
	}
}
