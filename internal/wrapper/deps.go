package wrapper

import (
	"os"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
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
	HasImage(d composefs.ImageDigest) bool
	// ProbeVerity says what the store's filesystem and the kernel lack
	// for fs-verity (nil: they have it).
	ProbeVerity() error
	// LockImport serialises the import of one digest.
	LockImport(d composefs.ImageDigest) (unlock func(), err error)
	// ImportTreeExpecting imports tree only if it has the digest want
	// (store.ErrUnexpectedDigest otherwise, with the tree's digest).
	ImportTreeExpecting(tree string, want composefs.ImageDigest) (composefs.ImageDigest, error)
	OpenImage(d composefs.ImageDigest) (*os.File, error)
	CheckImageFile(f *os.File, d composefs.ImageDigest, mode store.CheckMode) ([]byte, error)
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
			s, err := store.Open(env.cfg.StoreDir, store.WithLazyFanout())
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
	if env.readManifest == nil {
		env.readManifest = runEngineHelper
	}
	if env.containerdImage == nil {
		env.containerdImage = readContainerdImage
	}
	if env.patch == nil {
		env.patch = func(b *bundle.Bundle, root, id string) error { return patchBundle(env.cfg, b, root, id) }
	}
	return env
}

// storeOnDisk is the store, with the kernel probe create needs.
type storeOnDisk struct{ *store.Store }

func (s storeOnDisk) ProbeVerity() error { return verity.Probe(s.ObjectsDir()) }

func (s storeOnDisk) ImportTreeExpecting(tree string, want composefs.ImageDigest) (composefs.ImageDigest, error) {
	return s.Store.ImportTreeExpecting(tree, want)
}
