//go:build linux

package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

func TestMountWritable(t *testing.T) {
	e := newEnv(t)
	log, logs := newLogger()
	o := e.opts("c1")
	o.Logger = log
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := o.StateDir
	st := m.State
	if m.Root() != filepath.Join(dir, "merged") || st.Upper != filepath.Join(dir, "upper") || st.Work != filepath.Join(dir, "work") {
		t.Errorf("paths: %+v", st)
	}
	if !st.FileBacked || st.LoopDevice != "" {
		t.Errorf("on this kernel the image is mounted from the file: fileBacked=%v loop=%q", st.FileBacked, st.LoopDevice)
	}
	wantOpts := fmt.Sprintf("metacopy=on,redirect_dir=on,lowerdir+=%s/lower,datadir+=%s,upperdir=%s/upper,workdir=%s/work",
		dir, e.objects, dir, dir)
	if st.OverlaySyntax != SyntaxFsconfig || st.OverlayOptions != wantOpts {
		t.Errorf("overlay %s %q, want %s %q", st.OverlaySyntax, st.OverlayOptions, SyntaxFsconfig, wantOpts)
	}
	if strings.Contains(logs.String(), "falling back") {
		t.Errorf("unexpected fallback: %s", logs)
	}

	n := compareTree(t, e.src, m.Root(), false)
	if n != 27 {
		t.Errorf("compared %d entries, want 27", n)
	}

	// Exactly two mounts: the private state directory and the overlay;
	// the EROFS is held by the overlay alone.
	got := mountsUnder(t, e.root)
	want := []string{dir, m.Root()}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mounts %q, want %q", got, want)
	}
	line := mountinfoLine(t, m.Root())
	if !strings.Contains(line, " - overlay composefs rw,") || !strings.Contains(line, ",redirect_dir=on,") || !strings.HasSuffix(line, ",metacopy=on") ||
		strings.Contains(line, "verity") || strings.Contains(line, "shared:") {
		t.Errorf("mountinfo: %s", line)
	}
	if dl := mountinfoLine(t, dir); strings.Contains(dl, "shared:") || strings.Contains(dl, "master:") {
		t.Errorf("state directory mount propagates: %s", dl)
	}

	// Writes land in the upper layer.
	if err := os.WriteFile(filepath.Join(m.Root(), "new"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.Root(), "big"), []byte("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(m.Root(), "new"), filepath.Join(st.Upper, "new")} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "written" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(m.Root(), "big")); err != nil || string(b) != "replaced" {
		t.Errorf("big after write: %q %v", b, err)
	}
	if err := os.Remove(filepath.Join(m.Root(), "a/small")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(m.Root(), "a/small")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removed file still visible: %v", err)
	}
	// The image and the objects are untouched.
	if b, _ := os.ReadFile(filepath.Join(e.src, "a/small")); string(b) != "hello\n" {
		t.Errorf("source changed")
	}

	// state.json
	rs, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Created.IsZero() || rs.Image != e.image || rs.Merged != m.Root() || rs.Verity != "off" || rs.ReadOnly ||
		rs.OverlayOptions != wantOpts || rs.Version != 1 {
		t.Errorf("state: %+v", rs)
	}
	if fi, err := os.Stat(filepath.Join(dir, "state.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json: %v %v", fi, err)
	}

	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, e, dir)
}

func TestMountReadOnly(t *testing.T) {
	e := newEnv(t)
	o := e.opts("ro")
	o.ReadOnly = true
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	if m.State.Upper != "" || m.State.Work != "" {
		t.Errorf("read-only mount has upper/work: %+v", m.State)
	}
	for _, n := range []string{"upper", "work", "lower"} {
		if _, err := os.Lstat(filepath.Join(o.StateDir, n)); n != "lower" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v", n, err)
		}
	}
	// The root keeps the image's mtime too: there is no upper directory.
	if n := compareTree(t, e.src, m.Root(), true); n != 27 {
		t.Errorf("compared %d entries, want 27", n)
	}
	want := fmt.Sprintf("ro,metacopy=on,redirect_dir=on,lowerdir+=%s/lower,datadir+=%s", o.StateDir, e.objects)
	if m.State.OverlayOptions != want {
		t.Errorf("options %q, want %q", m.State.OverlayOptions, want)
	}
	if line := mountinfoLine(t, m.Root()); !strings.Contains(line, " ro,") || !strings.Contains(line, " - overlay composefs ro,") {
		t.Errorf("mountinfo: %s", line)
	}
	for name, op := range map[string]func() error{
		"create": func() error { return os.WriteFile(filepath.Join(m.Root(), "new"), nil, 0o644) },
		"write":  func() error { return os.WriteFile(filepath.Join(m.Root(), "big"), nil, 0o644) },
		"mkdir":  func() error { return os.Mkdir(filepath.Join(m.Root(), "d"), 0o755) },
		"remove": func() error { return os.Remove(filepath.Join(m.Root(), "empty")) },
		"chmod":  func() error { return os.Chmod(filepath.Join(m.Root(), "page"), 0o600) },
	} {
		if err := op(); !errors.Is(err, unix.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, e, o.StateDir)
}

