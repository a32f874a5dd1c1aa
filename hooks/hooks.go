//go:build linux

// Package hooks is cfs-runtime's OCI hook mode: `cfs-runtime hook
// createRuntime`, for hosts where the container engine mounts the composefs
// root filesystem itself (containers-storage with composefs) and runs the
// plain runtime.
//
// A createRuntime hook runs in the runtime's mount namespace after the
// runtime has set up the container's mounts, before pivot_root. It cannot
// swap the root filesystem, so hook mode only verifies, and fails closed: it
// applies the trust policy to the bundle's annotations exactly as create
// does, and for a signed digest the container's root (root.path of
// config.json, resolved against the bundle) must be
//
//   - the root of an overlay mount,
//   - mounted with verity=require, so that the kernel checks every object's
//     fs-verity digest against the one the image records,
//   - with exactly one lower layer besides its data-only layers: an EROFS
//     mount, still mounted at the lowerdir path (the hook finds it in the
//     mount table; mounts that detach it afterwards, as cfs-runtime's own
//     create and mount.composefs do, cannot be checked),
//   - whose image file (the EROFS mount's source, or the backing file of
//     its loop device) the kernel measures (FS_IOC_MEASURE_VERITY) as the
//     signed digest.
//
// Anything else refuses the container with one line saying what was found.
// The upper layer, if any, belongs to the engine, as do the container's
// other mounts: hook mode vouches for the image, not for what the engine
// puts on top of it.
package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

var (
	// ErrNotComposefs: the container's root is not a composefs overlay
	// that the hook can verify (not a mount, not an overlay, no
	// verity=require, other lower layers, no measurable EROFS image).
	ErrNotComposefs = errors.New("root filesystem is not a verifiable composefs mount")
	// ErrDigestMismatch: the mounted image is not the one that was signed
	// (the same error as create's).
	ErrDigestMismatch = attest.ErrDigestMismatch
)

// Result is what a successful check found.
type Result struct {
	ID     string // container id, from the state
	Bundle string // bundle directory, from the state
	// Verdict is the policy's decision; when Verdict.Unsigned nothing was
	// mounted or measured and the fields below are empty.
	Verdict attest.Verdict
	Root    string // the container's root filesystem (the overlay)
	Lower   string // where its EROFS is mounted
	Image   string // the image file that measured as the signed digest
	Loop    string // the loop device between them, "" when file-backed
}

// checker holds what the check asks the kernel; tests replace parts.
type checker struct {
	mounts     func() ([]*mountinfo.Info, error)
	stat       func(path string) (dev uint64, err error)
	sysfs      string
	loopStatus func(node string, major, minor int) (*unix.LoopInfo64, error)
	measure    func(*os.File) (verity.Algorithm, []byte, error)
}

func newChecker() *checker {
	return &checker{
		mounts:     func() ([]*mountinfo.Info, error) { return mountinfo.GetMounts(nil) },
		stat:       statDev,
		sysfs:      "/sys",
		loopStatus: loopStatus,
		measure:    verity.MeasureFile,
	}
}

// CreateRuntime is the createRuntime hook: it reads the OCI state from r,
// loads the bundle's config.json and applies policy p to its annotations;
// for a signed digest it verifies that the container's root is a composefs
// overlay with verity=require whose EROFS image measures as that digest.
// Every error says in one line why the container may not start; with it
// comes the Result as far as it is known (nil before the bundle is read),
// for the audit trail.
func CreateRuntime(r io.Reader, p *attest.Policy) (*Result, error) {
	return newChecker().createRuntime(r, p)
}

func (c *checker) createRuntime(r io.Reader, p *attest.Policy) (*Result, error) {
	st, err := ReadState(r)
	if err != nil {
		return nil, err
	}
	res, err := c.check(st, p)
	if err != nil {
		return res, fmt.Errorf("container %s: %w", st.ID, err)
	}
	return res, nil
}

func (c *checker) check(st *specs.State, p *attest.Policy) (*Result, error) {
	b, err := bundle.Load(st.Bundle, "config.json", bundlejson.JSON)
	if err != nil {
		return nil, err
	}
	ref, refErr := imageref.FromAnnotations(b.Annotations())
	verdict, err := attest.Verify(b.Annotations(), p, attest.WithReference(ref, refErr))
	res := &Result{ID: st.ID, Bundle: b.Dir, Verdict: verdict}
	if err != nil {
		return res, err
	}
	if verdict.Unsigned {
		return res, nil
	}
	root := b.RootPath()
	if root == "" {
		return res, fmt.Errorf("%w: %s has no root.path", ErrNotComposefs, b.ConfigPath)
	}
	if err := c.verifyRoot(res, root, *verdict.Digest); err != nil {
		return res, err
	}
	return res, nil
}

