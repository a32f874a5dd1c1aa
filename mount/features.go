//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
)

// Feature is one kernel capability as found by trying it.
type Feature struct {
	Supported bool
	Err       error // the kernel's answer when not supported
}

func feature(err error) Feature { return Feature{Supported: err == nil, Err: err} }

// Features are the kernel capabilities composefs mounts use.
type Features struct {
	// MountAPI: the new mount API (fsopen(2), Linux ≥ 5.2), which every
	// mount here goes through.
	MountAPI Feature
	// FileBackedEROFS: EROFS mounts straight from an image file (Linux ≥
	// 6.12, CONFIG_EROFS_FS_BACKED_BY_FILE). Without it Mount uses a loop
	// device.
	FileBackedEROFS Feature
	// LoopDevice: a read-only autoclear loop device set up with
	// LOOP_CONFIGURE (Linux ≥ 5.8), and EROFS mounted from it.
	LoopDevice Feature
	// OverlayDataOnly: overlayfs data-only lower layers (lowerdir=A::B,
	// Linux ≥ 6.5), which composefs needs.
	OverlayDataOnly Feature
	// OverlayLayerAppend: lowerdir+/datadir+ (Linux ≥ 6.8). Without it
	// Mount falls back to mount(2) with lowerdir=A::B.
	OverlayLayerAppend Feature
	// OverlayVerity: overlayfs verity=require (Linux ≥ 6.6), which
	// VerityRequire needs. It does not tell whether the kernel has
	// fs-verity itself: see verity.Probe.
	OverlayVerity Feature
}

// Usable says whether composefs images can be mounted at all: nil, or why
// not.
func (f Features) Usable() error {
	if !f.MountAPI.Supported {
		return fmt.Errorf("no new mount API (needs Linux ≥ 5.2): %w", f.MountAPI.Err)
	}
	if !f.FileBackedEROFS.Supported && !f.LoopDevice.Supported {
		return fmt.Errorf("cannot mount EROFS images: from a file: %w; from a loop device: %w",
			f.FileBackedEROFS.Err, f.LoopDevice.Err)
	}
	if !f.OverlayDataOnly.Supported {
		return fmt.Errorf("%w: %w", ErrOverlayNoDataOnly, f.OverlayDataOnly.Err)
	}
	return nil
}

// String lists the features one per line, "name: yes" or "name: no (why)".
func (f Features) String() string {
	var b strings.Builder
	for _, x := range []struct {
		name string
		f    Feature
	}{
		{"new mount API (fsopen)", f.MountAPI},
		{"file-backed EROFS", f.FileBackedEROFS},
		{"EROFS on a loop device", f.LoopDevice},
		{"overlayfs data-only layers", f.OverlayDataOnly},
		{"overlayfs lowerdir+/datadir+", f.OverlayLayerAppend},
		{"overlayfs verity=", f.OverlayVerity},
	} {
		if x.f.Supported {
			fmt.Fprintf(&b, "%s: yes\n", x.name)
		} else {
			fmt.Fprintf(&b, "%s: no (%v)\n", x.name, x.f.Err)
		}
	}
	return b.String()
}

// Probe tries every feature the way Mount uses it, on a tiny image in a
// temporary directory made in dir, which should be on the filesystem that
// holds the images (the store): whether EROFS can mount a file depends on
// the filesystem too. "" means os.TempDir(). Superblocks are created and
// released without ever being attached, so nothing shows up in the mount
// table; the loop device (autoclear) is gone when Probe returns. Needs
// root. The results also prime Mount's per-process cache.
func Probe(dir string) Features {
	var f Features
	if dir == "" {
		dir = os.TempDir()
	}
	tmp, err := os.MkdirTemp(dir, ".cfs-mount-probe-")
	if err != nil {
		err = fmt.Errorf("probe: %w", err)
		return Features{feature(err), feature(err), feature(err), feature(err), feature(err), feature(err)}
	}
	defer os.RemoveAll(tmp)
	f.MountAPI = feature(tryFsopen())
	img, err := probeImage(tmp)
	if err != nil {
		f.FileBackedEROFS, f.LoopDevice = feature(err), feature(err)
	} else {
		// As Mount does: from the open file, never by name.
		err := tryEROFS(fdPath(img))
		switch {
		case err == nil:
			fileBacked.Store(fileDev(img), supported)
		case errors.Is(err, unix.ENOTBLK):
			fileBacked.Store(fileDev(img), unsupported)
			err = fmt.Errorf("%w: %w", errNoFileBacked, err)
		}
		f.FileBackedEROFS = feature(err)
		f.LoopDevice = feature(tryLoop(img))
		img.Close()
	}
	lower, data := filepath.Join(tmp, "lower"), filepath.Join(tmp, "data")
	for _, d := range []string{lower, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			err = fmt.Errorf("probe: %w", err)
			f.OverlayDataOnly, f.OverlayLayerAppend, f.OverlayVerity = feature(err), feature(err), feature(err)
			return f
		}
	}
	// Data-only layers need metacopy=on (and composefs redirect_dir=on)
	// where it is not the kernel's default.
	meta := [][2]string{{"metacopy", "on"}, {"redirect_dir", "on"}}
	f.OverlayDataOnly = feature(tryOverlay(append(meta, [2]string{"lowerdir", lower + "::" + data})...))
	f.OverlayLayerAppend = feature(tryOverlay(append(meta, [2]string{"lowerdir+", lower}, [2]string{"datadir+", data})...))
	switch {
	case f.OverlayLayerAppend.Supported:
		layerAppend.Store(supported)
	case errors.Is(f.OverlayLayerAppend.Err, errNoLayerAppend):
		layerAppend.Store(unsupported)
	}
	f.OverlayVerity = feature(tryOverlay(append(meta, [2]string{"verity", "require"},
		[2]string{"lowerdir", lower + "::" + data})...))
	return f
}

// probeImage writes the composefs image of an empty directory and
// returns it open.
func probeImage(tmp string) (*os.File, error) {
	src := filepath.Join(tmp, "root")
	if err := os.Mkdir(src, 0o755); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	t, err := composefs.BuildTree(src)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	f, err := os.Create(filepath.Join(tmp, "probe.cfs"))
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	if err := t.WriteImage(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("probe: %w", err)
	}
	return f, nil
}

// tryFsopen opens (and drops) a filesystem context.
func tryFsopen() error {
	c, err := openFS("overlay")
	if err != nil {
		return err
	}
	c.close()
	return nil
}

func tryEROFS(source string) error {
	mfd, err := fsmountEROFS(source)
	if err != nil {
		return err
	}
	unix.Close(mfd) // never attached: the mount just goes away
	return nil
}

func tryLoop(img *os.File) error {
	dev, lf, err := attachLoop(img, img.Name())
	if err != nil {
		return err
	}
	defer lf.Close() // autoclear
	return tryEROFS(dev)
}

// tryOverlay creates (but does not mount) an overlay superblock.
func tryOverlay(opts ...[2]string) error {
	c, err := openFS("overlay")
	if err != nil {
		return err
	}
	defer c.close()
	if err := setOverlayOptions(c, opts); err != nil {
		return err
	}
	return c.create()
}
