package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// fsckTree writes a tree with objects of several sizes: /a (300 bytes,
// also as /acopy and hardlinked as /sub/alink), /b (5000), /c (100000),
// /big (1 MiB + 5: several chunks), an inline file and a
// symlink. It returns the tree and each file's object digest (hex).
func fsckTree(t *testing.T, seed uint64) (string, map[string]string) {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	rnd := rand.New(rand.NewPCG(seed, 7))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	files := map[string][]byte{"a": data(300), "b": data(5000), "c": data(100000), "big": data(1<<20 + 5), "small": []byte("inline\n")}
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tree, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "acopy"), files["a"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(tree, "a"), filepath.Join(tree, "sub", "alink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(tree, "sub", "sym")); err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, name := range []string{"a", "b", "c", "big"} {
		d, err := verity.DigestFile(filepath.Join(tree, name))
		if err != nil {
			t.Fatal(err)
		}
		digests[name] = hex.EncodeToString(d)
	}
	return tree, digests
}

// fsckStore imports a fresh fsckTree into a new store.
func fsckStore(t *testing.T) (*Store, string, string, map[string]string) {
	t.Helper()
	tree, digests := fsckTree(t, 1)
	s, image := importInto(t, tree)
	return s, tree, image, digests
}

// importInto imports tree into a new store.
func importInto(t *testing.T, tree string) (*Store, string) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	image, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	return s, image
}

func objPath(s *Store, d string) string {
	b, _ := hex.DecodeString(d)
	return filepath.Join(s.ObjectsDir(), composefs.ObjectPath(b))
}

