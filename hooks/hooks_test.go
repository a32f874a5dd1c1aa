//go:build linux

package hooks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// imageIdentity is what LOOP_GET_STATUS64 reports for a loop device reading
// path.
func imageIdentity(t *testing.T, path string) *unix.LoopInfo64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &unix.LoopInfo64{Device: st.Dev, Inode: st.Ino}
}

// loopKernel is f's composefs mount with the EROFS on loop device 7:3
// reading f.image.
func loopKernel(t *testing.T, f *fixture) *fakeKernel {
	k := f.kernel(f.verityOpts())
	k.mountinfo = line(42, devLoop, "/", f.lower, "erofs", "/dev/loop3", "ro,user_xattr,acl") +
		line(45, devOverlay, "/", f.root, "overlay", "composefs", f.verityOpts())
	k.devs[f.lower] = devLoop
	k.sysfs = map[string]string{"dev/block/7:3/loop/backing_file": f.image + "\n"}
	k.loop = imageIdentity(t, f.image)
	return k
}

func TestCreateRuntimePasses(t *testing.T) {
	f := newFixture(t)
	data := filepath.Join(f.dir, "objects")
	for _, tc := range []struct {
		name   string
		kernel func(*fixture) *fakeKernel
		loop   string
	}{
		{"fsconfig-syntax", func(f *fixture) *fakeKernel { return f.kernel(f.verityOpts()) }, ""},
		{"mount2-syntax", func(f *fixture) *fakeKernel {
			return f.kernel("ro,lowerdir=" + f.lower + "::" + data + ",redirect_dir=on,metacopy=on,verity=require")
		}, ""},
		{"upper-layer", func(f *fixture) *fakeKernel {
			return f.kernel("rw,lowerdir=" + f.lower + "::" + data + ",upperdir=/var/up,workdir=/var/work,redirect_dir=on,metacopy=on,verity=require")
		}, ""},
		{"loop-device", func(f *fixture) *fakeKernel { return loopKernel(t, f) }, "/dev/loop3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.kernel(f).checker(t).createRuntime(f.state(), f.policy)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			want := Result{ID: "c1", Bundle: f.bundle, Root: f.root, Lower: f.lower, Image: f.image, Loop: tc.loop}
			got := *res
			got.Verdict = attest.Verdict{}
			if got != want {
				t.Errorf("result %+v, want %+v", got, want)
			}
			if res.Verdict.Unsigned || res.Verdict.Digest == nil || res.Verdict.Digest.Hex() != f.digest.Hex() || res.Verdict.Signer != "test" {
				t.Errorf("verdict %s, want digest %s signed by test", res.Verdict, f.digest)
			}
		})
	}
}

