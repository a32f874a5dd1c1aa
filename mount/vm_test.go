//go:build vmtest

// Real-kernel tests: run in the tests/vm guest (Linux 6.12 with fs-verity,
// overlayfs verity= and file-backed EROFS), built with
//
//	go test -c -tags vmtest -o mount.test ./mount
//	CFS_MOUNT_TEST_DIR=/data/NN-mount ./mount.test -test.v -test.run '^TestVM'
//
// CFS_MOUNT_TEST_DIR is a writable directory on a filesystem with fs-verity
// (ext4 made with -O verity): the images and object stores live there, the
// state directories in the test's temporary directory (tmpfs).

package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

func vmEnv(t *testing.T) *env {
	t.Helper()
	dir := os.Getenv("CFS_MOUNT_TEST_DIR")
	if dir == "" {
		t.Fatal("CFS_MOUNT_TEST_DIR is not set (a directory on ext4 with the verity feature)")
	}
	e := newEnvIn(t, dir)
	// CopyObjects enables fs-verity where it can: here it must have.
	obj := e.objectOf(t, "big")
	if ok, err := verity.IsEnabled(obj); err != nil || !ok {
		t.Fatalf("object %s has no fs-verity (%v): is %s on a verity filesystem?", obj, err, dir)
	}
	return e
}

// The whole tree reads back through an overlay with verity=require, from a
// file-backed EROFS and from a loop device, writable and read-only.
func TestVMMountVerityRequire(t *testing.T) {
	e := vmEnv(t)
	for i, c := range []struct {
		loop, ro, legacy bool
	}{{false, false, false}, {false, true, false}, {true, false, false}, {true, true, false}, {false, false, true}} {
		fileBacked.Clear()
		fsmountEROFSFile = fsmountEROFS
		if c.loop {
			forceLoop(t)
		}
		if c.legacy {
			layerAppend.Store(unsupported) // lowerdir=EROFS::OBJECTS by mount(2)
		}
		o := e.opts(fmt.Sprintf("c%d", i))
		o.Verity = VerityRequire
		o.ReadOnly = c.ro
		m, err := Mount(o)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if m.State.FileBacked == c.loop || (m.State.LoopDevice != "") != c.loop {
			t.Errorf("%+v: fileBacked=%v loop=%q", c, m.State.FileBacked, m.State.LoopDevice)
		}
		syntax, layers := SyntaxFsconfig, ",datadir+="+e.objects
		if c.legacy {
			syntax, layers = SyntaxLegacy, "/lower::"+e.objects
		}
		if m.State.OverlaySyntax != syntax {
			t.Errorf("%+v: overlay syntax %s", c, m.State.OverlaySyntax)
		}
		line := mountinfoLine(t, m.Root())
		if !strings.Contains(line, ",verity=require") || !strings.Contains(line, layers) {
			t.Errorf("%+v: mountinfo: %s", c, line)
		}
		if n := compareTree(t, e.src, m.Root(), c.ro); n != 27 {
			t.Errorf("%+v: compared %d entries, want 27", c, n)
		}
		if err := m.Unmount(); err != nil {
			t.Fatal(err)
		}
		assertNothingLeft(t, e, o.StateDir)
	}
}