func fsck1(t *testing.T, s *Store, image string, opts ...FsckOption) FsckImage {
	t.Helper()
	reps, err := s.Fsck(context.Background(), []string{image}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 {
		t.Fatalf("%d reports for one image", len(reps))
	}
	return reps[0]
}

func digestOf(t *testing.T, p string) string {
	t.Helper()
	d, err := verity.DigestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(d)
}

func TestFsckClean(t *testing.T) {
	s, _, image, _ := fsckStore(t)
	var (
		mu          sync.Mutex // the progress function runs on several goroutines
		last, total int64
	)
	got := fsck1(t, s, image, WithFsckProgress(func(done, tot int64) {
		mu.Lock()
		defer mu.Unlock()
		last, total = max(last, done), tot
	}))
	want := FsckImage{Image: image, Status: FsckClean, Objects: 4, Bytes: 300 + 5000 + 100000 + 1<<20 + 5,
		Missing: []FsckObject{}, Corrupt: []FsckObject{}, Unprotected: []FsckObject{}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fsck of a fresh import:\n got %+v\nwant %+v", got, want)
	}
	if last != want.Bytes || total != want.Bytes {
		t.Errorf("progress ended at %d of %d, want %d of %d", last, total, want.Bytes, want.Bytes)
	}
}

// TestFsckDamage: a corrupt, a missing and a truncated object, and a
// corrupt big one, each reported once with
// every path that uses it.
func TestFsckDamage(t *testing.T) {
	for _, threads := range []int{1, 4} {
		t.Run(fmt.Sprint("threads=", threads), func(t *testing.T) {
			s, _, image, d := fsckStore(t)
			flip(t, objPath(s, d["a"]), 10)
			flip(t, objPath(s, d["big"]), 1<<19)
			if err := os.Remove(objPath(s, d["b"])); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(objPath(s, d["c"]), 50000); err != nil {
				t.Fatal(err)
			}
			got := fsck1(t, s, image, WithFsckThreads(threads))
			want := FsckImage{Image: image, Status: FsckDamaged, Objects: 4, Bytes: 300 + 5000 + 100000 + 1<<20 + 5,
				Missing: []FsckObject{{Object: d["b"], Size: 5000, Paths: []string{"/b"}}},
				Corrupt: []FsckObject{
					{Object: d["a"], Size: 300, Problem: "content hashes to " + digestOf(t, objPath(s, d["a"])), Paths: []string{"/a", "/acopy", "/sub/alink"}},
					{Object: d["big"], Size: 1<<20 + 5, Problem: "content hashes to " + digestOf(t, objPath(s, d["big"])), Paths: []string{"/big"}},
					{Object: d["c"], Size: 100000, Problem: "size 50000, the image records 100000", Paths: []string{"/c"}},
				},
				Unprotected: []FsckObject{}}
			sortReport(&got)
			sortReport(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fsck:\n got %+v\nwant %+v", got, want)
			}
			if dm := got.Damaged(); len(dm) != 4 {
				t.Errorf("Damaged() = %q", dm)
			}
		})
	}
}

// sortReport orders the problem lists by digest (their order follows the
// image's walk, which depends on how Walk orders hardlinks).
func sortReport(r *FsckImage) {
	for _, l := range [][]FsckObject{r.Missing, r.Corrupt, r.Unprotected} {
		for i := range l {
			for j := i + 1; j < len(l); j++ {
				if l[j].Object < l[i].Object {
					l[i], l[j] = l[j], l[i]
				}
			}
		}
	}
}

// flip inverts one byte of a file in place (same inode, same size).
func flip(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFsckNotRegularObjects(t *testing.T) {
	s, _, image, d := fsckStore(t)
	pa, pb := objPath(s, d["a"]), objPath(s, d["b"])
	for _, p := range []string{pa, pb} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(objPath(s, d["big"]), pa); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pb, 0o755); err != nil {
		t.Fatal(err)
	}
	// A FIFO must not block the check.
	pc := objPath(s, d["c"])
	if err := os.Remove(pc); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(pc, 0o644); err != nil {
		t.Fatal(err)
	}
	got := fsck1(t, s, image)
	problems := map[string]string{}
	for _, o := range got.Corrupt {
		problems[o.Object] = o.Problem
	}
	want := map[string]string{d["a"]: "a symbolic link, not a regular file", d["b"]: "not a regular file", d["c"]: "not a regular file"}
	if got.Status != FsckDamaged || !reflect.DeepEqual(problems, want) || len(got.Missing) != 0 {
		t.Fatalf("fsck: %+v, want corrupt %v", got, want)
	}
}

func TestFsckImageObject(t *testing.T) {
	s, _, image, _ := fsckStore(t)
	p := objPath(s, image)
	flip(t, p, 100)
	bad := digestOf(t, p)
	got := fsck1(t, s, image)
	want := &FsckObject{Object: image, Size: fileSize(t, p), Problem: "content hashes to " + bad, Paths: []string{}}
	if got.Status != FsckDamaged || !reflect.DeepEqual(got.ImageObject, want) || got.Objects != 0 {
		t.Fatalf("corrupt image object: %+v", got)
	}
	if dm := got.Damaged(); !reflect.DeepEqual(dm, []string{image}) {
		t.Errorf("Damaged() = %q", dm)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	got = fsck1(t, s, image)
	if got.Status != FsckDamaged || got.ImageObject == nil || got.ImageObject.Problem != "missing" {
		t.Fatalf("missing image object: %+v", got)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// An image the store does not have cannot be checked (status error), and
// does not stop the others from being checked.
func TestFsckNotInStore(t *testing.T) {
	s, _, image, _ := fsckStore(t)
	other := strings.Repeat("ab", 32)
	reps, err := s.Fsck(context.Background(), []string{other, image})
	if err != nil {
		t.Fatal(err)
	}
	if reps[0].Status != FsckError || reps[0].Error != "image "+other+": not in the store" {
		t.Errorf("absent image: %+v", reps[0])
	}
	if reps[1].Status != FsckClean {
		t.Errorf("present image: %+v", reps[1])
	}
}

// TestFsckBatches: many small objects, checked in batches that fill up
// and are flushed several times, mixed with streamed ones; every damaged
// one is reported with its own digest and problem (a verdict given to the
// wrong object of a batch fails this), and every intact one is clean.
func TestFsckBatches(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 9))
	var names []string
	var total int64
	for i := range 150 {
		// Mostly one or two blocks, some up to the batch limit and a
		// few above it, some hashed in segments.
		n := 65 + rnd.IntN(8192)
		switch i % 10 {
		case 3:
			n = fsckBatchMax - rnd.IntN(100)
		case 7:
			n = fsckBatchMax + 1 + rnd.IntN(10000)
		case 9:
			n = 3*fsckSegment + rnd.IntN(10000) // in segments
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		name := fmt.Sprintf("f%03d", i)
		if err := os.WriteFile(filepath.Join(tree, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		total += int64(n)
	}
	for _, threads := range []int{1, 3} {
		t.Run(fmt.Sprint("threads=", threads), func(t *testing.T) {
			s, image := importInto(t, tree)
			if got := fsck1(t, s, image, WithUserspace(), WithFsckThreads(threads)); got.Status != FsckClean || got.Objects != len(names) || got.Bytes != total {
				t.Fatalf("fresh import: %+v", got)
			}
			want := FsckImage{Image: image, Status: FsckDamaged, Objects: len(names), Bytes: total,
				Missing: []FsckObject{}, Corrupt: []FsckObject{}, Unprotected: []FsckObject{}}
			for i, name := range names {
				if i%4 != 1 {
					continue
				}
				digest := digestOf(t, filepath.Join(tree, name))
				p := objPath(s, digest)
				size := fileSize(t, p)
				fo := FsckObject{Object: digest, Size: size, Paths: []string{"/" + name}}
				switch i % 3 {
				case 0:
					flip(t, p, size-1)
					fo.Problem = "content hashes to " + digestOf(t, p)
				case 1:
					if err := os.Truncate(p, size-1); err != nil {
						t.Fatal(err)
					}
					fo.Problem = fmt.Sprintf("size %d, the image records %d", size-1, size)
				case 2:
					if err := os.Truncate(p, size+4096); err != nil {
						t.Fatal(err)
					}
					fo.Problem = fmt.Sprintf("size %d, the image records %d", size+4096, size)
				}
				want.Corrupt = append(want.Corrupt, fo)
			}
			got := fsck1(t, s, image, WithUserspace(), WithFsckThreads(threads))
			sortReport(&got)
			sortReport(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fsck:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestFsckSizeChangesWhileSplit: a big object that shrinks or grows
// after it was split into segments is reported with its new size.
func TestFsckSizeChangesWhileSplit(t *testing.T) {
	const size = 1<<20 + 5 // fsckTree's /big
	for _, c := range []struct {
		name    string
		newSize int64
	}{{"shrinks", 4096 + 7}, {"grows", size + 1}} {
		t.Run(c.name, func(t *testing.T) {
			s, _, _, d := fsckStore(t)
			p := objPath(s, d["big"])
			run := &fsckRun{s: s}
			run.queue.cond = sync.NewCond(&run.queue.mu)
			w, err := newFsckWorker()
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(p, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			o := &fsckObj{size: size}
			copy(o.digest[:], mustDecodeHex(t, d["big"]))
			run.split(fd, o)
			if len(run.queue.segs) < 2 {
				t.Fatalf("%d segments", len(run.queue.segs))
			}
			if err := os.Truncate(p, c.newSize); err != nil {
				t.Fatal(err)
			}
			for _, j := range run.queue.segs {
				run.segment(w, j.big, j.seg)
			}
			want := fmt.Sprintf("size %d, the image records %d", c.newSize, size)
			if o.state != objCorrupt || o.problem != want {
				t.Fatalf("state %d %q, want corrupt %q", o.state, o.problem, want)
			}
		})
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
