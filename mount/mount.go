//go:build linux

// Package mount mounts composefs images as container root filesystems and
// removes them again.
//
// A mount is made in a per-container state directory (for cfs-runtime
// /run/cfs-runtime/<id>):
//
//	<state>/            bind-mounted onto itself and made private
//	<state>/lower/      the EROFS image, read-only (only while mounting)
//	(no name)           the image's private copy, for ImageBytes
//	<state>/upper/      overlay upper layer (not when read-only)
//	<state>/work/       overlay work directory (not when read-only)
//	<state>/merged/     the overlay: the container's root filesystem
//	<state>/state.json  what was mounted (State), written atomically
//
// Mount never opens an image by name: the caller verified an open file
// (ImageFile) or the bytes it hashed (ImageBytes), and that is what gets
// mounted, even if the name is pointed at other bytes meanwhile. The EROFS
// is mounted from that file itself where the kernel can (Linux ≥ 6.12:
// the source /proc/self/fd/N is the open file, whatever its name has
// become), otherwise from a read-only autoclear loop device configured
// from the descriptor. Bytes are first written into a private, nameless
// file in the state directory (O_TMPFILE): nothing outside this process
// can reach it, and it is gone with the mount. The
// overlay has the EROFS as its lower layer and the object store as a
// data-only lower layer, with metacopy=on,redirect_dir=on and, when asked,
// verity=require, so the kernel checks each object's fs-verity digest
// against the one the image records. Kernel features are found by trying
// them, never from the version number, and remembered for the process
// (file-backed EROFS per filesystem of the image: tmpfs files cannot back
// an EROFS). Probe reports them for `cfs-runtime verify`/`policy check`.
//
// Once the overlay is mounted the EROFS is unmounted from lower/ again, as
// mount.composefs does: overlayfs keeps its own private clone of every
// layer, so the image stays mounted exactly as long as the overlay, and
// the loop device (autoclear) disappears with it. Unmounting merged/ is
// all it takes to release everything.
//
// The state directory is a private mount so that the mounts made in it
// never propagate: not into other mount namespaces (where a copy would
// keep the overlay, the image and the loop device alive after delete and
// could make unmounting fail with EBUSY), and not back from them. runc
// then bind-mounts merged/ and pivots into it as into any rootfs; its
// parent mount is not shared, as pivot_root(2) wants.
package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/statedir"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Errors. Every error of Mount also says what failed and why; these let
// callers tell the cases apart with errors.Is.
var (
	// ErrOverlayNoVerity: overlayfs refused the verity= option.
	ErrOverlayNoVerity = errors.New("overlayfs does not support verity= (needs Linux ≥ 6.6)")
	// ErrOverlayNoDataOnly: overlayfs cannot have data-only lower layers.
	ErrOverlayNoDataOnly = errors.New("overlayfs does not support data-only lower layers (needs Linux ≥ 6.5)")
	// ErrOverlayNoMetacopy: overlayfs refused metacopy= or redirect_dir=
	// (a kernel without CONFIG_OVERLAY_FS_METACOPY and _REDIRECT_DIR).
	ErrOverlayNoMetacopy = errors.New("overlayfs does not support metacopy=on/redirect_dir=on")
	// ErrObjectNoVerity: verity=require, but an object in the store has no
	// fs-verity although the filesystem could have it.
	ErrObjectNoVerity = errors.New("object has no fs-verity")
	// ErrPathSyntax: a path cannot be written in the mount(2) overlay
	// option string (it holds ',', ':' or '\').
	ErrPathSyntax = errors.New("path contains ',', ':' or '\\', which the lowerdir= syntax cannot express")
	// ErrStateDirInUse: the state directory already holds a mount, or
	// another process is mounting or removing it right now.
	ErrStateDirInUse = errors.New("state directory in use")
	// ErrInvalidOptions: a required option is missing or not absolute.
	ErrInvalidOptions = errors.New("invalid mount options")
)

// VerityMode says whether overlayfs enforces the objects' fs-verity.
type VerityMode int

const (
	// VerityOff mounts without a verity= option: objects are not checked
	// by the kernel (the caller verified them, or policy allows it).
	VerityOff VerityMode = iota
	// VerityRequire mounts with verity=require: opening an object whose
	// fs-verity digest differs from the image's, or that has none, fails
	// with EIO.
	VerityRequire
)

func (v VerityMode) String() string {
	if v == VerityRequire {
		return "require"
	}
	return "off"
}

// Image is the composefs image that Mount mounts, as its caller verified
// it: an open file or the bytes themselves, never a name to open again.
type Image struct {
	name string   // for messages and State.Image
	file *os.File // ImageFile
	data []byte   // ImageBytes
}

// ImageFile is the image open as f, whose content cannot change once it
// was verified: a file with fs-verity, measured through f. Mount mounts
// that very file (not whatever f.Name() names by then); f stays the
// caller's to close, which it may do as soon as Mount returns.
func ImageFile(f *os.File) Image { return Image{name: f.Name(), file: f} }

