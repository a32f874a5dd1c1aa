package wrapper

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"golang.org/x/sys/unix"
)

// What the verify-then-mount decision (startVerified) uses of the world,
// as small interfaces, so that every enforcement level × kernel capability
// × store state is a table-driven unit test with fakes (verified_test.go).
// The real ones are set by withDefaults.

// imageStore is what startVerified needs of the store.
type imageStore interface {
	Dir() string
	ObjectsDir() string
	Hold() (release func(), err error)
	HasImage(digest string) bool
	// ProbeVerity says what the store's filesystem and the kernel lack
	// for fs-verity (nil: they have it).
	ProbeVerity() error
	// LockImport serialises the import of one digest.
	LockImport(digest string) (unlock func(), err error)
	// ImportTreeExpecting imports tree only if it has the digest want
	// (store.ErrUnexpectedDigest otherwise, with the tree's digest).
	ImportTreeExpecting(tree, want string) (string, error)
	OpenImage(digest string) (*os.File, error)
	CheckImageFile(f *os.File, digest string, mode store.CheckMode) ([]byte, error)
}

// mounted is a mounted composefs root.
type mounted interface {
	Root() string
	Unmount() error
}

// measureFunc has the kernel compute an open file's fs-verity digest.
type measureFunc func(*os.File) ([]byte, error)

// withDefaults fills in the real store, mount, measurement and bundle
// patch where env has none.
func withDefaults(env *runtimeEnv) *runtimeEnv {
	if env.openStore == nil {
		env.openStore = func() (imageStore, error) {
			s, err := store.Open(env.cfg.StoreDir)
			if err != nil {
				return nil, err
			}
			return storeOnDisk{s}, nil
		}
	}
	if env.mount == nil {
		env.mount = func(o mount.Options) (mounted, error) {
			m, err := mount.Mount(o)
			if err != nil {
				return nil, err
			}
			return m, nil
		}
	}
	if env.measure == nil {
		env.measure = func(f *os.File) ([]byte, error) {
			_, d, err := verity.MeasureFile(f)
			return d, err
		}
	}
	if env.patch == nil {
		env.patch = func(b *bundle.Bundle, root, id string) error { return patchBundle(env.cfg, b, root, id) }
	}
	return env
}

// storeOnDisk is the composefs store with what create adds to it.
type storeOnDisk struct{ *store.Store }

func (s storeOnDisk) ProbeVerity() error { return verity.Probe(s.ObjectsDir()) }

func (s storeOnDisk) ImportTreeExpecting(tree, want string) (string, error) {
	return s.Store.ImportTreeExpecting(tree, want)
}

// LockImport takes an exclusive lock for importing one digest into the
// store (locks/<digest>, a file that stays; flock is released on close or
// process exit, so a killed create never leaves it held).
func (s storeOnDisk) LockImport(digest string) (func(), error) {
	dir := filepath.Join(s.Dir(), "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("import lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, digest), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("import lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("import lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
