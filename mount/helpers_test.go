//go:build linux

package mount

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// env is one test's image, object store and state root.
type env struct {
	src, image, objects, root string
	file                      *os.File           // the image, open (closed by the test's cleanup)
	treeOpts                  []composefs.Option // the tree's (objectOf builds it again)
}

// newEnv builds a composefs image of a generated tree with the composefs
// writer and copies its objects. Everything left mounted under the state
// root is cleaned up before the temporary directory is removed.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvIn(t, "")
}

// newEnvIn is newEnv with the tree, image and objects in a new directory
// under store ("": the test's temporary directory); the state root is
// always in the test's temporary directory.
func newEnvIn(t testing.TB, store string) *env {
	t.Helper()
	return newEnvWith(t, store)
}

// newEnvWith is newEnvIn with the tree built with opts (e.g.
// composefs.WithHash(verity.SHA512)).
func newEnvWith(t testing.TB, store string, opts ...composefs.Option) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	resetFeatureCache(t)
	base := t.TempDir()
	data := base
	if store != "" {
		var err error
		if data, err = os.MkdirTemp(store, "mount-test-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(data) })
	}
	e := &env{
		src:     filepath.Join(data, "src"),
		image:   filepath.Join(data, "image.cfs"),
		objects: filepath.Join(data, "objects"),
		root:    filepath.Join(base, "run cfs"), // a space: mountinfo escapes it as \040
	}
	genTree(t, e.src)
	e.treeOpts = opts
	tree, err := composefs.BuildTree(e.src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(e.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.WriteImage(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tree.CopyObjects(e.objects); err != nil {
		t.Fatal(err)
	}
	e.file = openImage(t, e.image)
	t.Cleanup(func() {
		if _, err := Cleanup(e.root, func(string) bool { return false }); err != nil {
			t.Errorf("final cleanup: %v", err)
		}
	})
	return e
}

func (e *env) opts(id string) Options {
	return Options{Image: ImageFile(e.file), ObjectsDir: e.objects, StateDir: filepath.Join(e.root, id)}
}

// openImage opens an image file for ImageFile, until the test ends.
func openImage(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// resetFeatureCache forgets what earlier tests learnt about the kernel and
// restores the test hooks afterwards.
func resetFeatureCache(t testing.TB) {
	fileBacked.Clear()
	layerAppend.Store(unknown)
	saved := fsmountEROFSFile
	t.Cleanup(func() {
		fileBacked.Clear()
		layerAppend.Store(unknown)
		fsmountEROFSFile = saved
		checkVerity = checkObjectsVerity
		testHookAfterOverlay = nil
	})
}

// forceLoop makes file-backed EROFS fail as on a kernel without it, and
// counts the attempts on image files.
func forceLoop(t testing.TB) *int {
	t.Helper()
	var mu sync.Mutex
	n := new(int)
	saved := fsmountEROFSFile
	t.Cleanup(func() { fsmountEROFSFile = saved })
	fsmountEROFSFile = func(source string) (int, error) {
		if !strings.HasPrefix(source, "/dev/loop") {
			mu.Lock()
			*n++
			mu.Unlock()
			return -1, &KernelError{Op: "erofs: fsconfig create", Errno: unix.ENOTBLK}
		}
		return fsmountEROFS(source)
	}
	return n
}

var (
	mtime1 = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	mtime2 = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// genTree writes a tree with every kind of entry composefs stores: inline
// (≤ 64 bytes) and external files, duplicates, deep directories, symlinks,
// a fifo, a device, odd modes and owners, user xattrs and mtimes.
func genTree(t testing.TB, dir string) {
	t.Helper()
	big := make([]byte, 300_000)
	rand.Read(big)
	files := map[string][]byte{
		"empty":                nil,
		"inline64":             bytes.Repeat([]byte("i"), 64),
		"ext65":                bytes.Repeat([]byte("e"), 65),
		"page":                 bytes.Repeat([]byte("p"), 4096),
		"big":                  big,
		"dup1":                 bytes.Repeat([]byte("dup"), 100),
		"dup2":                 bytes.Repeat([]byte("dup"), 100),
		"a/b/c/deep":           bytes.Repeat([]byte("deep"), 1250),
		"a/small":              []byte("hello\n"),
		"etc/passwd":           []byte("root:x:0:0:root:/root:/bin/sh\n"),
		"bin/tool":             bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 50),
		"priv/secret":          bytes.Repeat([]byte("s"), 200),
		"name with spaces":     bytes.Repeat([]byte("n"), 100),
		"unicode-\u00e9\u00e8": []byte("u"),
	}
	testutil.WriteTree(t, dir, files)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "emptydir"), 0o755))
	must(os.Symlink("a/b", filepath.Join(dir, "link-rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "link-abs")))
	must(os.Symlink("dangling", filepath.Join(dir, "link-dangling")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Chmod(filepath.Join(dir, "bin/tool"), 0o4755))
	must(os.Chmod(filepath.Join(dir, "priv/secret"), 0o600))
	must(os.Lchown(filepath.Join(dir, "priv/secret"), 1000, 1001))
	must(os.Chmod(filepath.Join(dir, "priv"), 0o700))
	must(os.Lchown(filepath.Join(dir, "priv"), 1000, 1000))
	must(os.Lchown(filepath.Join(dir, "link-abs"), 1002, 1002))
	must(unix.Lsetxattr(filepath.Join(dir, "a/small"), "user.test", []byte("value"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "a"), "user.dir", []byte("d"), 0))
	must(os.Chtimes(filepath.Join(dir, "big"), mtime1, mtime1))
	must(os.Chtimes(filepath.Join(dir, "a/b/c/deep"), mtime2, mtime2))
	// The root: its mode and owner must show through a writable overlay.
	must(os.Chmod(dir, 0o750))
	must(os.Lchown(dir, 0, 1003))
}

// compareTree checks that every entry of src is in got with the same
// type, mode, owner, size, mtime, device number, symlink target, user
// xattrs and content, and that got has nothing else. The root's mtime is
// not compared when rootMtime is false (a writable overlay's root is the
// upper directory).
func compareTree(t *testing.T, src, got string, rootMtime bool) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(got, rel)
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		n++
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid {
			t.Errorf("%s: mode/uid/gid %o %d %d, want %o %d %d", rel, b.Mode, b.Uid, b.Gid, a.Mode, a.Uid, a.Gid)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFDIR && a.Size != b.Size {
			t.Errorf("%s: size %d, want %d", rel, b.Size, a.Size)
		}
		if (rel != "." || rootMtime) && a.Mtim != b.Mtim {
			t.Errorf("%s: mtime %v, want %v", rel, b.Mtim, a.Mtim)
		}
		if a.Mode&unix.S_IFMT == unix.S_IFCHR && a.Rdev != b.Rdev {
			t.Errorf("%s: rdev %d, want %d", rel, b.Rdev, a.Rdev)
		}
		if xa, xb := userXattrs(t, p), userXattrs(t, q); xa != xb {
			t.Errorf("%s: xattrs %q, want %q", rel, xb, xa)
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			da, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			db, err := os.ReadFile(q)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
			} else if !bytes.Equal(da, db) {
				t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(db), len(da))
			}
		case unix.S_IFLNK:
			la, _ := os.Readlink(p)
			lb, err := os.Readlink(q)
			if err != nil || la != lb {
				t.Errorf("%s: link %q (%v), want %q", rel, lb, err, la)
			}
		case unix.S_IFDIR:
			if na, nb := dirNames(t, p), dirNames(t, q); !slices.Equal(na, nb) {
				t.Errorf("%s: entries %q, want %q", rel, nb, na)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func userXattrs(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return ""
		}
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 256)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, name+"="+string(v[:m]))
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	mps, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mp := range mps {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// mountinfoLine returns the mountinfo line of mount point mp ("" if none).
func mountinfoLine(t *testing.T, mp string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.SplitN(l, " ", 6)
		if len(f) == 6 && unescapeOctal(f[4]) == mp {
			line = l
		}
	}
	return line
}

// loopsBackedBy lists the loop devices whose backing file is path.
func loopsBackedBy(t *testing.T, path string) []string {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSpace(string(data)) == path {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return out
}

// assertNothingLeft checks that no mount, loop device or directory of
// stateDir is left.
func assertNothingLeft(t *testing.T, e *env, stateDir string) {
	t.Helper()
	if m := mountsUnder(t, e.root); len(m) > 0 {
		t.Errorf("mounts left under %s: %q", e.root, m)
	}
	if l := loopsBackedBy(t, e.image); len(l) > 0 {
		t.Errorf("loop devices left for %s: %q", e.image, l)
	}
	if _, err := os.Lstat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state directory %s left: %v", stateDir, err)
	}
}

// logBuffer is a slog handler target for checking debug messages.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// objectOf returns the object path of a file in e.src.
func (e *env) objectOf(t *testing.T, rel string) string {
	t.Helper()
	tree, err := composefs.BuildTree(e.src, e.treeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	err = tree.WalkObjects(func(o composefs.Object) error {
		if o.Source == filepath.Join(e.src, rel) {
			path = filepath.Join(e.objects, o.Payload)
		}
		return nil
	})
	if err != nil || path == "" {
		t.Fatalf("no object for %s (%v)", rel, err)
	}
	return path
}

func testutilRoot(t *testing.T) { testutil.RequiresRoot(t) }

func newDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// requireNoKernelVerity skips a test that expects this host's kernel,
// built without fs-verity (/proc/sys/fs/verity exists on kernels ≥ 6.6
// with it). Kernels with fs-verity are covered by the TestVM* tests.
func requireNoKernelVerity(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/sys/fs/verity"); err == nil {
		t.Skip("kernel has fs-verity; see the TestVM* tests")
	}
}