// ImageBytes is an image given as the bytes that were verified (hashed in
// userspace: the file they came from can be rewritten in place after the
// check). Mount writes them into a private, nameless file in the state
// directory and mounts that. name says where they came from (the store's
// images/<digest>), for messages and State.Image.
func ImageBytes(name string, data []byte) Image { return Image{name: name, data: data} }

// Name is where the image came from.
func (i Image) Name() string { return i.name }

// Copied reports an image given as bytes (ImageBytes), which Mount
// mounts from a private copy rather than from the file they came from.
func (i Image) Copied() bool { return i.file == nil }

// Options says what to mount where.
type Options struct {
	Image      Image      // the verified composefs image
	ObjectsDir string     // the store's objects directory: the data-only lower layer
	StateDir   string     // per-container directory; created if missing
	ReadOnly   bool       // no upper layer: the root filesystem cannot be written (root.readonly)
	Verity     VerityMode // VerityRequire: mount with verity=require
	Digest     string     // composefs digest, recorded in state.json (default: Image's base name if it is one)
	Logger     *slog.Logger
}

// Names inside the state directory.
const (
	lowerName  = "lower"
	upperName  = "upper"
	workName   = "work"
	mergedName = statedir.Merged
	stateName  = "state.json"
)

// Mounted is a mounted composefs image.
type Mounted struct {
	State State
	log   *slog.Logger
}

// Root is the container's root filesystem: the overlay mount point.
func (m *Mounted) Root() string { return m.State.Merged }

// Unmount unmounts and removes the state directory (see Unmount).
func (m *Mounted) Unmount() error { return Unmount(m.State.StateDir, WithLogger(m.log)) }

func (o *Options) check() error {
	if o.Image.file == nil && len(o.Image.data) == 0 {
		return fmt.Errorf("%w: no image", ErrInvalidOptions)
	}
	for _, f := range []struct{ name, val string }{
		{"objects directory", o.ObjectsDir}, {"state directory", o.StateDir},
	} {
		if f.val == "" {
			return fmt.Errorf("%w: no %s", ErrInvalidOptions, f.name)
		}
		if !filepath.IsAbs(f.val) {
			return fmt.Errorf("%w: %s %q is not absolute", ErrInvalidOptions, f.name, f.val)
		}
	}
	o.StateDir = filepath.Clean(o.StateDir)
	if o.StateDir == "/" {
		return fmt.Errorf("%w: state directory is /", ErrInvalidOptions)
	}
	if o.Image.file != nil {
		if fi, err := o.Image.file.Stat(); err != nil {
			return fserr.New("image", o.Image.name, err)
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("image %s: not a regular file", o.Image.name)
		}
	}
	if fi, err := os.Stat(o.ObjectsDir); err != nil {
		return fserr.New("objects directory", o.ObjectsDir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("objects directory %s: %w", o.ObjectsDir, unix.ENOTDIR)
	}
	if o.Digest == "" && isDigest(filepath.Base(o.Image.name)) {
		o.Digest = filepath.Base(o.Image.name)
	}
	return nil
}

func isDigest(s string) bool { return len(s) == 64 && isHex(s) }

// Mount mounts the composefs image opts.Image in opts.StateDir and returns
// the mount; its Root is the container's root filesystem. On any failure
// everything done so far is undone (no mount, no loop device, no state
// directory it created) and the error says which step failed and why.
func Mount(opts Options) (_ *Mounted, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("mount composefs: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("mount composefs image %s: %w", opts.Image.name, err)
		}
	}()
	if opts.Verity == VerityRequire {
		// Checked first: without fs-verity every object read would fail
		// with EIO on an otherwise perfectly mounted overlay.
		if err := checkVerity(opts.ObjectsDir); err != nil {
			return nil, fmt.Errorf("verity=require: %w", err)
		}
	}

	var lock *os.File // released after the undo below, so Cleanup cannot interleave
	defer func() {
		if lock != nil {
			lock.Close()
		}
	}()
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				errs = append(errs, uerr)
			}
		}
		if len(errs) > 0 {
			err = fmt.Errorf("%w; cleaning up also failed: %w", err, errors.Join(errs...))
		}
	}()

	dir := opts.StateDir
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return nil, fserr.New("state directory", dir, err)
	}
	switch err := os.Mkdir(dir, 0o711); {
	case err == nil:
		undo = append(undo, func() error { return removeTree(dir) })
	case errors.Is(err, fs.ErrExist):
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("state directory %s: exists and is not a directory", dir)
		}
	default:
		return nil, fserr.New("state directory", dir, err)
	}
	if lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	for _, n := range []string{stateName, lowerName, upperName, workName, mergedName} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return nil, fmt.Errorf("%s: %w: %s exists (remove it with Unmount or cfs-runtime cleanup)", dir, ErrStateDirInUse, n)
		}
	}

	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind-mount state directory %s onto itself: %w", dir, err)
	}
	undo = append(undo, func() error {
		if err := unmountOnce(dir, log); err != nil && !errors.Is(err, errNotMounted) {
			return err
		}
		return nil
	})
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make state directory %s a private mount: %w", dir, err)
	}

	st := State{
		Version:    stateVersion,
		Image:      opts.Image.name,
		ImageCopy:  opts.Image.file == nil,
		Digest:     opts.Digest,
		ObjectsDir: opts.ObjectsDir,
		StateDir:   dir,
		Lower:      filepath.Join(dir, lowerName),
		Merged:     filepath.Join(dir, mergedName),
		ReadOnly:   opts.ReadOnly,
		Verity:     opts.Verity.String(),
	}
	subdirs := []string{st.Lower, st.Merged}
	if !opts.ReadOnly {
		st.Upper = filepath.Join(dir, upperName)
		st.Work = filepath.Join(dir, workName)
		subdirs = append(subdirs, st.Upper, st.Work)
	}
	for _, d := range subdirs {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		undo = append(undo, func() error { return removeTree(d) })
	}

	img := opts.Image.file
	if img == nil {
		if img, err = privateCopy(dir, opts.Image.data); err != nil {
			return nil, err
		}
		// Once mounted, the EROFS holds the copy; when it goes, so does
		// the copy (it never had a name).
		defer img.Close()
	}
	em, err := mountEROFS(img, opts.Image.name, st.Lower, log)
	if err != nil {
		return nil, err
	}
	st.FileBacked, st.LoopDevice = em.fileBacked, em.loopDevice
	lowerMounted := true
	undo = append(undo, func() error {
		if lowerMounted {
			return unmountAll(st.Lower, log)
		}
		return nil
	})

	if !opts.ReadOnly {
		// With an upper layer the overlay's root directory is the upper
		// directory: give it the image root's owner and mode, or the
		// container would see root 0700 instead of what was signed.
		if err := copyRootAttrs(st.Lower, st.Upper); err != nil {
			return nil, err
		}
	}

	spec := overlaySpec{lower: st.Lower, data: opts.ObjectsDir, upper: st.Upper, work: st.Work,
		target: st.Merged, verity: opts.Verity == VerityRequire}
	st.OverlaySyntax, st.OverlayOptions, err = mountOverlay(spec, log)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return unmountAll(st.Merged, log) })
	if testHookAfterOverlay != nil {
		if err := testHookAfterOverlay(); err != nil {
			return nil, err
		}
	}

	// The overlay holds its own clone of the EROFS mount; drop ours.
	if err := unmountAll(st.Lower, log); err != nil {
		return nil, fmt.Errorf("unmount %s after mounting the overlay: %w", st.Lower, err)
	}
	lowerMounted = false

	st.Created = time.Now().UTC()
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	log.Debug("mounted composefs image", "image", opts.Image.name, "copy", st.ImageCopy, "root", st.Merged,
		"fileBacked", st.FileBacked, "loop", st.LoopDevice, "overlay", st.OverlaySyntax, "options", st.OverlayOptions)
	return &Mounted{State: st, log: log}, nil
}

