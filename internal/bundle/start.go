package bundle

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
	"github.com/cfs-runtime/cfs-runtime/internal/statedir"
)

// OpenForStart opens the bundle of container id, which create or run is
// about to start: it locks the bundle directory, loads config.json and
// refuses a bundle whose root.path is the composefs mount of another
// container (its state directory under stateDir). The returned function releases the
// lock; the runtime front (js nil: see Load) and cfs-runtime-mount both
// start here.
//
// create rewrites config.json in place: one bundle directory serves one
// container at a time (as podman, containerd and CRI-O use bundles). The
// lock makes concurrent creates from one bundle see each other's patch, so
// that the later ones are refused instead of silently sharing a root
// filesystem.
func OpenForStart(dir, configPath, stateDir, id string, js JSON) (*Bundle, func(), error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, nil, err
	}
	b, err := Load(dir, configPath, js)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	if other, ok := statedir.ContainerOf(stateDir, b.RootPath()); ok && oci.ValidID(other) && other != id {
		unlock()
		return nil, nil, fmt.Errorf("bundle %s is in use: its root.path is the composefs mount of container %q (one bundle directory serves one container at a time)", b.Dir, other)
	}
	return b, unlock, nil
}

// lockDir takes an exclusive flock on a directory. The fd is close-on-exec,
// so the lock ends at the latest when the runtime is exec'd.
func lockDir(dir string) (func(), error) {
	fd, err := rawfile.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBundle, fserr.New("", dir, err))
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("locking bundle %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}
