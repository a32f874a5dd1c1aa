package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// CheckMode says how Check establishes that stored bytes match their
// digests.
type CheckMode int

const (
	// CheckHash hashes every byte of the image and its objects in
	// userspace (for hosts without kernel fs-verity).
	CheckHash CheckMode = iota
	// CheckMeasure asks the kernel (FS_IOC_MEASURE_VERITY): cheap, and
	// every later read is checked by fs-verity itself.
	CheckMeasure
)

// Check errors.
var (
	// ErrCorrupt means stored bytes do not match their digest.
	ErrCorrupt = errors.New("digest mismatch")
	// ErrMissingObject means an object the image references is absent.
	ErrMissingObject = errors.New("object missing from the store")
)

// CheckImage verifies the image with the given digest and every object it
// references, by mode. It returns the first problem found, naming the
// object and a path inside the image that uses it.
func (s *Store) CheckImage(digest composefs.ImageDigest, mode CheckMode) error {
	f, err := s.OpenImage(digest)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = s.CheckImageFile(f, digest, mode)
	return err
}

// OpenImage opens the image with the given digest for checking and
// mounting: the object that images/DIGEST links to (objects/XX/YYYY...,
// named by the image's own digest), without following a symlink there, and
// only if it is a regular file. Check and mount then use the descriptor,
// never the name again: between a check and a mount, a name can be
// pointed at other bytes (a rename over it), an open file cannot. The
// file's Name is images/DIGEST in the store, the image's name.
func (s *Store) OpenImage(id composefs.ImageDigest) (*os.File, error) {
	digest, err := name(id)
	if err != nil {
		return nil, err
	}
	d := id.Value
	path, err := s.imageObject(digest, d)
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO put in its place must not hang the open.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("image %s: %w", digest, ErrMissingObject)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: open %s: %w", digest, path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = errNotRegular
		}
		return nil, fmt.Errorf("image %s: %s: %w", digest, path, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.dir, "images", digest)), nil
}

// imageObject returns the path of the image object that images/DIGEST
// links to, which must be the object named by the image's digest d.
func (s *Store) imageObject(digest string, d []byte) (string, error) {
	// The images/ link decides whether the store has the image; its
	// object may be missing (damage, not "not in the store").
	target, err := os.Readlink(filepath.Join(s.dir, "images", digest))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("image %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", digest, err)
	}
	if want := filepath.Join("..", "objects", composefs.ObjectPath(d)); target != want {
		return "", fmt.Errorf("image %s: images/%s links to %s, not to its object %s", digest, digest, target, want)
	}
	return filepath.Join(s.dir, "objects", composefs.ObjectPath(d)), nil
}

// CheckImageFile verifies f, the image with the given digest as OpenImage
// opened it, and every object it references, by mode, and returns the
// image's bytes as they were checked. f is read once, from its start.
//
// At CheckHash those bytes are what was hashed; f's content can still be
// rewritten in place afterwards, so mount the returned bytes, not f. At
// CheckMeasure the kernel measured f, whose content fs-verity keeps from
// ever changing: mounting f itself mounts what was measured.
func (s *Store) CheckImageFile(f *os.File, id composefs.ImageDigest, mode CheckMode) ([]byte, error) {
	digest, err := name(id)
	if err != nil {
		return nil, err
	}
	want := id.Value
	if mode == CheckMeasure {
		if err := measureFile(f, want); err != nil {
			return nil, fmt.Errorf("image %s: %w", digest, err)
		}
	}
	data, err := readFile(f)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	if mode != CheckMeasure {
		h, err := verity.NewHasher(verity.WithAlgorithm(id.Algorithm))
		if err != nil {
			return nil, err
		}
		h.Write(data)
		if got := h.Sum(); !bytes.Equal(got, want) {
			return nil, fmt.Errorf("image %s: %w: content hashes to %x", digest, ErrCorrupt, got)
		}
	}
	img, err := composefs.ParseImage(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	if err := s.checkObjects(img, mode); err != nil {
		return nil, err
	}
	return data, nil
}

// readFile reads all of f from its start (whatever its offset), in one
// read where it keeps the size fstat gives.
func readFile(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkObjects verifies every object img references, by mode.
func (s *Store) checkObjects(img *composefs.Image, mode CheckMode) error {
	// One check per distinct object; remember one path that uses it.
	users := map[string]string{}
	var paths []string
	err := img.Walk(func(e *composefs.Entry) error {
		if e.Inode.Digest == nil || e.HardlinkOf != "" {
			return nil
		}
		p := filepath.Join(s.dir, "objects", composefs.ObjectPath(e.Inode.Digest))
		if _, seen := users[p]; !seen {
			users[p] = e.Path
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	describe := func(p string, err error) error {
		return fmt.Errorf("object %s (used by %s): %w", filepath.Base(filepath.Dir(p))+filepath.Base(p), users[p], err)
	}
	if mode == CheckMeasure {
		for _, p := range paths {
			if err := measureObject(p, digestOfObjectPath(p)); err != nil {
				return describe(p, err)
			}
		}
		return nil
	}
	// Hashed with each object's own algorithm (by its digest's size).
	byAlg := map[verity.Algorithm][]string{}
	for _, p := range paths {
		alg, _ := composefs.DigestAlgorithm(digestOfObjectPath(p))
		byAlg[alg] = append(byAlg[alg], p)
	}
	for _, alg := range []verity.Algorithm{verity.SHA256, verity.SHA512} {
		if len(byAlg[alg]) == 0 {
			continue
		}
		err := verity.DigestFiles(context.Background(), byAlg[alg], func(fd verity.FileDigest) error {
			switch {
			case errors.Is(fd.Err, os.ErrNotExist):
				return describe(fd.Path, ErrMissingObject)
			case fd.Err != nil:
				return describe(fd.Path, fd.Err)
			case !bytes.Equal(fd.Digest, digestOfObjectPath(fd.Path)):
				return describe(fd.Path, fmt.Errorf("%w: content hashes to %x", ErrCorrupt, fd.Digest))
			}
			return nil
		}, verity.WithAlgorithm(alg))
		if err != nil {
			return err
		}
	}
	return nil
}

// measureObject has the kernel measure the object at path against want.
func measureObject(path string, want []byte) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ErrMissingObject
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return measureFile(f, want)
}

// measureFile has the kernel measure f against want.
func measureFile(f *os.File, want []byte) error {
	alg, got, err := verity.MeasureFile(f)
	if err != nil {
		return err
	}
	if walg, _ := composefs.DigestAlgorithm(want); alg != walg {
		return fmt.Errorf("%w: fs-verity uses %s, not %s", ErrCorrupt, alg, walg)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: content hashes to %x", ErrCorrupt, got)
	}
	return nil
}

// digestOfObjectPath recovers the digest from objects/XX/YYYY....
func digestOfObjectPath(p string) []byte {
	d, _ := hex.DecodeString(filepath.Base(filepath.Dir(p)) + filepath.Base(p))
	return d
}