// copyRootAttrs gives dst the owner and permission bits of src.
func copyRootAttrs(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return fmt.Errorf("stat image root: %w", err)
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("upper layer: %w", err)
	}
	// chmod after chown: chown clears set-id bits.
	if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
		return fmt.Errorf("upper layer: chmod %s: %w", dst, err)
	}
	return nil
}

// Test hooks: checkVerity stands in for a kernel with fs-verity;
// testHookAfterOverlay fails a Mount once the overlay is up.
var (
	checkVerity          = checkObjectsVerity
	testHookAfterOverlay func() error
)

// checkObjectsVerity makes sure overlayfs can find fs-verity digests on the
// objects in dir: one object is looked at (statx), and if it has none the
// reason is asked of verity.Probe (kernel, filesystem, missing feature).
func checkObjectsVerity(dir string) error {
	obj, err := sampleObject(dir)
	if err != nil {
		return err
	}
	if obj != "" {
		if ok, err := verity.IsEnabled(obj); err != nil {
			return err
		} else if ok {
			return nil
		}
	}
	if err := verity.Probe(dir); err != nil {
		return err
	}
	if obj != "" {
		return fmt.Errorf("%s: %w (the store was filled without fs-verity)", obj, ErrObjectNoVerity)
	}
	return nil
}

// sampleObject returns the path of some object in the store's objects
// directory (XX/<62 hex>), or "" when there is none.
func sampleObject(dir string) (string, error) {
	top, err := os.Open(dir)
	if err != nil {
		return "", fmt.Errorf("objects directory: %w", err)
	}
	defer top.Close()
	for {
		names, err := top.Readdirnames(64)
		for _, n := range names {
			if len(n) != 2 || !isHex(n) {
				continue
			}
			sub, err := os.Open(filepath.Join(dir, n))
			if err != nil {
				continue
			}
			objs, _ := sub.Readdirnames(16)
			sub.Close()
			for _, o := range objs {
				if len(o) == 62 && isHex(o) {
					return filepath.Join(dir, n, o), nil
				}
			}
		}
		if err != nil {
			return "", nil
		}
	}
}

func isHex(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }

// lockDir takes an exclusive flock on dir, without waiting: Mount holds it
// while mounting, Unmount and Cleanup while removing.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w: locked by another process", dir, ErrStateDirInUse)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	return f, nil
}