// On this host the kernel has no fs-verity: VerityRequire must refuse
// before mounting anything and say why.
func TestMountVerityRequireRefused(t *testing.T) {
	e := newEnv(t)
	requireNoKernelVerity(t)
	o := e.opts("v")
	o.Verity = VerityRequire
	_, err := Mount(o)
	want := fmt.Sprintf("mount composefs image %s: verity=require: fs-verity in %s: kernel built without fs-verity", e.image, e.objects)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, verity.ErrKernelNoVerity) || !errors.Is(err, verity.ErrNotSupported) {
		t.Errorf("%v does not match verity.ErrKernelNoVerity", err)
	}
	assertNothingLeft(t, e, o.StateDir)
	if _, err := os.Lstat(e.root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state root created: %v", err)
	}
}

// With the fs-verity check passed (as on a kernel that has it), the
// overlay really is mounted with verity=require, and this kernel then
// refuses every object (none has a digest) with EIO while inline files
// still read: the enforcement is the kernel's.
func TestMountVerityRequireEnforced(t *testing.T) {
	e := newEnv(t)
	checkVerity = func(string) error { return nil }
	o := e.opts("v")
	o.Verity = VerityRequire
	o.ReadOnly = true
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	if !strings.HasSuffix(m.State.OverlayOptions, ",verity=require,lowerdir+="+o.StateDir+"/lower,datadir+="+e.objects) ||
		m.State.Verity != "require" {
		t.Errorf("options %q", m.State.OverlayOptions)
	}
	if line := mountinfoLine(t, m.Root()); !strings.Contains(line, ",metacopy=on,verity=require") {
		t.Errorf("mountinfo: %s", line)
	}
	if _, err := os.ReadFile(filepath.Join(m.Root(), "big")); !errors.Is(err, unix.EIO) {
		t.Errorf("object without fs-verity: %v, want EIO", err)
	}
	if b, err := os.ReadFile(filepath.Join(m.Root(), "a/small")); err != nil || string(b) != "hello\n" {
		t.Errorf("inline file: %q %v", b, err)
	}
}

func TestCheckObjectsVerity(t *testing.T) {
	requireNoKernelVerity(t)
	dir := t.TempDir()
	// An empty store: the kernel is asked.
	err := checkObjectsVerity(dir)
	if want := "fs-verity in " + dir + ": kernel built without fs-verity"; err == nil || err.Error() != want {
		t.Errorf("empty store: %v, want %s", err, want)
	}
	if _, err := sampleObject(filepath.Join(dir, "missing")); err == nil {
		t.Error("sampleObject of a missing directory succeeded")
	}
	os.MkdirAll(filepath.Join(dir, "ab"), 0o755)
	os.MkdirAll(filepath.Join(dir, "cd"), 0o755)
	os.WriteFile(filepath.Join(dir, "ab", "not-an-object"), nil, 0o644)
	obj := filepath.Join(dir, "cd", strings.Repeat("0", 62))
	os.WriteFile(obj, nil, 0o644)
	if got, err := sampleObject(dir); err != nil || got != obj {
		t.Errorf("sampleObject = %q %v, want %q", got, err, obj)
	}
}

func TestMountLoopFallback(t *testing.T) {
	e := newEnv(t)
	tries := forceLoop(t)
	log, logs := newLogger()
	o := e.opts("loop")
	o.Logger = log
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	st := m.State
	if st.FileBacked || !strings.HasPrefix(st.LoopDevice, "/dev/loop") {
		t.Fatalf("fileBacked=%v loop=%q", st.FileBacked, st.LoopDevice)
	}
	if !strings.Contains(logs.String(), `level=DEBUG msg="file-backed EROFS not supported, falling back to loop"`) {
		t.Errorf("no debug message: %s", logs)
	}
	// The overlay holds the EROFS, which holds the loop device.
	if got := loopsBackedBy(t, e.image); len(got) != 1 || got[0] != st.LoopDevice {
		t.Errorf("loop devices for the image: %q, want [%s]", got, st.LoopDevice)
	}
	ro, err := os.ReadFile("/sys/block/" + filepath.Base(st.LoopDevice) + "/ro")
	if err != nil || strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("loop device read-only: %q %v", ro, err)
	}
	ac, err := os.ReadFile("/sys/block/" + filepath.Base(st.LoopDevice) + "/loop/autoclear")
	if err != nil || strings.TrimSpace(string(ac)) != "1" {
		t.Errorf("loop device autoclear: %q %v", ac, err)
	}
	if n := compareTree(t, e.src, m.Root(), false); n != 27 {
		t.Errorf("compared %d entries, want 27", n)
	}
	// The answer is cached: a second mount does not try the file again.
	m2, err := Mount(e.opts("loop2"))
	if err != nil {
		t.Fatal(err)
	}
	if *tries != 1 || m2.State.LoopDevice == "" || m2.State.LoopDevice == st.LoopDevice {
		t.Errorf("file-backed tries %d, want 1; loop devices %q %q", *tries, st.LoopDevice, m2.State.LoopDevice)
	}
	if err := m2.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, e, o.StateDir)
}

