package composefs

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
func (s *Store) CheckImage(digest string, mode CheckMode) error {
	want, err := parseDigest(digest)
	if err != nil {
		return err
	}
	imgPath, err := s.ImagePath(digest)
	if err != nil {
		return err
	}
	if err := s.checkFile(imgPath, want, mode); err != nil {
		return fmt.Errorf("image %s: %w", digest, err)
	}
	img, err := ReadImageFile(imgPath)
	if err != nil {
		return err
	}
	// One check per distinct object; remember one path that uses it.
	users := map[string]string{}
	var paths []string
	err = img.Walk(func(e *Entry) error {
		if e.Inode.Digest == nil || e.HardlinkOf != "" {
			return nil
		}
		p := filepath.Join(s.dir, "objects", ObjectPath(e.Inode.Digest))
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
			if err := s.checkFile(p, digestOfObjectPath(p), mode); err != nil {
				return describe(p, err)
			}
		}
		return nil
	}
	return verity.DigestFiles(context.Background(), paths, func(fd verity.FileDigest) error {
		switch {
		case errors.Is(fd.Err, os.ErrNotExist):
			return describe(fd.Path, ErrMissingObject)
		case fd.Err != nil:
			return describe(fd.Path, fd.Err)
		case !bytes.Equal(fd.Digest, digestOfObjectPath(fd.Path)):
			return describe(fd.Path, fmt.Errorf("%w: content hashes to %x", ErrCorrupt, fd.Digest))
		}
		return nil
	})
}

// checkFile verifies one file against want.
func (s *Store) checkFile(path string, want []byte, mode CheckMode) error {
	var got []byte
	var err error
	if mode == CheckMeasure {
		var alg verity.Algorithm
		alg, got, err = verity.Measure(path)
		if err == nil && alg != verity.SHA256 {
			return fmt.Errorf("%w: fs-verity uses %s, not sha256", ErrCorrupt, alg)
		}
	} else {
		got, err = verity.DigestFile(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return ErrMissingObject
	}
	if err != nil {
		return err
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
