package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// vectorOut holds the golden vectors' images, digests and object lists.
const vectorOut = "../../testdata/vectors/out"

// storeVectorTree recreates a vector's tree from its recipe (needs root:
// mknod, chown, trusted.* xattrs).
func storeVectorTree(t *testing.T, name string) string {
	t.Helper()
	testutil.RequiresRoot(t)
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `set -e; umask 022; . ./lib.sh; . "recipes/$1.sh"`, "sh", name)
	cmd.Dir = filepath.Dir(vectorOut)
	cmd.Env = append(os.Environ(), "T="+tree)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recipe %s: %v\n%s", name, err, out)
	}
	return tree
}

// storeObjects lists objects/ as "XX/YYYY... SIZE" lines, sorted.
func storeObjects(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(s.ObjectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.ObjectsDir(), p)
		out = append(out, fmt.Sprintf("%s %d", rel, fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// storeVerify checks that every object's content matches its name and
// that tmp/ is empty (when wantClean).
func storeVerify(t *testing.T, s *Store, wantClean bool) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(s.ObjectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(s.ObjectsDir(), p)
		got, err := verity.DigestFile(p)
		if err != nil {
			return err
		}
		if want := strings.Replace(rel, "/", "", 1); hex.EncodeToString(got) != want {
			t.Errorf("object %s has content with digest %x", rel, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wantClean {
		ents, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("leftover in tmp/: %s", e.Name())
		}
	}
	return n
}

// storeCheckImage checks images/DIGEST and that the image needs nothing
// the store lacks.
func storeCheckImage(t *testing.T, s *Store, digest string) *composefs.Image {
	t.Helper()
	p, err := s.ImagePath(digest)
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "../objects/" + digest[:2] + "/" + digest[2:]; target != want {
		t.Errorf("images/%s -> %s, want %s", digest, target, want)
	}
	img, err := composefs.ReadImageFile(p)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := img.MissingObjects(s.ObjectsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("image %s: objects missing from the store: %q", digest, missing)
	}
	return img
}

// TestStoreImportVectors imports every vector tree: the digest, the image
// bytes and the objects equal mkcomposefs' (store-list.txt), plus the
// image itself as an object.
func TestStoreImportVectors(t *testing.T) {
	for _, name := range testutil.Vectors(t, vectorOut) {
		t.Run(name, func(t *testing.T) {
			tree := storeVectorTree(t, name)
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			digest, err := s.ImportTree(tree)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSpace(string(testutil.VectorFile(t, vectorOut, name, "digest.txt"))); digest != want {
				t.Fatalf("digest %s, want %s", digest, want)
			}
			p, _ := s.ImagePath(digest)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			wantSum := strings.Fields(string(testutil.VectorFile(t, vectorOut, name, "image.sha256")))[0]
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != wantSum {
				t.Errorf("stored image sha256 %x, want %s", sum, wantSum)
			}
			storeCheckImage(t, s, digest)
			imageObj := fmt.Sprintf("%s/%s %d", digest[:2], digest[2:], len(data))
			var got []string
			for _, l := range storeObjects(t, s) {
				if l != imageObj {
					got = append(got, l)
				}
			}
			want := strings.Fields(string(testutil.VectorFile(t, vectorOut, name, "store-list.txt")))
			var wantLines []string
			for i := 0; i+1 < len(want); i += 2 {
				wantLines = append(wantLines, want[i]+" "+want[i+1])
			}
			if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
				t.Errorf("store objects:\n%s\nwant (store-list.txt):\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
			}
			storeVerify(t, s, true)
		})
	}
}

type storeFileID struct {
	ino   uint64
	mtime int64
	ctime int64
}

func storeSnapshot(t *testing.T, dir string) map[string]storeFileID {
	t.Helper()
	m := map[string]storeFileID{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if !d.IsDir() {
			m[p] = storeFileID{st.Ino, st.Mtim.Nano(), st.Ctim.Nano()}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStoreImportTwice: a second import of the same tree finds everything
// in place and rewrites nothing (same inodes, mtimes and ctimes).
func TestStoreImportTwice(t *testing.T) {
	tree := storeVectorTree(t, "03-small-files")
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d1, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	before := storeSnapshot(t, s.Dir())
	time.Sleep(20 * time.Millisecond) // so that a rewrite would show in the times
	d2, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("digests differ: %s, %s", d1, d2)
	}
	after := storeSnapshot(t, s.Dir())
	for p, id := range before {
		if strings.HasSuffix(p, "/lock") {
			continue
		}
		if after[p] != id {
			t.Errorf("%s rewritten: %+v -> %+v", p, id, after[p])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d files after the second import, %d before", len(after), len(before))
	}
}

// TestStoreImportProgress: a tree import reports each stored file's size
// once (the files inlined in the image are not stored), from its workers.
func TestStoreImportProgress(t *testing.T) {
	tree := t.TempDir()
	var want int64
	for i, size := range []int{5000, 70000, 300000, 5000} {
		// Two files of equal content: stored once, reported for each.
		content := bytes.Repeat([]byte{byte(i % 3)}, size)
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprint("f", i)), content, 0o644); err != nil {
			t.Fatal(err)
		}
		want += int64(size)
	}
	if err := os.WriteFile(filepath.Join(tree, "inline"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got, calls int64
	s, err := Open(t.TempDir(), WithThreads(3), WithImportProgress(func(n int64) {
		mu.Lock()
		got += n
		calls++
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportTreeAs(tree, ""); err != nil {
		t.Fatal(err)
	}
	if got != want || calls != 4 {
		t.Fatalf("progress reported %d bytes in %d calls, want %d in 4", got, calls, want)
	}
}

// TestStoreNamedTemps: where O_TMPFILE is missing, objects go through
// named files in the session directory, with the same result.
func TestStoreNamedTemps(t *testing.T) {
	tree := storeVectorTree(t, "05-large-files")
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.noTmpfile = true
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(testutil.VectorFile(t, vectorOut, "05-large-files", "digest.txt"))); digest != want {
		t.Fatalf("digest %s, want %s", digest, want)
	}
	storeCheckImage(t, s, digest)
	if n := storeVerify(t, s, true); n != 4 {
		t.Fatalf("%d objects, want 4", n)
	}
}

// TestStoreRepairsBadObject: an object whose content does not match its
// name (e.g. cut short by a power failure) is replaced by the next import.
func TestStoreRepairsBadObject(t *testing.T) {
	tree := storeVectorTree(t, "04-block-sizes")
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	var objs []string // the files' objects, not the image's
	for _, l := range storeObjects(t, s) {
		if !strings.HasPrefix(l, digest[:2]+"/"+digest[2:]) {
			objs = append(objs, l)
		}
	}
	// One at a time: a re-import finding a wrong object among correct
	// ones still looks for each object before copying its file, while the
	// file's content is in the worker's buffer.
	victim := filepath.Join(s.ObjectsDir(), strings.Fields(objs[0])[0])
	wrong := bytes.Repeat([]byte{'x'}, int(mustSize(t, victim)))
	if err := os.WriteFile(victim, wrong, 0o644); err != nil { // same size, wrong content
		t.Fatal(err)
	}
	if _, err := s.ImportTree(tree); err != nil {
		t.Fatal(err)
	}
	if n := storeVerify(t, s, true); n != len(objs)+1 {
		t.Fatalf("%d objects after repair, want %d", n, len(objs)+1)
	}
	other := filepath.Join(s.ObjectsDir(), strings.Fields(objs[1])[0])
	if err := os.Truncate(other, 10); err != nil { // cut short
		t.Fatal(err)
	}
	if _, err := s.ImportTree(tree); err != nil {
		t.Fatal(err)
	}
	if n := storeVerify(t, s, true); n != len(objs)+1 {
		t.Fatalf("%d objects after repair, want %d", n, len(objs)+1)
	}
}

// TestStoreFreshImportFindsObjects: once an import has had to write most
// of its objects it no longer looks for each before copying (a fresh
// import); an object that is there all the same is found when the copy
// cannot take its name: kept if correct (not rewritten), replaced if not.
func TestStoreFreshImportFindsObjects(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	var idx []int
	for i := range 40 {
		idx = append(idx, i)
	}
	// Sizes on both sides of the worker buffer: whole and streamed copies.
	buf := len(newContentWorker(t).Buffer())
	storeRandomTree(t, tree, 3, idx, func(i int) int { return 1000 + i*(buf/20) })
	want, err := composefs.BuildTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	// The files scanned last (d16/f0016, copied whole, and d16/f0033,
	// streamed) have objects before the import: a correct one and, of the
	// same size, a wrong one.
	s, err := Open(t.TempDir(), WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	var good string
	for _, name := range []string{"f0016", "f0033"} {
		n := want.Root.Lookup("d16").Lookup(name)
		p := filepath.Join(s.ObjectsDir(), n.Payload)
		data, err := os.ReadFile(filepath.Join(tree, "d16", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "f0016" {
			good = p
		} else {
			data[len(data)/2] ^= 1
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(good, &st); err != nil {
		t.Fatal(err)
	}
	goodIno := st.Ino
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := want.Digest()
	if digest != hex.EncodeToString(wd) {
		t.Fatalf("digest %s, want %x", digest, wd)
	}
	storeCheckImage(t, s, digest)
	if n := storeVerify(t, s, true); n != 41 {
		t.Fatalf("%d objects, want 41", n)
	}
	if err := syscall.Stat(good, &st); err != nil || st.Ino != goodIno {
		t.Errorf("the correct object was rewritten (%v)", err)
	}
}

func mustSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestStoreSourceChanged: content that does not match what the scan saw
// (its lstat size, or the digest of a first read) is refused, and nothing
// is left behind, on every path a file can take into the store.
// newContentWorker returns a content worker outside a scan, as a stream
// import uses.
func newContentWorker(t *testing.T) *composefs.ContentWorker {
	w, err := composefs.NewContentWorker()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestStoreSourceChanged(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small") // fits in a worker's buffer
	if err := os.WriteFile(small, bytes.Repeat([]byte("abc"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newContentWorker(t)
	buf := len(w.Buffer())
	big := filepath.Join(dir, "big") // streamed
	if err := os.WriteFile(big, bytes.Repeat([]byte("abcdefg"), buf), 0o644); err != nil {
		t.Fatal(err)
	}
	se, err := s.newSession()
	if err != nil {
		t.Fatal(err)
	}
	defer se.close()
	open := func(p string) int {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	for _, c := range []struct {
		name string
		path string
		size int64 // what the scan's lstat said
	}{
		{"small file grew", small, 2999},
		{"small file shrank", small, 3001},
		{"big file grew", big, int64(7*buf - 1)},
		{"big file shrank", big, int64(7*buf + 1)},
	} {
		if _, err := se.storeContent(w, open(c.path), c.path, c.size); !errors.Is(err, composefs.ErrSourceChanged) {
			t.Errorf("%s: err = %v, want ErrSourceChanged", c.name, err)
		}
	}
	// A re-import hashes big files first and copies them if missing: the
	// copy must have the digest of the first read.
	stale := make([]byte, composefs.DigestSize)
	final := filepath.Join(s.ObjectsDir(), composefs.ObjectPath(stale))
	err = se.copyObject(w, open(big), big, stale, int64(7*buf), final)
	if !errors.Is(err, composefs.ErrSourceChanged) {
		t.Errorf("copy with another digest: err = %v, want ErrSourceChanged", err)
	}
	se.close()
	if n := storeVerify(t, s, true); n != 0 {
		t.Fatalf("%d objects stored", n)
	}
}

func TestStoreImportImage(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(vectorOut, "03-small-files", "image.cfs")
	digest, err := s.ImportImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(testutil.VectorFile(t, vectorOut, "03-small-files", "digest.txt"))); digest != want {
		t.Fatalf("digest %s, want %s", digest, want)
	}
	if !s.HasImage(id(t, digest)) || s.HasImage(id(t, strings.Repeat("0", 64))) {
		t.Fatal("HasImage wrong")
	}
	p, err := s.ImagePath(digest)
	if err != nil {
		t.Fatal(err)
	}
	i, err := composefs.ReadImageFile(p)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := i.MissingObjects(s.ObjectsDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(missing, "\n")+"\n", string(testutil.VectorFile(t, vectorOut, "03-small-files", "objects.txt")); got != want {
		t.Errorf("missing objects %q, want %q", got, want)
	}
	if _, err := s.ImagePath(strings.Repeat("a", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("ImagePath of an unknown image: %v", err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("A", 64), strings.Repeat("a", 62), "../" + strings.Repeat("a", 61)} {
		if _, err := s.ObjectPath(bad); !errors.Is(err, ErrBadDigest) {
			t.Errorf("ObjectPath(%q): %v, want ErrBadDigest", bad, err)
		}
		if _, err := s.ImagePath(bad); !errors.Is(err, ErrBadDigest) {
			t.Errorf("ImagePath(%q): %v, want ErrBadDigest", bad, err)
		}
	}
	// A corrupt image is refused and not stored.
	data, _ := os.ReadFile(img)
	data[1024] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.cfs")
	os.WriteFile(bad, data, 0o644)
	if _, err := s.ImportImage(bad); !errors.Is(err, composefs.ErrInvalidImage) {
		t.Errorf("ImportImage of a corrupt image: %v", err)
	}
}

// storeRandomTree writes files of deterministic random content. Files
// whose index is in shared get content from the shared seed space, so
// trees made with overlapping index sets share objects.
func storeRandomTree(t *testing.T, dir string, seed uint64, idx []int, size func(i int) int) {
	t.Helper()
	for _, i := range idx {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%17))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		r := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(seed)})
		b := make([]byte, size(i))
		r.Read(b)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreHelperProcess is the child of the kill and concurrency tests:
// it imports CFS_STORE_TREE into CFS_STORE_DIR and prints the digest.
func TestStoreHelperProcess(t *testing.T) {
	if os.Getenv("CFS_STORE_HELPER") != "1" {
		t.Skip("helper process for other tests")
	}
	s, err := Open(os.Getenv("CFS_STORE_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	d, err := s.ImportTree(os.Getenv("CFS_STORE_TREE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(d)
	os.Exit(0)
}

func storeHelper(store, tree string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$")
	cmd.Env = append(os.Environ(), "CFS_STORE_HELPER=1", "CFS_STORE_DIR="+store, "CFS_STORE_TREE="+tree)
	return cmd
}

// TestStoreKilledImport kills an import with SIGKILL while it copies files,
// then checks that no object under its final name is partial and that a
// new import completes the store and cleans up the dead one's files.
func TestStoreKilledImport(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	var idx []int
	for i := range 600 {
		idx = append(idx, i)
	}
	// ~150 MiB in 600 files of 4 KiB..512 KiB.
	storeRandomTree(t, tree, 1, idx, func(i int) int { return 4096 + (i*7919)%(512<<10) })
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := storeHelper(dir, tree)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the child has placed some objects and is still copying.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child never started copying")
		}
		if n := countObjects(t, s); n >= 20 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed (%v; stderr %s): it finished too fast for this test", err, stderr.String())
	}
	placed := countObjects(t, s)
	t.Logf("killed after %d objects", placed)
	if ents, _ := os.ReadDir(filepath.Join(dir, "images")); len(ents) != 0 {
		t.Fatalf("killed import left an image link")
	}
	storeVerify(t, s, false) // every object under its final name is complete
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) == 0 {
		t.Error("the killed import left no session in tmp/: the cleanup below is not tested")
	}
	digest, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	want, err := composefs.Digest(tree)
	if err != nil {
		t.Fatal(err)
	}
	if digest != hex.EncodeToString(want) {
		t.Fatalf("digest %s, want %x", digest, want)
	}
	storeCheckImage(t, s, digest)
	if n := storeVerify(t, s, true); n != 601 {
		t.Fatalf("%d objects, want 601 (600 files and the image)", n)
	}
}

func countObjects(t *testing.T, s *Store) int {
	n := 0
	for i := range 256 {
		ents, err := os.ReadDir(filepath.Join(s.ObjectsDir(), fmt.Sprintf("%02x", i)))
		if err != nil {
			t.Fatal(err)
		}
		n += len(ents)
	}
	return n
}

// TestStoreConcurrentImports runs 8 imports of overlapping trees at once,
// in 8 processes: every image complete, each shared file stored once,
// nothing left in tmp/.
func TestStoreConcurrentImports(t *testing.T) {
	const n = 8
	base := t.TempDir()
	dir := t.TempDir()
	var trees []string
	unique := map[string]bool{}
	for k := range n {
		tree := filepath.Join(base, fmt.Sprintf("t%d", k))
		// Files 0..199 overlap between neighbours: tree k has 20k..20k+59,
		// plus one file only it has.
		var idx []int
		for i := 20 * k; i < 20*k+60; i++ {
			idx = append(idx, i)
		}
		storeRandomTree(t, tree, 2, idx, func(i int) int { return 100 + (i*104729)%(256<<10) })
		storeRandomTree(t, filepath.Join(tree, "own"), uint64(100+k), []int{k}, func(int) int { return 5000 })
		trees = append(trees, tree)
		for _, i := range idx {
			unique[fmt.Sprint(i)] = true
		}
		unique[fmt.Sprint("own", k)] = true
	}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, tree := range trees {
		cmd := storeHelper(dir, tree)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, &out)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("import %d: %v\n%s", k, err, outs[k])
		}
		digest := strings.TrimSpace(outs[k].String())
		want, err := composefs.Digest(trees[k])
		if err != nil {
			t.Fatal(err)
		}
		if digest != hex.EncodeToString(want) {
			t.Fatalf("import %d printed %q, want %x", k, digest, want)
		}
		storeCheckImage(t, s, digest)
	}
	if got, want := storeVerify(t, s, true), len(unique)+n; got != want {
		t.Fatalf("%d objects, want %d (%d distinct files, %d images)", got, want, len(unique), n)
	}
}

// id is the composefs digest of a store image named by its hex digest.
func id(t testing.TB, hex string) composefs.ImageDigest {
	t.Helper()
	d, err := composefs.ParseDigestValue(verity.SHA256, verity.DefaultBlockSize, hex)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