func TestMountLegacyOverlaySyntax(t *testing.T) {
	e := newEnv(t)
	layerAppend.Store(unsupported) // as on Linux 6.5 to 6.7
	for _, ro := range []bool{false, true} {
		o := e.opts(fmt.Sprintf("legacy-%v", ro))
		o.ReadOnly = ro
		m, err := Mount(o)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("metacopy=on,redirect_dir=on,lowerdir=%s/lower::%s,upperdir=%s/upper,workdir=%s/work",
			o.StateDir, e.objects, o.StateDir, o.StateDir)
		if ro {
			want = fmt.Sprintf("ro,metacopy=on,redirect_dir=on,lowerdir=%s/lower::%s", o.StateDir, e.objects)
		}
		if m.State.OverlaySyntax != SyntaxLegacy || m.State.OverlayOptions != want {
			t.Errorf("overlay %s %q, want %s %q", m.State.OverlaySyntax, m.State.OverlayOptions, SyntaxLegacy, want)
		}
		// mountinfo shows the escaped path (the state root has a space).
		if line := mountinfoLine(t, m.Root()); !strings.Contains(line, ",lowerdir="+strings.ReplaceAll(o.StateDir, " ", `\040`)+"/lower::") {
			t.Errorf("mountinfo: %s", line)
		}
		compareTree(t, e.src, m.Root(), ro)
		if err := m.Unmount(); err != nil {
			t.Fatal(err)
		}
		assertNothingLeft(t, e, o.StateDir)
	}
	// Paths the option string cannot carry are refused, not mangled.
	o := e.opts("with,comma")
	_, err := Mount(o)
	want := fmt.Sprintf(`mount composefs image %s: overlay: "%s/lower": path contains ',', ':' or '\', which the lowerdir= syntax cannot express`, e.image, o.StateDir)
	if err == nil || err.Error() != want || !errors.Is(err, ErrPathSyntax) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	assertNothingLeft(t, e, o.StateDir)
}