// A root given through a symlink is looked up by its real path.
func TestCreateRuntimeResolvesRootPath(t *testing.T) {
	f := newFixture(t)
	if err := os.Symlink(f.root, filepath.Join(f.bundle, "link")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"root":{"path":%q},"annotations":%s}`, filepath.Join(f.bundle, "link"), annotationsJSON(t, f.ann))
	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.kernel(f.verityOpts()).checker(t).createRuntime(f.state(), f.policy)
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != f.root {
		t.Errorf("root %s, want %s", res.Root, f.root)
	}
}

func annotationsJSON(t *testing.T, ann map[string]string) string {
	var parts []string
	for k, v := range ann {
		parts = append(parts, fmt.Sprintf("%q:%q", k, v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Without a digest annotation the policy decides alone: nothing is looked up.
func TestCreateRuntimeUnsigned(t *testing.T) {
	f := newFixture(t)
	f.writeConfig(t, nil)
	c := f.kernel("").checker(t)
	c.mounts = func() ([]*mountinfo.Info, error) { return nil, errors.New("the mount table must not be read") }
	res, err := c.createRuntime(f.state(), f.allow)
	if err != nil {
		t.Fatalf("unsigned under allow refused: %v", err)
	}
	if !res.Verdict.Unsigned || res.Root != "" || res.Image != "" {
		t.Errorf("result %+v, want unsigned with nothing measured", res)
	}

	_, err = c.createRuntime(f.state(), f.policy)
	want := "container c1: no composefs digest: no composefs.merged.erofs.v1.fsverity-sha256-12 annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of " + f.policy.Path + " matches this container"
	if !errors.Is(err, attest.ErrNoDigest) || err.Error() != want {
		t.Errorf("unsigned under reject:\n got %v\nwant %s", err, want)
	}
}

// Every refusal: one line naming what was found, wrapping a sentinel.
func TestCreateRuntimeRefuses(t *testing.T) {
	f := newFixture(t)
	data := filepath.Join(f.dir, "objects")
	other := make([]byte, 32)
	copy(other, f.digest.Value)
	other[0] ^= 0xff
	const prefix = "container c1: root filesystem is not a verifiable composefs mount: "
	for _, tc := range []struct {
		name   string
		kernel func(k *fakeKernel)
		is     error
		want   string
	}{
		{
			name: "plain-directory",
			kernel: func(k *fakeKernel) {
				k.mountinfo = line(30, devExt4, "/", "/", "ext4", "/dev/vda1", "rw")
				delete(k.devs, f.root)
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is not a mount point (hook mode needs a composefs overlay mounted there with verity=require)",
		},
		{
			// the table lists the overlay, but the path shows another
			// file system (something was mounted over a parent since)
			name:   "hidden-mount",
			kernel: func(k *fakeKernel) { k.devs[f.root] = devExt4 },
			is:     ErrNotComposefs,
			want:   prefix + f.root + " is not a mount point (hook mode needs a composefs overlay mounted there with verity=require)",
		},
		{
			name: "ext4-mount",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devExt4, "/", f.root, "ext4", "/dev/vda1", "rw")
				k.devs[f.root] = devExt4
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is mounted as ext4 (source /dev/vda1), not as a composefs overlay",
		},
		{
			name: "bind-of-subdirectory",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devOverlay, "/usr", f.root, "overlay", "composefs", f.verityOpts())
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is a bind mount of the overlay's directory /usr, not of its root",
		},
		{
			name: "plain-overlay",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("rw,lowerdir=/var/l1:/var/l2,upperdir=/var/up,workdir=/var/work")
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)",
		},
		{
			name: "composefs-without-verity",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("ro,lowerdir=" + f.lower + "::" + data + ",redirect_dir=on,metacopy=on")
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)",
		},
		{
			name: "verity-on",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("ro,lowerdir=" + f.lower + "::" + data + ",redirect_dir=on,metacopy=on,verity=on")
			},
			is:   ErrNotComposefs,
			want: prefix + f.root + " is an overlay mounted with verity=on, not verity=require (the kernel would not check every object's fs-verity digest)",
		},
		{
			// a layer above the image would shadow its files
			name: "two-lower-layers",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("ro,lowerdir=/var/evil:" + f.lower + "::" + data + ",redirect_dir=on,metacopy=on,verity=require")
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + " has 2 lower layers (/var/evil " + f.lower + "); a composefs overlay has exactly one, the EROFS image, and data-only layers after it",
		},
		{
			name: "lower-relative",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("ro,lowerdir+=lower,datadir+=" + data + ",verity=require")
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + ` has lower layer "lower", not an absolute path that can be looked up in the mount table`,
		},
		{
			// mounts that detach the EROFS after mounting the overlay
			name: "lower-detached",
			kernel: func(k *fakeKernel) {
				k.mountinfo = line(45, devOverlay, "/", f.root, "overlay", "composefs", f.verityOpts())
				delete(k.devs, f.lower)
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + " has lower layer " + f.lower + ", which is not a mount point here (the EROFS image must stay mounted there for the hook to measure it)",
		},
		{
			name: "lower-missing",
			kernel: func(k *fakeKernel) {
				k.mountinfo = f.composefsTable("ro,lowerdir+=" + f.dir + "/gone,datadir+=" + data + ",verity=require")
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + ": lower layer " + f.dir + "/gone does not exist",
		},
		{
			name: "lower-not-erofs",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devExt4, "/", f.lower, "squashfs", "/dev/loop9", "ro")
				k.devs[f.lower] = devExt4
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + " has lower layer " + f.lower + ", mounted as squashfs (source /dev/loop9), not as EROFS",
		},
		{
			name: "lower-erofs-subdirectory",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devEROFS, "/etc", f.lower, "erofs", f.image, "ro")
			},
			is:   ErrNotComposefs,
			want: prefix + "overlay " + f.root + " has lower layer " + f.lower + ", the EROFS directory /etc, not the image's root",
		},
		{
			name: "image-source-relative",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devEROFS, "/", f.lower, "erofs", "image.cfs", "ro")
			},
			is:   ErrNotComposefs,
			want: prefix + "EROFS at " + f.lower + `: source "image.cfs" is not an absolute path to an image file`,
		},
		{
			name: "image-gone",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devEROFS, "/", f.lower, "erofs", f.dir+"/gone.cfs", "ro")
			},
			is:   ErrNotComposefs,
			want: prefix + "EROFS image " + f.dir + "/gone.cfs does not exist",
		},
		{
			name: "image-not-regular",
			kernel: func(k *fakeKernel) {
				k.mountinfo += line(50, devEROFS, "/", f.lower, "erofs", f.dir, "ro")
			},
			is:   ErrNotComposefs,
			want: prefix + "EROFS image " + f.dir + " is not a regular file",
		},
		{
			name:   "other-image",
			kernel: func(k *fakeKernel) { k.measured = other },
			is:     ErrDigestMismatch,
			want:   fmt.Sprintf("container c1: composefs digest mismatch: EROFS image %s (lower layer of %s) measures sha256:%x, but the signed digest is %s", f.image, f.root, other, f.digest),
		},
		{
			name: "other-algorithm",
			kernel: func(k *fakeKernel) {
				k.measureFn = func(*os.File) (verity.Algorithm, []byte, error) { return verity.SHA512, f.digest.Value, nil }
			},
			is:   ErrDigestMismatch,
			want: fmt.Sprintf("container c1: composefs digest mismatch: EROFS image %s (lower layer of %s) measures sha512:%s, but the signed digest is %s", f.image, f.root, f.digest.Hex(), f.digest),
		},
		{
			name: "image-without-verity",
			kernel: func(k *fakeKernel) {
				k.measureFn = func(*os.File) (verity.Algorithm, []byte, error) {
					return 0, nil, fmt.Errorf("%w: %w", verity.ErrNotEnabled, unix.ENODATA)
				}
			},
			is:   verity.ErrNotEnabled,
			want: fmt.Sprintf("container c1: composefs digest %s: EROFS image %s (lower layer of %s): fs-verity not enabled: no data available: enable fs-verity on the image and its objects (cfs-runtime verity enable FILE...), as the engine should when it stores them", f.digest, f.image, f.root),
		},
		{
			name: "kernel-without-verity",
			kernel: func(k *fakeKernel) {
				k.measureFn = func(*os.File) (verity.Algorithm, []byte, error) {
					return 0, nil, &verity.UnsupportedError{Reason: verity.ErrKernelNoVerity}
				}
			},
			is:   verity.ErrKernelNoVerity,
			want: fmt.Sprintf("container c1: composefs digest %s: EROFS image %s (lower layer of %s): kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY (hook mode checks only what the kernel measures)", f.digest, f.image, f.root),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := f.kernel(f.verityOpts())
			tc.kernel(k)
			_, err := k.checker(t).createRuntime(f.state(), f.policy)
			if err == nil {
				t.Fatal("not refused")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v: %v", tc.is, err)
			}
			if err.Error() != tc.want {
				t.Errorf("message\n got %s\nwant %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
			// runc puts it into its error, which podman pattern-matches
			if p := fserr.Misreads(err.Error()); p != "" {
				t.Errorf("message contains %q, which podman misreads", p)
			}
		})
	}
}

func TestCreateRuntimeLoopRefusals(t *testing.T) {
	f := newFixture(t)
	const prefix = "container c1: root filesystem is not a verifiable composefs mount: "
	for _, tc := range []struct {
		name   string
		kernel func(k *fakeKernel)
		want   string
	}{
		{
			name:   "replaced-file",
			kernel: func(k *fakeKernel) { k.loop.Inode++ },
			want: fmt.Sprintf(prefix+"loop device /dev/loop3 reads another file (device %d:%d, inode %d) than %s",
				unix.Major(imageIdentity(t, f.image).Device), unix.Minor(imageIdentity(t, f.image).Device), imageIdentity(t, f.image).Inode+1, f.image),
		},
		{
			name:   "offset",
			kernel: func(k *fakeKernel) { k.loop.Offset = 4096 },
			want:   prefix + "loop device /dev/loop3 reads " + f.image + " from offset 4096 with size limit 0, not the whole file",
		},
		{
			name:   "size-limit",
			kernel: func(k *fakeKernel) { k.loop.Sizelimit = 8192 },
			want:   prefix + "loop device /dev/loop3 reads " + f.image + " from offset 0 with size limit 8192, not the whole file",
		},
		{
			name: "deleted",
			kernel: func(k *fakeKernel) {
				k.sysfs["dev/block/7:3/loop/backing_file"] = f.image + " (deleted)\n"
			},
			want: prefix + "the backing file of loop device /dev/loop3 was deleted: " + f.image + " (deleted)",
		},
		{
			name: "status-fails",
			kernel: func(k *fakeKernel) {
				k.loop = nil
			},
			want: prefix + "loop device /dev/loop3: /dev/loop3: no fake loop status",
		},
		{
			name: "not-a-loop-device",
			kernel: func(k *fakeKernel) {
				k.mountinfo = line(42, devExt4, "/", f.lower, "erofs", "/dev/vda1", "ro") +
					line(45, devOverlay, "/", f.root, "overlay", "composefs", f.verityOpts())
				k.devs[f.lower] = devExt4
			},
			want: prefix + "EROFS at " + f.lower + " is on block device /dev/vda1 (254:1), which is not a loop device: the hook measures image files only",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := loopKernel(t, f)
			tc.kernel(k)
			_, err := k.checker(t).createRuntime(f.state(), f.policy)
			if !errors.Is(err, ErrNotComposefs) || err.Error() != tc.want {
				t.Errorf("\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestCreateRuntimeBundleErrors(t *testing.T) {
	f := newFixture(t)
	k := f.kernel(f.verityOpts())

	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), []byte(`{"annotations":`+annotationsJSON(t, f.ann)+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := k.checker(t).createRuntime(f.state(), f.policy)
	want := "container c1: root filesystem is not a verifiable composefs mount: " + filepath.Join(f.bundle, "config.json") + " has no root.path"
	if !errors.Is(err, ErrNotComposefs) || err.Error() != want {
		t.Errorf("no root.path:\n got %v\nwant %s", err, want)
	}

	gone := strings.NewReader(`{"id":"c1","bundle":"` + f.dir + `/gone"}`)
	_, err = k.checker(t).createRuntime(gone, f.policy)
	if !errors.Is(err, bundle.ErrNoBundle) || !strings.HasPrefix(err.Error(), "container c1: bundle not found: "+f.dir+"/gone") {
		t.Errorf("missing bundle: %v", err)
	}
}