// verifyRoot checks the mount at root and measures its image, filling in
// res.
func (c *checker) verifyRoot(res *Result, root string, d attest.Digest) error {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotComposefs, fserr.New("root filesystem", root, err))
	}
	res.Root = real
	mounts, err := c.mounts()
	if err != nil {
		return fmt.Errorf("reading the mount table: %w", err)
	}
	ov, err := c.mountAt(mounts, real)
	if err != nil {
		return fmt.Errorf("%w: root filesystem: %w", ErrNotComposefs, err)
	}
	switch {
	case ov == nil:
		return fmt.Errorf("%w: %s is not a mount point (hook mode needs a composefs overlay mounted there with verity=require)", ErrNotComposefs, real)
	case ov.FSType != "overlay":
		return fmt.Errorf("%w: %s is mounted as %s (source %s), not as a composefs overlay", ErrNotComposefs, real, ov.FSType, ov.Source)
	case ov.Root != "/":
		return fmt.Errorf("%w: %s is a bind mount of the overlay's directory %s, not of its root", ErrNotComposefs, real, ov.Root)
	}
	o := parseOverlayOptions(ov.VFSOptions)
	switch {
	case o.verity != "require":
		mode := "without verity=require"
		if o.verity != "" {
			mode = "with verity=" + o.verity + ", not verity=require"
		}
		return fmt.Errorf("%w: %s is an overlay mounted %s (the kernel would not check every object's fs-verity digest)", ErrNotComposefs, real, mode)
	case len(o.lower) != 1:
		return fmt.Errorf("%w: overlay %s has %d lower layers (%s); a composefs overlay has exactly one, the EROFS image, and data-only layers after it", ErrNotComposefs, real, len(o.lower), strings.Join(o.lower, " "))
	}
	em, err := c.erofsAt(mounts, real, o.lower[0])
	if err != nil {
		return err
	}
	res.Lower = em.Mountpoint
	f, err := c.openImage(res, em)
	if err != nil {
		return err
	}
	defer f.Close()
	alg, got, err := c.measure(f)
	if err != nil {
		return fmt.Errorf("composefs digest %s: EROFS image %s (lower layer of %s): %w%s", d, res.Image, real, err, measureFix(err))
	}
	if alg != d.Algorithm || !bytes.Equal(got, d.Value) {
		return fmt.Errorf("%w: EROFS image %s (lower layer of %s) measures %s:%x, but the signed digest is %s", ErrDigestMismatch, res.Image, real, alg, got, d)
	}
	return nil
}

// mountAt returns the mount that path shows, nil if path is not a mount
// point: the last mount table entry for that mount point whose device is
// the one stat reports for path (an entry hidden by a later mount does not
// count).
func (c *checker) mountAt(mounts []*mountinfo.Info, path string) (*mountinfo.Info, error) {
	dev, err := c.stat(path)
	if err != nil {
		return nil, err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if m.Mountpoint == path && uint32(m.Major) == unix.Major(dev) && uint32(m.Minor) == unix.Minor(dev) {
			return m, nil
		}
	}
	return nil, nil
}

func statDev(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Dev, nil
}

// erofsAt finds the EROFS mount at the overlay's lower layer.
func (c *checker) erofsAt(mounts []*mountinfo.Info, overlay, lower string) (*mountinfo.Info, error) {
	if !filepath.IsAbs(lower) {
		return nil, fmt.Errorf("%w: overlay %s has lower layer %q, not an absolute path that can be looked up in the mount table", ErrNotComposefs, overlay, lower)
	}
	real, err := filepath.EvalSymlinks(lower)
	if err != nil {
		return nil, fmt.Errorf("%w: overlay %s: %w", ErrNotComposefs, overlay, fserr.New("lower layer", lower, err))
	}
	m, err := c.mountAt(mounts, real)
	if err != nil {
		return nil, fmt.Errorf("%w: overlay %s has lower layer %s: %w", ErrNotComposefs, overlay, lower, err)
	}
	switch {
	case m == nil:
		return nil, fmt.Errorf("%w: overlay %s has lower layer %s, which is not a mount point here (the EROFS image must stay mounted there for the hook to measure it)", ErrNotComposefs, overlay, real)
	case m.FSType != "erofs":
		return nil, fmt.Errorf("%w: overlay %s has lower layer %s, mounted as %s (source %s), not as EROFS", ErrNotComposefs, overlay, real, m.FSType, m.Source)
	case m.Root != "/":
		return nil, fmt.Errorf("%w: overlay %s has lower layer %s, the EROFS directory %s, not the image's root", ErrNotComposefs, overlay, real, m.Root)
	}
	return m, nil
}

// openImage opens the file the EROFS mount m reads: for a file-backed EROFS
// (an anonymous device, 0:N) its mount source, otherwise the backing file
// of its loop device.
func (c *checker) openImage(res *Result, m *mountinfo.Info) (*os.File, error) {
	if m.Major == 0 {
		if !filepath.IsAbs(m.Source) {
			return nil, fmt.Errorf("%w: EROFS at %s: source %q is not an absolute path to an image file", ErrNotComposefs, m.Mountpoint, m.Source)
		}
		res.Image = m.Source
		return openRegular(m.Source)
	}
	lf, err := c.loopBacking(m)
	if err != nil {
		return nil, err
	}
	res.Image, res.Loop = lf.path, lf.device
	f, err := openRegular(lf.path)
	if err != nil {
		return nil, err
	}
	// The file measured must be the one the loop device reads, not
	// another one renamed to its name since.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", lf.path, err)
	}
	if st.Dev != lf.dev || st.Ino != lf.ino {
		f.Close()
		return nil, fmt.Errorf("%w: loop device %s reads another file (device %d:%d, inode %d) than %s", ErrNotComposefs, lf.device, unix.Major(lf.dev), unix.Minor(lf.dev), lf.ino, lf.path)
	}
	return f, nil
}

func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotComposefs, fserr.New("EROFS image", path, err))
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: EROFS image %s is not a regular file", ErrNotComposefs, path)
	}
	return f, nil
}

// measureFix says what to change when the kernel cannot measure the
// engine's image: hook mode has no weaker level, it checks what the kernel
// measures or refuses.
func measureFix(err error) string {
	switch {
	case errors.Is(err, verity.ErrKernelNoVerity):
		return ": boot a kernel built with CONFIG_FS_VERITY (hook mode checks only what the kernel measures)"
	case errors.Is(err, verity.ErrNotEnabled):
		return ": enable fs-verity on the image and its objects (cfs-runtime verity enable FILE...), as the engine should when it stores them"
	case errors.Is(err, verity.ErrFSNoVerity):
		return ": keep the engine's storage on a filesystem with fs-verity (ext4 with the verity feature, btrfs, f2fs)"
	}
	return ""
}