// A missing object: the file is listed and stat works (the image has its
// metadata), but opening it fails with ENOENT, overlayfs's "lazy
// lowerdata lookup failed".
func TestMountMissingObject(t *testing.T) {
	e := newEnv(t)
	obj := e.objectOf(t, "big")
	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	m, err := Mount(e.opts("missing"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	p := filepath.Join(m.Root(), "big")
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != 300_000 {
		t.Errorf("stat: %v %v", fi, err)
	}
	_, err = os.ReadFile(p)
	if !errors.Is(err, unix.ENOENT) || err.Error() != "open "+p+": no such file or directory" {
		t.Errorf("read: %v, want ENOENT", err)
	}
	if b, err := os.ReadFile(filepath.Join(m.Root(), "page")); err != nil || len(b) != 4096 {
		t.Errorf("other objects: %d %v", len(b), err)
	}
}

func TestMountBadImage(t *testing.T) {
	e := newEnv(t)
	bad := filepath.Join(t.TempDir(), "bad.cfs")
	os.WriteFile(bad, make([]byte, 8192), 0o644)
	for _, loop := range []bool{false, true} {
		if loop {
			forceLoop(t)
		}
		o := e.opts("bad")
		o.Image = ImageFile(openImage(t, bad))
		_, err := Mount(o)
		var want string
		if loop {
			dev := ""
			if i := strings.Index(fmt.Sprint(err), "/dev/loop"); i >= 0 {
				dev = strings.Fields(fmt.Sprint(err)[i:])[0]
				dev = strings.TrimSuffix(dev, ":")
			}
			want = fmt.Sprintf("mount composefs image %s: mount EROFS from %s on %s: erofs: fsconfig create: invalid argument: not an EROFS image (no EROFS superblock at offset 1024)", bad, bad, dev)
		} else {
			want = fmt.Sprintf("mount composefs image %s: mount EROFS from %s: erofs: fsconfig create: invalid argument: not an EROFS image (no EROFS superblock at offset 1024)", bad, bad)
		}
		if err == nil || err.Error() != want || !errors.Is(err, unix.EINVAL) {
			t.Errorf("err = %v\nwant %s", err, want)
		}
		var ke *KernelError
		if !errors.As(err, &ke) {
			t.Errorf("no KernelError in %v", err)
		}
		assertNothingLeft(t, e, o.StateDir)
		if l := loopsBackedBy(t, bad); len(l) > 0 {
			t.Errorf("loop device left: %q", l)
		}
	}
}

// A failure after the overlay is up undoes everything, loop device
// included.
func TestMountUndoAfterOverlay(t *testing.T) {
	e := newEnv(t)
	for _, loop := range []bool{false, true} {
		if loop {
			forceLoop(t)
		}
		testHookAfterOverlay = func() error { return errors.New("injected") }
		o := e.opts("undo")
		_, err := Mount(o)
		if want := "mount composefs image " + e.image + ": injected"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
		assertNothingLeft(t, e, o.StateDir)
	}
	// A state directory that existed before is kept (empty), the rest
	// undone.
	o := e.opts("pre")
	os.MkdirAll(o.StateDir, 0o755)
	if _, err := Mount(o); err == nil {
		t.Fatal("no error")
	}
	if names := dirNames(t, o.StateDir); len(names) != 0 {
		t.Errorf("left in the state directory: %q", names)
	}
	if m := mountsUnder(t, e.root); len(m) > 0 {
		t.Errorf("mounts left: %q", m)
	}
}

func TestMountStateDirInUse(t *testing.T) {
	e := newEnv(t)
	m, err := Mount(e.opts("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	_, err = Mount(e.opts("busy"))
	want := fmt.Sprintf("mount composefs image %s: %s: state directory in use: state.json exists (remove it with Unmount or cfs-runtime cleanup)", e.image, m.State.StateDir)
	if err == nil || err.Error() != want || !errors.Is(err, ErrStateDirInUse) {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// The first mount is unharmed.
	if b, err := os.ReadFile(filepath.Join(m.Root(), "a/small")); err != nil || string(b) != "hello\n" {
		t.Errorf("after refused second mount: %q %v", b, err)
	}
	// Locked by another Mount or Cleanup in progress.
	dir := filepath.Join(e.root, "locked")
	os.MkdirAll(dir, 0o711)
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Mount(e.opts("locked"))
	lock.Close()
	want = fmt.Sprintf("mount composefs image %s: %s: state directory in use: locked by another process", e.image, dir)
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestMountInvalidOptions(t *testing.T) {
	testutilRoot(t)
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "img")
	os.WriteFile(imgPath, nil, 0o644)
	img := ImageFile(openImage(t, imgPath))
	closed, _ := os.Open(imgPath)
	closed.Close()
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{ObjectsDir: dir, StateDir: dir + "/s"}, "mount composefs: invalid mount options: no image"},
		{Options{Image: ImageBytes("x", nil), ObjectsDir: dir, StateDir: dir + "/s"}, "mount composefs: invalid mount options: no image"},
		{Options{Image: img, StateDir: dir + "/s"}, "mount composefs: invalid mount options: no objects directory"},
		{Options{Image: img, ObjectsDir: dir, StateDir: "s"}, `mount composefs: invalid mount options: state directory "s" is not absolute`},
		{Options{Image: img, ObjectsDir: dir, StateDir: "/"}, "mount composefs: invalid mount options: state directory is /"},
		{Options{Image: ImageFile(closed), ObjectsDir: dir, StateDir: dir + "/s"}, "mount composefs: image " + imgPath + ": stat " + imgPath + ": file already closed"},
		{Options{Image: ImageFile(openImage(t, dir)), ObjectsDir: dir, StateDir: dir + "/s"}, "mount composefs: image " + dir + ": not a regular file"},
		{Options{Image: img, ObjectsDir: imgPath, StateDir: dir + "/s"}, "mount composefs: objects directory " + imgPath + ": not a directory"},
	} {
		if _, err := Mount(c.o); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v\nwant %s", c.o, err, c.want)
		}
	}
	if _, err := os.Lstat(dir + "/s"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state directory created: %v", err)
	}
}

// A state directory that cannot be created (here: its parent is
// immutable, chattr +i, so mkdir fails with EPERM) is named, without
// "operation not permitted", which podman shows as "OCI permission denied".
func TestStateDirRefusalIsWorded(t *testing.T) {
	testutilRoot(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	os.WriteFile(img, nil, 0o644)
	parent := filepath.Join(dir, "state")
	if err := os.Mkdir(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", parent).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v: %s", parent, err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", parent).Run() })
	_, err := Mount(Options{Image: ImageFile(openImage(t, img)), ObjectsDir: dir, StateDir: parent + "/c1"})
	want := "mount composefs image " + img + ": state directory " + parent + "/c1: mkdir refused by the kernel (EPERM)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, unix.EPERM) || fserr.Misreads(err.Error()) != "" {
		t.Errorf("%v: not EPERM, or misread", err)
	}
}

func TestUnmountIdempotent(t *testing.T) {
	e := newEnv(t)
	m, err := Mount(e.opts("idem"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := m.Unmount(); err != nil {
			t.Fatalf("unmount %d: %v", i, err)
		}
	}
	if err := Unmount(filepath.Join(e.root, "never-existed")); err != nil {
		t.Errorf("unknown state directory: %v", err)
	}
	if err := Unmount("relative"); err == nil || err.Error() != `unmount composefs: invalid mount options: state directory "relative"` {
		t.Errorf("relative: %v", err)
	}
	assertNothingLeft(t, e, m.State.StateDir)
}

// A process with its cwd in the mount keeps it busy: Unmount detaches it
// lazily and says so.
func TestUnmountBusyDetachesLazily(t *testing.T) {
	e := newEnv(t)
	m, err := Mount(e.opts("busy"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(m.Root(), "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := busyRetries
	busyRetries = 2
	defer func() { busyRetries = saved }()
	log, logs := newLogger()
	if err := Unmount(m.State.StateDir, WithLogger(log)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`level=WARN msg="mount still busy, detached lazily (MNT_DETACH): it stays alive until its last user goes away" path=%q tries=3`, m.Root())
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log: %s\nwant %s", logs, want)
	}
	assertNothingLeft(t, e, m.State.StateDir)
	// The open file still reads: the detached overlay lives on.
	buf := make([]byte, 10)
	if _, err := f.Read(buf); err != nil {
		t.Errorf("read from detached mount: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	e := newEnv(t)
	// Crashed after a complete Mount (nobody called Unmount).
	for _, id := range []string{"gone1", "keep1", "gone2"} {
		o := e.opts(id)
		o.ReadOnly = id == "gone2"
		if _, err := Mount(o); err != nil {
			t.Fatal(err)
		}
	}
	// Crashed in the middle: the EROFS still on lower/, loop device too.
	forceLoop(t)
	mid := filepath.Join(e.root, "midway")
	for _, d := range []string{mid, mid + "/lower", mid + "/merged"} {
		os.Mkdir(d, 0o700)
	}
	em, err := mountEROFS(e.file, e.image, mid+"/lower", newDiscard())
	if err != nil {
		t.Fatal(err)
	}
	// Crashed before mounting anything; and a plain file, which is not
	// a container.
	os.MkdirAll(filepath.Join(e.root, "skeleton", "upper", "x"), 0o700)
	os.WriteFile(filepath.Join(e.root, "some-file"), nil, 0o600)
	// In use by a Mount right now.
	os.Mkdir(filepath.Join(e.root, "inuse"), 0o700)
	lock, err := lockDir(filepath.Join(e.root, "inuse"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()

	var asked []string
	removed, err := Cleanup(e.root, func(id string) bool {
		asked = append(asked, id)
		return id == "keep1"
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(removed, " "), "gone1 gone2 midway skeleton"; got != want {
		t.Errorf("removed %q, want %q", got, want)
	}
	if got, want := strings.Join(asked, " "), "gone1 gone2 inuse keep1 midway skeleton"; got != want {
		t.Errorf("asked about %q, want %q", got, want)
	}
	keep := filepath.Join(e.root, "keep1")
	if got := mountsUnder(t, e.root); strings.Join(got, " ") != keep+" "+keep+"/merged" {
		t.Errorf("mounts left: %q", got)
	}
	if l := loopsBackedBy(t, e.image); len(l) != 0 {
		t.Errorf("loop device %s (was %s) left", l, em.loopDevice)
	}
	if names := dirNames(t, e.root); strings.Join(names, " ") != "inuse keep1 some-file" {
		t.Errorf("left in the state root: %q", names)
	}
	if b, err := os.ReadFile(filepath.Join(keep, "merged/a/small")); err != nil || string(b) != "hello\n" {
		t.Errorf("kept container: %q %v", b, err)
	}
	// Nothing to do for a state root that does not exist.
	if r, err := Cleanup(filepath.Join(e.root, "nope"), func(string) bool { return false }); r != nil || err != nil {
		t.Errorf("missing root: %v %v", r, err)
	}
	if _, err := Cleanup(e.root, nil); err == nil || err.Error() != "cleanup: invalid mount options: no keep function" {
		t.Errorf("nil keep: %v", err)
	}
	if names := dirNames(t, e.root); strings.Join(names, " ") != "inuse keep1 some-file" {
		t.Errorf("nil keep removed something: %q", names)
	}
}

func TestMountCycles(t *testing.T) {
	e := newEnv(t)
	saved := fsmountEROFSFile
	for i := range 50 {
		// Every other cycle through a loop device.
		if i%2 == 1 {
			forceLoop(t)
			fileBacked.Clear()
		} else {
			fsmountEROFSFile = saved
			fileBacked.Clear()
		}
		o := e.opts(fmt.Sprintf("cycle%d", i%3))
		o.ReadOnly = i%4 == 3
		m, err := Mount(o)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if (m.State.LoopDevice != "") != (i%2 == 1) {
			t.Fatalf("cycle %d: loop %q", i, m.State.LoopDevice)
		}
		if b, err := os.ReadFile(filepath.Join(m.Root(), "dup2")); err != nil || len(b) != 300 {
			t.Fatalf("cycle %d: read %d %v", i, len(b), err)
		}
		if err := m.Unmount(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	assertNothingLeft(t, e, filepath.Join(e.root, "cycle0"))
	if names := dirNames(t, e.root); len(names) != 0 {
		t.Errorf("left in the state root: %q", names)
	}
}

func TestProbe(t *testing.T) {
	testutilRoot(t)
	resetFeatureCache(t)
	dir := t.TempDir()
	f := Probe(dir)
	want := `new mount API (fsopen): yes
file-backed EROFS: yes
EROFS on a loop device: yes
overlayfs data-only layers: yes
overlayfs lowerdir+/datadir+: yes
overlayfs verity=: yes
`
	if f.String() != want {
		t.Errorf("Probe() =\n%s\nwant (Linux 6.18)\n%s", f, want)
	}
	if err := f.Usable(); err != nil {
		t.Error(err)
	}
	if fileBackedState(fileDev(openImage(t, dir))) != supported || layerAppend.Load() != supported {
		t.Error("Probe did not prime the cache")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("probe left %q", names)
	}
	// Nothing stays behind: no probe mount, no probe loop device.
	data, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(data), ".cfs-mount-probe-") {
		t.Errorf("probe mount left:\n%s", data)
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range files {
		if b, _ := os.ReadFile(bf); strings.Contains(string(b), ".cfs-mount-probe-") {
			t.Errorf("probe loop device left: %s", bf)
		}
	}

	// What a kernel without the features looks like.
	none := Features{
		MountAPI:           Feature{Supported: true},
		FileBackedEROFS:    Feature{Err: &KernelError{Op: "erofs: fsconfig create", Errno: unix.ENOTBLK}},
		LoopDevice:         Feature{Err: errors.New("loop device: open /dev/loop-control: no such file or directory")},
		OverlayDataOnly:    Feature{Err: &KernelError{Op: "overlay: fsconfig create", Errno: unix.EINVAL}},
		OverlayLayerAppend: Feature{Err: fmt.Errorf("%w: %w", errNoLayerAppend, &KernelError{Op: "overlay: fsconfig lowerdir+=/x", Errno: unix.EINVAL, Log: []string{"overlay: Unknown parameter 'lowerdir+'"}})},
		OverlayVerity:      Feature{Err: fmt.Errorf("%w: %w", ErrOverlayNoVerity, &KernelError{Op: "overlay: fsconfig verity=require", Errno: unix.EINVAL, Log: []string{"overlay: Unknown parameter 'verity'"}})},
	}
	want = `new mount API (fsopen): yes
file-backed EROFS: no (erofs: fsconfig create: block device required)
EROFS on a loop device: no (loop device: open /dev/loop-control: no such file or directory)
overlayfs data-only layers: no (overlay: fsconfig create: invalid argument)
overlayfs lowerdir+/datadir+: no (overlayfs does not support lowerdir+/datadir+: overlay: fsconfig lowerdir+=/x: invalid argument (overlay: Unknown parameter 'lowerdir+'))
overlayfs verity=: no (overlayfs does not support verity= (needs Linux ≥ 6.6): overlay: fsconfig verity=require: invalid argument (overlay: Unknown parameter 'verity'))
`
	if none.String() != want {
		t.Errorf("String() =\n%s\nwant\n%s", none, want)
	}
	if err := none.Usable(); err == nil || err.Error() != "cannot mount EROFS images: from a file: erofs: fsconfig create: block device required; from a loop device: loop device: open /dev/loop-control: no such file or directory" {
		t.Errorf("Usable: %v", err)
	}
}

// The kernel's answer to an unknown overlay parameter is classified as
// the missing feature (checked against this kernel with a parameter it
// really does not know).
func TestUnknownParameter(t *testing.T) {
	testutilRoot(t)
	c, err := openFS("overlay")
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	err = c.setString("no_such_option", "x")
	var ke *KernelError
	if !errors.As(err, &ke) || !ke.unknownParameter() ||
		err.Error() != "overlay: fsconfig no_such_option=x: invalid argument (overlay: Unknown parameter 'no_such_option')" {
		t.Errorf("err = %v", err)
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/run/a\040b`:    "/run/a b",
		`/x\011\012\134`: "/x\t\n\\",
		`/plain`:         "/plain",
		`/bad\9`:         `/bad\9`,
		`/end\04`:        `/end\04`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

// tmpfs files have no read_folio: the kernel cannot mount EROFS from them,
// Probe says so and Mount falls back to a loop device by itself.
func TestImageOnTmpfs(t *testing.T) {
	e := newEnv(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &sfs); err != nil || sfs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("/dev/shm is not tmpfs (%v)", err)
	}
	shm, err := os.MkdirTemp("/dev/shm", "cfs-mount-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	f := Probe(shm)
	want := "new mount API (fsopen): yes\nfile-backed EROFS: no (file-backed EROFS not supported (needs Linux ≥ 6.12, and the image on a filesystem such as ext4, xfs or btrfs, not tmpfs): erofs: fsconfig create: block device required)\n"
	if !strings.HasPrefix(f.String(), want) || !f.LoopDevice.Supported || f.Usable() != nil {
		t.Errorf("Probe(tmpfs) =\n%s\nwant first lines\n%s", f, want)
	}
	img := filepath.Join(shm, "image.cfs")
	data, _ := os.ReadFile(e.image)
	os.WriteFile(img, data, 0o644)
	fileBacked.Clear()
	log, logs := newLogger()
	o := e.opts("shm")
	o.Image, o.Logger = ImageFile(openImage(t, img)), log
	m, err := Mount(o)
	if err != nil {
		t.Fatal(err)
	}
	if m.State.FileBacked || m.State.LoopDevice == "" {
		t.Errorf("fileBacked=%v loop=%q", m.State.FileBacked, m.State.LoopDevice)
	}
	if !strings.Contains(logs.String(), "falling back to loop") {
		t.Errorf("log: %s", logs)
	}
	compareTree(t, e.src, m.Root(), false)
	// The image on ext4 is still mounted from the file: the answer is
	// per filesystem.
	m2, err := Mount(e.opts("ext4"))
	if err != nil {
		t.Fatal(err)
	}
	if !m2.State.FileBacked {
		t.Error("image on ext4 not mounted from the file after a tmpfs image was not")
	}
	for _, x := range []*Mounted{m, m2} {
		if err := x.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	if l := loopsBackedBy(t, img); len(l) > 0 {
		t.Errorf("loop devices left: %q", l)
	}
}

// The way create uses it: an image imported into the object store, opened
// through images/<digest> (a symlink into objects/), mounted with the
// store's objects directory as the data layer; the digest is recorded from
// the name.
func TestMountFromStore(t *testing.T) {
	e := newEnv(t)
	s, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	digest, err := s.ImportTree(e.src)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImagePath(digest)
	if err != nil {
		t.Fatal(err)
	}
	for _, loop := range []bool{false, true} {
		if loop {
			forceLoop(t)
		}
		m, err := Mount(Options{Image: ImageFile(openImage(t, img)), ObjectsDir: s.ObjectsDir(), StateDir: filepath.Join(e.root, "store")})
		if err != nil {
			t.Fatal(err)
		}
		if m.State.Digest != digest || m.State.Image != img || m.State.FileBacked == loop {
			t.Errorf("state: %+v", m.State)
		}
		if n := compareTree(t, e.src, m.Root(), false); n != 27 {
			t.Errorf("compared %d entries, want 27", n)
		}
		if err := m.Unmount(); err != nil {
			t.Fatal(err)
		}
		real, _ := filepath.EvalSymlinks(img)
		if l := loopsBackedBy(t, real); len(l) > 0 {
			t.Errorf("loop devices left: %q", l)
		}
	}
}

// Under a shared parent mount (systemd makes / shared), the state
// directory is still a private mount and nothing in it propagates.
func TestMountPrivateUnderSharedParent(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.root, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(e.root, e.root, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(e.root, unix.MNT_DETACH)
	if err := unix.Mount("", e.root, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if line := mountinfoLine(t, e.root); !strings.Contains(line, " shared:") {
		t.Fatalf("parent not shared: %s", line)
	}
	m, err := Mount(e.opts("p"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range []string{m.State.StateDir, m.Root()} {
		if line := mountinfoLine(t, mp); strings.Contains(line, "shared:") || strings.Contains(line, "master:") {
			t.Errorf("propagates: %s", line)
		}
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, e.root); len(got) != 1 || got[0] != e.root {
		t.Errorf("mounts left: %q", got)
	}
}

// Mount mounts the file it was given, not whatever its name leads to by
// then: another image renamed over the name after the caller opened (and
// verified) it is not what gets mounted, file-backed or on a loop device.
func TestMountImageFileIsTheOpenFile(t *testing.T) {
	e := newEnv(t)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "other"), []byte("not the verified image\n"), 0o644)
	tree, err := composefs.BuildTree(other)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.image)
	if err != nil {
		t.Fatal(err)
	}
	for _, loop := range []bool{false, true} {
		if loop {
			forceLoop(t)
		}
		verified := filepath.Join(t.TempDir(), "verified.cfs")
		if err := os.WriteFile(verified, data, 0o644); err != nil {
			t.Fatal(err)
		}
		o := e.opts(fmt.Sprintf("pinned-%v", loop))
		o.Image = ImageFile(openImage(t, verified))
		swap := verified + ".other"
		f, err := os.Create(swap)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(tree.WriteImage(f), f.Close(), os.Rename(swap, verified)); err != nil {
			t.Fatal(err)
		}
		m, err := Mount(o)
		if err != nil {
			t.Fatal(err)
		}
		if m.State.Image != verified || m.State.ImageCopy || m.State.FileBacked == loop {
			t.Errorf("state: %+v", m.State)
		}
		compareTree(t, e.src, m.Root(), false)
		if _, err := os.Lstat(filepath.Join(m.Root(), "other")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the image renamed over the name is mounted: %v", err)
		}
		if err := m.Unmount(); err != nil {
			t.Fatal(err)
		}
		assertNothingLeft(t, e, o.StateDir)
	}
}

// ImageBytes: Mount writes the bytes into a nameless file in the state
// directory and mounts that; whatever happens to the file they came from
// does not reach the mount, and the copy is gone with it.
func TestMountImageBytes(t *testing.T) {
	e := newEnv(t)
	data, err := os.ReadFile(e.image)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name            string
		loop, noTmpfile bool
	}{
		{"file", false, false},
		{"loop", true, false},
		{"named", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			resetFeatureCache(t)
			if c.loop {
				forceLoop(t)
			}
			if c.noTmpfile {
				// As a filesystem without O_TMPFILE says.
				savedOpen := openTmpfile
				openTmpfile = func(string) (int, error) { return -1, unix.EOPNOTSUPP }
				t.Cleanup(func() { openTmpfile = savedOpen })
			}
			o := e.opts("bytes-" + c.name)
			o.Image = ImageBytes(e.image, slices.Clone(data))
			m, err := Mount(o)
			if err != nil {
				t.Fatal(err)
			}
			if m.State.Image != e.image || !m.State.ImageCopy || m.State.FileBacked == c.loop || m.State.Digest != "" {
				t.Errorf("state: %+v", m.State)
			}
			if c.loop {
				b, err := os.ReadFile("/sys/block/" + filepath.Base(m.State.LoopDevice) + "/loop/backing_file")
				if got := strings.TrimSpace(string(b)); err != nil || !strings.HasPrefix(got, o.StateDir+"/") || !strings.HasSuffix(got, " (deleted)") {
					t.Errorf("loop device %s backed by %q (%v), want a deleted file in %s", m.State.LoopDevice, got, err, o.StateDir)
				}
			}
			// The source overwritten in place: the mount has its own copy.
			if err := os.WriteFile(e.image, make([]byte, len(data)), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(e.image, data, 0o644) })
			unix.Fadvise(int(e.file.Fd()), 0, 0, unix.FADV_DONTNEED)
			compareTree(t, e.src, m.Root(), false)
			// Nothing named in the state directory but what Mount lists.
			if names := dirNames(t, o.StateDir); strings.Join(names, " ") != "lower merged state.json upper work" {
				t.Errorf("state directory holds %q", names)
			}
			if err := m.Unmount(); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(e.image, data, 0o644)
			assertNothingLeft(t, e, o.StateDir)
			if c.loop {
				files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
				for _, bf := range files {
					if b, _ := os.ReadFile(bf); strings.HasPrefix(string(b), o.StateDir+"/") {
						t.Errorf("loop device left: %s: %s", bf, b)
					}
				}
			}
		})
	}
}
