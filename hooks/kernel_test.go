//go:build linux

package hooks

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// The check against real mounts of this kernel: mountinfo as the kernel
// writes it (escapes included), file-backed and loop-backed EROFS, the loop
// driver's answers. Only the measurement is faked where the kernel has no
// fs-verity (the VM scenario 75-hooks measures for real).
func TestKernelMounts(t *testing.T) {
	testutil.RequiresRoot(t)
	f := newFixture(t)
	tree := filepath.Join(f.dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc", "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeImage(t, tree, f.image)
	want, err := verity.DigestFile(f.image)
	if err != nil {
		t.Fatal(err)
	}
	f.sign(t, want)
	data := filepath.Join(f.dir, "objects")
	// the kernel's digest where it has fs-verity; the userspace one (of
	// the same file) where it has not
	userspace := func(file *os.File) (verity.Algorithm, []byte, error) {
		d, err := verity.DigestFile(file.Name())
		return verity.SHA256, d, err
	}
	check := func(measure func(*os.File) (verity.Algorithm, []byte, error)) (*Result, error) {
		c := newChecker()
		if measure != nil {
			c.measure = measure
		}
		return c.createRuntime(f.state(), f.policy)
	}

	t.Run("file-backed", func(t *testing.T) {
		// a lower directory whose name needs escaping in mountinfo and
		// in the lowerdir= syntax
		lower := filepath.Join(f.dir, "low er,1")
		mkdir(t, lower)
		mountT(t, f.image, lower, "erofs", unix.MS_RDONLY, "")
		mountT(t, "composefs", f.root, "overlay", unix.MS_RDONLY, `metacopy=on,redirect_dir=on,verity=require,lowerdir=`+strings.ReplaceAll(lower, ",", `\,`)+"::"+data)
		res, err := check(userspace)
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if res.Root != f.root || res.Lower != lower || res.Image != f.image || res.Loop != "" {
			t.Errorf("result %+v", res)
		}
		// the kernel's own measurement: fs-verity is not enabled on the
		// image (or the kernel lacks it), so the container is refused
		_, err = check(nil)
		if err == nil || !(errors.Is(err, verity.ErrNotEnabled) || errors.Is(err, verity.ErrNotSupported)) ||
			!strings.HasPrefix(err.Error(), "container c1: composefs digest "+f.digest.String()+": EROFS image "+f.image+" (lower layer of "+f.root+"): ") {
			t.Errorf("unmeasurable image: %v", err)
		}
	})

	t.Run("loop-device", func(t *testing.T) {
		mkdir(t, f.lower)
		// mount(8) sets up a read-only autoclear loop device for a file
		if out, err := exec.Command("mount", "-t", "erofs", "-o", "ro,loop", f.image, f.lower).CombinedOutput(); err != nil {
			t.Fatalf("mount -o loop: %v: %s", err, out)
		}
		t.Cleanup(func() { unmountT(t, f.lower) })
		mountT(t, "composefs", f.root, "overlay", unix.MS_RDONLY, "metacopy=on,redirect_dir=on,verity=require,lowerdir="+f.lower+"::"+data)
		res, err := check(userspace)
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if res.Image != f.image || !strings.HasPrefix(res.Loop, "/dev/loop") {
			t.Errorf("result %+v", res)
		}
	})

	t.Run("without-verity", func(t *testing.T) {
		mkdir(t, f.lower)
		mountT(t, f.image, f.lower, "erofs", unix.MS_RDONLY, "")
		mountT(t, "composefs", f.root, "overlay", unix.MS_RDONLY, "metacopy=on,redirect_dir=on,lowerdir="+f.lower+"::"+data)
		_, err := check(userspace)
		want := "container c1: root filesystem is not a verifiable composefs mount: " + f.root + " is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)"
		if err == nil || err.Error() != want {
			t.Errorf("\n got %v\nwant %s", err, want)
		}
	})
}

func writeImage(t *testing.T, tree, path string) {
	t.Helper()
	tr, err := composefs.BuildTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tr.WriteImage(out), out.Close()); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// mountT mounts and unmounts again at the end of the test.
func mountT(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		t.Fatalf("mount -t %s %s %s -o %s: %v", fstype, source, target, data, err)
	}
	t.Cleanup(func() { unmountT(t, target) })
}

func unmountT(t *testing.T, target string) {
	if err := unix.Unmount(target, 0); err != nil {
		t.Errorf("unmount %s: %v", target, err)
	}
}
