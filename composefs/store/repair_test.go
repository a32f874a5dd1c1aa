package store

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/decompress"
)

// objectStamps maps every object path to its inode and mtime.
func objectStamps(t *testing.T, s *Store) map[string][2]int64 {
	t.Helper()
	m := map[string][2]int64{}
	err := filepath.WalkDir(s.ObjectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[p] = [2]int64{int64(st.Ino), fi.ModTime().UnixNano()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// damage corrupts a, deletes b and truncates c; it returns their digests.
func damage(t *testing.T, s *Store, d map[string]string) []string {
	t.Helper()
	flip(t, objPath(s, d["a"]), 10)
	if err := os.Remove(objPath(s, d["b"])); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(objPath(s, d["c"]), 50000); err != nil {
		t.Fatal(err)
	}
	ds := []string{d["a"], d["b"], d["c"]}
	slices.Sort(ds)
	return ds
}

// repairAndCheck repairs the image from sources, requires exactly the
// damaged objects to be rewritten and the image to be clean afterwards.
func repairAndCheck(t *testing.T, s *Store, image string, damaged []string, sources ...ObjectSource) RepairReport {
	t.Helper()
	before := objectStamps(t, s)
	rep, err := s.Repair(context.Background(), []FsckImage{fsck1(t, s, image)}, sources)
	if err != nil {
		t.Fatal(err)
	}
	var restored []string
	for _, r := range rep.Restored {
		restored = append(restored, r.Object)
	}
	if !reflect.DeepEqual(restored, damaged) || len(rep.Unresolved) != 0 {
		t.Fatalf("restored %q (unresolved %q), want %q", restored, rep.Unresolved, damaged)
	}
	after := objectStamps(t, s)
	for p, st := range after {
		rewritten := slices.ContainsFunc(damaged, func(d string) bool { return objPath(s, d) == p })
		if was, ok := before[p]; !rewritten && (!ok || was != st) {
			t.Errorf("%s: inode/mtime %v -> %v, but it was not damaged", p, was, st)
		}
		if rewritten && before[p] == st {
			t.Errorf("%s: damaged but not rewritten", p)
		}
	}
	missing := 0
	for _, d := range damaged {
		if _, ok := before[objPath(s, d)]; !ok {
			missing++
		}
	}
	if len(after) != len(before)+missing {
		t.Errorf("%d objects after repair, %d before (%d missing)", len(after), len(before), missing)
	}
	if got := fsck1(t, s, image); got.Status != FsckClean {
		t.Fatalf("after repair: %+v", got)
	}
	storeVerify(t, s, true)
	return rep
}

func TestRepairFromTree(t *testing.T) {
	s, tree, image, d := fsckStore(t)
	damaged := damage(t, s, d)
	rep := repairAndCheck(t, s, image, damaged, NewTreeSource(tree))
	for _, r := range rep.Restored {
		if r.Source != "tree "+tree || !strings.HasPrefix(r.File, "/") {
			t.Errorf("restored %+v", r)
		}
	}
}

// A tar archive (gzip) is read once; files it lacks are unresolved.
func TestRepairFromTar(t *testing.T) {
	s, tree, image, d := fsckStore(t)
	damaged := damage(t, s, d)
	tgz := filepath.Join(t.TempDir(), "layer.tar.gz")
	writeTar(t, tree, tgz, "c")
	rep, err := s.Repair(context.Background(), []FsckImage{fsck1(t, s, image)}, []ObjectSource{NewTarSource(tgz, decompress.Reader)})
	if !errors.Is(err, ErrUnresolved) || !reflect.DeepEqual(rep.Unresolved, []string{d["c"]}) {
		t.Fatalf("repair from a tar without c: %v, unresolved %q", err, rep.Unresolved)
	}
	if len(rep.Restored) != 2 {
		t.Errorf("restored %+v", rep.Restored)
	}
	writeTar(t, tree, tgz, "")
	damaged = slices.DeleteFunc(damaged, func(x string) bool { return x != d["c"] })
	repairAndCheck(t, s, image, damaged, NewTarSource(tgz, decompress.Reader))
}

// writeTar writes tree as a gzip tar to dst, without the file skip.
func writeTar(t *testing.T, tree, dst, skip string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(tree, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() || de.Name() == skip {
			return err
		}
		fi, _ := de.Info()
		rel, _ := filepath.Rel(tree, p)
		if err := tw.WriteHeader(&tar.Header{Name: "./" + rel, Typeflag: tar.TypeReg, Size: fi.Size(), Mode: 0o644}); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTarSourceErrors(t *testing.T) {
	dir := t.TempDir()
	zst := filepath.Join(dir, "l.tar.zst")
	os.WriteFile(zst, []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, 0o644)
	err := NewTarSource(zst, decompress.Reader).Files(context.Background(), func(int64) bool { return true }, func(SourceFile) error { return nil })
	if !errors.Is(err, decompress.ErrUnsupportedCompression) || !strings.Contains(err.Error(), "zstd -d") {
		t.Errorf("zstd tar: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte(strings.Repeat("not a tar archive\n", 100)), 0o644)
	err = NewTarSource(junk, decompress.Reader).Files(context.Background(), func(int64) bool { return true }, func(SourceFile) error { return nil })
	// Repair prefixes "source could not be read: tar PATH: ".
	if err == nil || !strings.HasPrefix(err.Error(), "not a readable tar archive: ") {
		t.Errorf("junk: %v", err)
	}
}

// A source that fails is reported and the others are still read.
func TestRepairSourceFails(t *testing.T) {
	s, tree, image, d := fsckStore(t)
	damaged := damage(t, s, d)
	gone := NewTreeSource(filepath.Join(t.TempDir(), "gone"))
	rep, err := s.Repair(context.Background(), []FsckImage{fsck1(t, s, image)}, []ObjectSource{gone, NewTreeSource(tree)})
	if !errors.Is(err, ErrSourceFailed) || errors.Is(err, ErrUnresolved) || !strings.Contains(err.Error(), "source could not be read: tree "+gone.(*treeSource).dir+": stat ") {
		t.Fatalf("repair with a missing tree first: %v", err)
	}
	if len(rep.Restored) != len(damaged) {
		t.Errorf("restored %+v", rep.Restored)
	}
}

// A corrupt image object is rebuilt from the tree.
func TestRepairImageObject(t *testing.T) {
	s, tree, image, _ := fsckStore(t)
	flip(t, objPath(s, image), 100)
	before := objectStamps(t, s)
	rep, err := s.Repair(context.Background(), []FsckImage{fsck1(t, s, image)}, []ObjectSource{NewTreeSource(tree)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Restored{{Object: image, Source: "tree " + tree, File: "the composefs image built from it"}}
	if !reflect.DeepEqual(rep.Restored, want) {
		t.Fatalf("restored %+v", rep.Restored)
	}
	after := objectStamps(t, s)
	for p, st := range after {
		if p != objPath(s, image) && before[p] != st {
			t.Errorf("%s rewritten", p)
		}
	}
	if got := fsck1(t, s, image); got.Status != FsckClean {
		t.Fatalf("after repair: %+v", got)
	}
}

func TestImportRecordsProvenance(t *testing.T) {
	s, tree, image, d := fsckStore(t)
	got, err := s.Provenance(image)
	if err != nil {
		t.Fatal(err)
	}
	objs := []string{d["a"], d["b"], d["c"], d["big"], image}
	slices.Sort(objs)
	want := []Source{{Kind: SourceTree, Ref: tree, Objects: objs}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("provenance %+v, want %+v", got, want)
	}
	// A relative tree path is recorded absolute.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(filepath.Dir(tree)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir(), "provenance", image+".json")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportTree("tree"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Provenance(image); len(got) != 1 || got[0].Ref != tree {
		t.Errorf("import of a relative path recorded %+v", got)
	}
	// An image file import records the file.
	s2, err := Open(filepath.Join(t.TempDir(), "s2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.ImportImage(objPath(s, image)); err != nil {
		t.Fatal(err)
	}
	got, err = s2.Provenance(image)
	if want := []Source{{Kind: SourceImage, Ref: objPath(s, image), Objects: []string{image}}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("image import: %+v, %v; want %+v", got, err, want)
	}
}

func TestPlanRepair(t *testing.T) {
	s, tree, image, d := fsckStore(t)
	damage(t, s, d)
	flip(t, objPath(s, d["big"]), 5)
	rep := fsck1(t, s, image)
	// Record: big came from an OCI layer, the rest from the tree.
	layer := Source{Kind: SourceOCILayer, Ref: "sha256:" + strings.Repeat("1", 64), Layout: "oci:/srv/img:latest", Objects: []string{d["big"]}}
	treeSrc := Source{Kind: SourceTree, Ref: tree, Objects: []string{d["a"], d["b"], d["c"], image}}
	if err := s.SetProvenance(image, []Source{layer, treeSrc}); err != nil {
		t.Fatal(err)
	}
	plan, err := s.PlanRepair([]FsckImage{rep})
	if err != nil {
		t.Fatal(err)
	}
	abc := []string{d["a"], d["b"], d["c"]}
	slices.Sort(abc)
	want := RepairPlan{Sources: []PlannedSource{
		{Source: Source{Kind: SourceOCILayer, Ref: layer.Ref, Layout: layer.Layout, Objects: []string{d["big"]}}, Images: []string{image}},
		{Source: Source{Kind: SourceTree, Ref: tree, Objects: abc}, Images: []string{image}},
	}}
	// (the order of sources follows the damaged objects' order: missing first)
	slices.SortFunc(plan.Sources, func(a, b PlannedSource) int { return strings.Compare(a.Kind, b.Kind) })
	if !reflect.DeepEqual(plan, want) {
		t.Fatalf("plan %+v\nwant %+v", plan, want)
	}
	// Without a record everything is unknown.
	if err := os.Remove(filepath.Join(s.Dir(), "provenance", image+".json")); err != nil {
		t.Fatal(err)
	}
	plan, err = s.PlanRepair([]FsckImage{rep})
	all := append(append([]string{}, abc...), d["big"])
	slices.Sort(all)
	if err != nil || len(plan.Sources) != 0 || !reflect.DeepEqual(plan.Unknown, all) {
		t.Fatalf("plan without provenance: %+v, %v", plan, err)
	}
	// A recorded tree opens as a source; an OCI layer does not (here).
	if src, err := OpenSource(treeSrc); err != nil || src.String() != "tree "+tree {
		t.Errorf("OpenSource(tree): %v, %v", src, err)
	}
	if _, err := OpenSource(layer); !errors.Is(err, ErrUnsupportedSource) {
		t.Errorf("OpenSource(layer): %v", err)
	}
}

// Objects without fs-verity on a filesystem that has it get it in place;
// on this host (no fs-verity) nothing is reported unprotected.
func TestFsckUnprotectedNeedsVerity(t *testing.T) {
	s, _, image, _ := fsckStore(t)
	got := fsck1(t, s, image)
	if len(got.Unprotected) != 0 && !verityWorks(s) {
		t.Fatalf("unprotected objects reported where fs-verity cannot be enabled: %+v", got.Unprotected)
	}
}

func verityWorks(s *Store) bool {
	run := &fsckRun{s: s}
	return run.verityPossible()
}

// Importing the same image from a second tree adds that tree to the
// record; the first stays known.
func TestProvenanceMerges(t *testing.T) {
	s, tree, image, _ := fsckStore(t)
	other := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", tree, other).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if got, err := s.ImportTree(other); err != nil || got != image {
		t.Fatalf("import of the copy: %s, %v (want %s)", got, err, image)
	}
	srcs, err := s.Provenance(image)
	if err != nil || len(srcs) != 2 || srcs[0].Ref != other || srcs[1].Ref != tree {
		t.Fatalf("provenance after two imports: %+v, %v", srcs, err)
	}
}
