package composefs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

func parseDumpString(t *testing.T, s string) *Tree {
	t.Helper()
	tr, err := ParseDump(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func imageBytes(t *testing.T, tr *Tree, opts ...Option) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := tr.WriteImage(&b, opts...); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// mountImage mounts img with the kernel's EROFS driver, which checks the
// layout (inline tails within a block, dirents, xattrs) as it reads.
func mountImage(t *testing.T, img []byte) string {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "image.cfs")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", p, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

func escapeAll(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "\\x%02x", c)
	}
	return s.String()
}

func TestHardlinksFromDump(t *testing.T) {
	tr := parseDumpString(t, rootLine+
		"/a 5 100644 3 0 0 0 1700000000.0 - hello -\n"+
		"/b 0 @100644 0 0 0 0 0.0 /a - -\n"+
		"/d 0 40755 2 0 0 0 1700000000.0 - - -\n"+
		"/d/c 0 @100644 0 0 0 0 0.0 /a - -\n"+
		"/e 0 @100644 0 0 0 0 0.0 /z - -\n"+ // target comes later
		"/z 3 100644 2 7 8 0 1700000000.0 - xyz -\n")
	img := imageBytes(t, tr)
	// root, a, d, z and the 256 root whiteouts: hardlinks are no inodes.
	if inos := binary.LittleEndian.Uint64(img[1024+16:]); inos != 260 {
		t.Errorf("superblock inos = %d, want 260", inos)
	}
	mnt := mountImage(t, img)
	st := func(p string) unix.Stat_t {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(mnt, p), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := st("a"), st("b"), st("d/c")
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 || b.Nlink != 3 {
		t.Errorf("a/b/d/c: ino %d %d %d, nlink %d (want one inode, nlink 3 from the dump)", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	e, z := st("e"), st("z")
	if e.Ino != z.Ino || e.Nlink != 2 || e.Uid != 7 || e.Gid != 8 {
		t.Errorf("e/z: ino %d %d nlink %d uid %d gid %d", e.Ino, z.Ino, e.Nlink, e.Uid, e.Gid)
	}
	for p, want := range map[string]string{"b": "hello", "d/c": "hello", "e": "xyz"} {
		if got, err := os.ReadFile(filepath.Join(mnt, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
}

// TestInlineAndSymlinkLayout covers the tail placement rules with sizes
// the vectors do not reach: dump inline content up to 5000 bytes (tails
// > 2048 become a data block), symlinks close to 4096 bytes, and xattrs so
// large that an inline tail cannot follow the inode in its block.
func TestInlineAndSymlinkLayout(t *testing.T) {
	var dump strings.Builder
	dump.WriteString(rootLine)
	contents := map[string][]byte{}
	for i, n := range []int{1, 64, 65, 2048, 2049, 3000, 4095, 4096, 4097, 5000} {
		c := bytes.Repeat([]byte{byte(i + 1), 0, '\n', ' ', '\\'}, n/5+1)[:n]
		name := fmt.Sprintf("f%d", n)
		contents[name] = c
		fmt.Fprintf(&dump, "/%s %d 100644 1 0 0 0 1700000000.0 - %s -\n", name, n, escapeAll(c))
	}
	big := strings.Repeat("x", 1300)
	for _, n := range []int{100, 1500} {
		c := bytes.Repeat([]byte{'y'}, n)
		name := fmt.Sprintf("xattrs%d", n)
		contents[name] = c
		fmt.Fprintf(&dump, "/%s %d 100644 1 0 0 0 1700000000.0 - %s - user.a=%s user.b=%s user.c=%s\n", name, n, c, big, big, big)
	}
	targets := map[string]string{}
	for _, n := range []int{4000, 4031, 4032, 4063, 4064, 4065, 4095} {
		name := fmt.Sprintf("l%d", n)
		targets[name] = strings.Repeat("t", n)
		fmt.Fprintf(&dump, "/%s %d 120777 1 0 0 0 1700000000.0 %s - -\n", name, n, targets[name])
	}
	targets["lx"] = strings.Repeat("u", 3000)
	fmt.Fprintf(&dump, "/lx 3000 120777 1 0 0 0 1700000000.0 %s - - user.a=%s\n", targets["lx"], big)
	tr := parseDumpString(t, dump.String())
	img := imageBytes(t, tr)
	if len(img)%blkSize != 0 {
		t.Fatalf("image size %d is not a multiple of %d", len(img), blkSize)
	}
	mnt := mountImage(t, img)
	for name, want := range contents {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes (%v), want %d bytes", name, len(got), err, len(want))
		}
	}
	for name, want := range targets {
		got, err := os.Readlink(filepath.Join(mnt, name))
		if err != nil || got != want {
			t.Errorf("%s: readlink %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	buf := make([]byte, 2000)
	n, err := unix.Lgetxattr(filepath.Join(mnt, "xattrs1500"), "user.c", buf)
	if err != nil || string(buf[:n]) != big {
		t.Errorf("xattrs1500 user.c: %d bytes, %v", n, err)
	}
}

func TestWriteDeterministic(t *testing.T) {
	f, err := os.Open(filepath.Join(vectorsDir, "out", "13-xattrs", "dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ParseDump(f)
	if err != nil {
		t.Fatal(err)
	}
	a := imageBytes(t, tr)
	b := imageBytes(t, tr) // the writer must not have changed the tree
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of the same tree differ")
	}
	d, err := tr.Digest()
	if err != nil {
		t.Fatal(err)
	}
	want, err := verity.DigestReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d, want) {
		t.Errorf("Digest %x, fs-verity of WriteImage %x", d, want)
	}
}

func TestVersionRule(t *testing.T) {
	plain := parseDumpString(t, rootLine)
	wh := parseDumpString(t, rootLine+"/w 0 20644 1 0 0 0 1700000000.0 - - -\n")
	for _, tc := range []struct {
		name string
		tr   *Tree
		opts []Option
		want uint32
	}{
		{"plain default", plain, nil, 0},
		{"whiteout default", wh, nil, 1},
		{"whiteout max 0", wh, []Option{WithMaxVersion(0)}, 0},
		{"whiteout min 0 only", wh, []Option{WithMinVersion(0)}, 0},
		{"plain min 1", plain, []Option{WithMinVersion(1)}, 1},
		{"plain min 1 max 0", plain, []Option{WithMinVersion(1), WithMaxVersion(0)}, 1},
	} {
		img := imageBytes(t, tc.tr, tc.opts...)
		if got := binary.LittleEndian.Uint32(img[12:]); got != tc.want {
			t.Errorf("%s: composefs_version %d, want %d", tc.name, got, tc.want)
		}
	}
	for _, opts := range [][]Option{{WithMinVersion(2)}, {WithMaxVersion(2)}, {WithMinVersion(-1)}} {
		if err := plain.WriteImage(&bytes.Buffer{}, opts...); !errors.Is(err, ErrVersion) {
			t.Errorf("unsupported version: err %v, want ErrVersion", err)
		}
	}
}

func TestInvalidTrees(t *testing.T) {
	file := &Node{Name: "f", Mode: ModeRegular | 0o644}
	for _, tc := range []struct {
		name string
		tr   *Tree
	}{
		{"nil root", &Tree{}},
		{"root not a dir", &Tree{Root: file}},
		{"bad symlink", &Tree{Root: &Node{Mode: ModeDir | 0o755, Children: []*Node{{Name: "l", Mode: ModeSymlink | 0o777}}}}},
		{"bad name", &Tree{Root: &Node{Mode: ModeDir | 0o755, Children: []*Node{{Name: "a/b", Mode: ModeRegular}}}}},
		{"short digest", &Tree{Root: &Node{Mode: ModeDir | 0o755, Children: []*Node{{Name: "a", Mode: ModeRegular, Size: 100, Digest: []byte{1}}}}}},
		{"content size", &Tree{Root: &Node{Mode: ModeDir | 0o755, Children: []*Node{{Name: "a", Mode: ModeRegular, Size: 2, Content: []byte{1}}}}}},
		{"unknown type", &Tree{Root: &Node{Mode: ModeDir | 0o755, Children: []*Node{{Name: "a", Mode: 0o644}}}}},
	} {
		if err := tc.tr.WriteImage(&bytes.Buffer{}); !errors.Is(err, ErrInvalidTree) {
			t.Errorf("%s: err %v, want ErrInvalidTree", tc.name, err)
		}
	}
}

func TestBuildTreeErrors(t *testing.T) {
	if _, err := BuildTree(t.TempDir(), WithSkipXattrs(), WithUserXattrs()); !errors.Is(err, ErrConflictingOptions) {
		t.Errorf("skip+user xattrs: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildTree(f); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("file as tree: %v", err)
	}
	if _, err := BuildTree(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing tree: %v", err)
	}
}

// TestCopyObjects checks the minimal digest store: every external file
// once under its digest, nothing for inline files, nothing left behind.
func TestCopyObjects(t *testing.T) {
	src := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("0123456789"), 1000)
	write("a", big)
	write("b", big) // same content, same object
	write("c", big[:65])
	write("small", big[:64])
	tr, err := BuildTree(src, WithThreads(3))
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "objects")
	if err := tr.CopyObjects(store); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(store, p)
			got = append(got, rel)
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", rel, fi.Mode())
			}
			d, err := verity.DigestFile(p)
			if err != nil {
				return err
			}
			if ObjectPath(d) != rel {
				t.Errorf("%s: content digest %x", rel, d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{tr.Root.Lookup("a").Payload, tr.Root.Lookup("c").Payload}
	if len(got) != 2 || !(got[0] == want[0] && got[1] == want[1] || got[0] == want[1] && got[1] == want[0]) {
		t.Errorf("store holds %q, want %q", got, want)
	}
	if tr.Root.Lookup("small").Payload != "" || tr.Root.Lookup("a").Payload != tr.Root.Lookup("b").Payload {
		t.Error("inline file has a payload, or identical files differ")
	}
	// Again: existing objects are kept as they are.
	if err := tr.CopyObjects(store); err != nil {
		t.Fatal(err)
	}
	dump := parseDumpString(t, rootLine)
	if err := dump.CopyObjects(store); !errors.Is(err, ErrNoSource) {
		t.Errorf("tree from a dump: %v", err)
	}
}

// synthTree returns a tree of dirs×files regular files referenced by
// digest, without touching the disk.
func synthTree(dirs, files int) *Tree {
	root := &Node{Mode: ModeDir | 0o755, MtimeSec: 1700000000}
	n := 0
	for d := range dirs {
		dir := &Node{Name: fmt.Sprintf("dir%05d", d), Mode: ModeDir | 0o755, MtimeSec: 1700000000, Parent: root}
		root.Children = append(root.Children, dir)
		for f := range files {
			dg := make([]byte, DigestSize)
			binary.LittleEndian.PutUint32(dg, uint32(n))
			dir.Children = append(dir.Children, &Node{
				Name: fmt.Sprintf("file%05d", f), Mode: ModeRegular | 0o644, Nlink: 1, Size: 1000,
				MtimeSec: 1700000000, Digest: dg, Payload: ObjectPath(dg), Parent: dir,
			})
			n++
		}
	}
	return &Tree{Root: root}
}

// BenchmarkDigest100k measures the image writer alone (no hashing of file
// contents) on 100,000 files; -benchmem shows the memory it needs per tree.
func BenchmarkDigest100k(b *testing.B) {
	tr := synthTree(100, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}