// The kernel refuses an object that was replaced by other content (with
// its own fs-verity) and one without fs-verity: EIO on open, while the
// rest still reads. (Mount's own check looks at one object only; the
// kernel checks every one.)
func TestVMMountVerityRequireTampered(t *testing.T) {
	e := vmEnv(t)
	big, page := e.objectOf(t, "big"), e.objectOf(t, "page")
	for _, p := range []string{big, page} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(big, []byte(strings.Repeat("evil", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verity.Enable(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, []byte(strings.Repeat("p", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	checkVerity = func(string) error { return nil } // may sample page
	o := e.opts("tampered")
	o.Verity = VerityRequire
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	assertTamperedRefused(t, m.Root())
	// A missing object is ENOENT, with verity=require as without.
	if err := os.Remove(e.objectOf(t, "ext65")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(m.Root(), "ext65")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing object: %v, want ENOENT", err)
	}
	// The same store without verity=require reads the wrong bytes: the
	// check is the kernel's, not the mount's.
	m2, err := Mount(e.opts("off"))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Unmount()
	if b, err := os.ReadFile(filepath.Join(m2.Root(), "big")); err != nil || !strings.HasPrefix(string(b), "evil") {
		t.Errorf("verity off: %d bytes %v", len(b), err)
	}
}

// VerityRequire with a store filled without fs-verity is refused before
// anything is mounted.
func TestVMMountVerityRequireObjectsWithout(t *testing.T) {
	e := vmEnv(t)
	plain := filepath.Join(filepath.Dir(e.objects), "plain")
	if err := os.MkdirAll(filepath.Join(plain, "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(plain, "ab", strings.Repeat("c", 62))
	if err := os.WriteFile(obj, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := e.opts("plain")
	o.ObjectsDir = plain
	o.Verity = VerityRequire
	_, err := Mount(o)
	want := fmt.Sprintf("mount composefs image %s: verity=require: %s: object has no fs-verity (the store was filled without fs-verity)", e.image, obj)
	if err == nil || err.Error() != want || !errors.Is(err, ErrObjectNoVerity) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	assertNothingLeft(t, e, o.StateDir)
}

func TestVMProbe(t *testing.T) {
	vmEnv(t)
	f := Probe(os.Getenv("CFS_MOUNT_TEST_DIR"))
	want := `new mount API (fsopen): yes
file-backed EROFS: yes
EROFS on a loop device: yes
overlayfs data-only layers: yes
overlayfs lowerdir+/datadir+: yes
overlayfs verity=: yes
`
	if f.String() != want {
		t.Errorf("Probe() =\n%s\nwant (Linux 6.12)\n%s", f, want)
	}
}

// 200 mount/unmount cycles under verity=require leave no mount, loop
// device or state directory. (The VM's full create/delete cycles through
// cfs-runtime and runc cost about 2 s each under TCG, so the suite runs
// fewer of those; see tests/vm/scenarios/50-verified-create.sh.)
func TestVMMountCycles(t *testing.T) {
	e := vmEnv(t)
	start := time.Now()
	for i := range 200 {
		o := e.opts(fmt.Sprintf("cycle%d", i%3))
		o.Verity = VerityRequire
		o.ReadOnly = i%2 == 1
		m, err := Mount(o)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if b, err := os.ReadFile(filepath.Join(m.Root(), "big")); err != nil || len(b) != 300_000 {
			t.Fatalf("cycle %d: read %d %v", i, len(b), err)
		}
		if err := m.Unmount(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	for i := range 3 {
		assertNothingLeft(t, e, filepath.Join(e.root, fmt.Sprintf("cycle%d", i)))
	}
	t.Logf("200 cycles in %v", time.Since(start).Round(time.Millisecond))
}

// A SHA-512 image (composefs.WithHash, as import --hash sha512 makes it):
// overlayfs checks every object against the SHA-512 digest in its
// metacopy xattr. An object with other content, and one with the right
// content but SHA-256 fs-verity, are refused with EIO.
func TestVMMountVerityRequireSHA512(t *testing.T) {
	dir := os.Getenv("CFS_MOUNT_TEST_DIR")
	if dir == "" {
		t.Fatal("CFS_MOUNT_TEST_DIR is not set (a directory on ext4 with the verity feature)")
	}
	e := newEnvWith(t, dir, composefs.WithHash(verity.SHA512))
	big, page := e.objectOf(t, "big"), e.objectOf(t, "page")
	f, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	alg, _, err := verity.MeasureFile(f)
	f.Close()
	if err != nil || alg != verity.SHA512 {
		t.Fatalf("object %s: fs-verity %s, %v; want sha512", big, alg, err)
	}
	o := e.opts("sha512")
	o.Verity = VerityRequire
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	if n := compareTree(t, e.src, m.Root(), false); n != 27 {
		t.Errorf("compared %d entries, want 27", n)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	// Attacks: other content with its own SHA-512 fs-verity; the right
	// content with SHA-256 fs-verity.
	pageData, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{big, page} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(big, []byte(strings.Repeat("evil", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verity.Enable(big, verity.WithAlgorithm(verity.SHA512)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, pageData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verity.Enable(page); err != nil {
		t.Fatal(err)
	}
	o = e.opts("sha512-tampered")
	o.Verity = VerityRequire
	if m, err = Mount(o); err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	assertTamperedRefused(t, m.Root())
}

// assertTamperedRefused: big and page of the tree mounted at root read as
// EIO (their objects were tampered with), dup1 still reads.
func assertTamperedRefused(t *testing.T, root string) {
	t.Helper()
	for _, n := range []string{"big", "page"} {
		if _, err := os.ReadFile(filepath.Join(root, n)); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: %v, want EIO", n, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "dup1")); err != nil || len(b) != 300 {
		t.Errorf("untouched object: %d %v", len(b), err)
	}
}
