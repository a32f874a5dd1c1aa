//go:build linux

package mount

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// UnmountOption configures Unmount and Cleanup.
type UnmountOption func(*unmountConfig)

type unmountConfig struct {
	log *slog.Logger
}

// WithLogger sends Unmount's and Cleanup's diagnostics (a lazy detach, a
// skipped directory) to l.
func WithLogger(l *slog.Logger) UnmountOption {
	return func(c *unmountConfig) {
		if l != nil {
			c.log = l
		}
	}
}

func newUnmountConfig(opts []UnmountOption) unmountConfig {
	c := unmountConfig{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// How long Unmount retries a busy mount before detaching it lazily, and
// waits for a state directory locked by a Mount or Cleanup in progress.
var (
	busyRetries = 20
	busyDelay   = 10 * time.Millisecond
)

// Unmount undoes Mount in stateDir: it unmounts merged/ (which releases the
// EROFS and its loop device), lower/ if a crash left it mounted, and the
// state directory's own bind mount, then removes the state directory. A
// state directory that does not exist is not an error. A mount that stays
// busy is detached lazily (MNT_DETACH) as a last resort, which is logged
// as a warning: it then lives on until its last user goes away.
func Unmount(stateDir string, opts ...UnmountOption) error {
	c := newUnmountConfig(opts)
	dir := filepath.Clean(stateDir)
	if !filepath.IsAbs(dir) || dir == "/" {
		return fmt.Errorf("unmount composefs: %w: state directory %q", ErrInvalidOptions, stateDir)
	}
	lock, err := waitLock(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unmount composefs: %w", err)
	}
	defer lock.Close()
	if err := unmountLocked(dir, nil, c.log); err != nil {
		return fmt.Errorf("unmount composefs: %w", err)
	}
	return nil
}

func waitLock(dir string) (*os.File, error) {
	for i := 0; ; i++ {
		f, err := lockDir(dir)
		if err == nil || !errors.Is(err, ErrStateDirInUse) || i >= busyRetries*5 {
			return f, err
		}
		time.Sleep(busyDelay)
	}
}

// unmountLocked unmounts the mount points in extra (deepest first), the
// ones Mount makes, and removes dir.
func unmountLocked(dir string, extra []string, log *slog.Logger) error {
	for _, p := range extra {
		if err := unmountAll(p, log); err != nil {
			return err
		}
	}
	for _, n := range []string{mergedName, lowerName} {
		if err := unmountAll(filepath.Join(dir, n), log); err != nil {
			return err
		}
	}
	// The state directory is bind-mounted onto itself once; unmounting it
	// more often would take away whatever it lives on. Our own lock
	// descriptor keeps that bind mount busy, and nothing is mounted in it
	// any more, so it is detached rather than unmounted.
	if err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return removeTree(dir)
}

// unmountAll unmounts everything mounted on p (mounts can be stacked).
func unmountAll(p string, log *slog.Logger) error {
	for range 16 {
		switch err := unmountOnce(p, log); {
		case errors.Is(err, errNotMounted):
			return nil
		case err != nil:
			return err
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", p)
}

var errNotMounted = errors.New("not a mount point")

// unmountOnce unmounts the top mount on p. It returns errNotMounted when
// p is not a mount point or does not exist, and retries a busy mount
// before detaching it lazily.
func unmountOnce(p string, log *slog.Logger) error {
	for i := 0; ; i++ {
		err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return errNotMounted
		case errors.Is(err, unix.EBUSY) && i < busyRetries:
			time.Sleep(busyDelay)
			continue
		case errors.Is(err, unix.EBUSY):
			if derr := unix.Unmount(p, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH); derr != nil {
				return fmt.Errorf("unmount %s: %w; lazy detach: %w", p, err, derr)
			}
			log.Warn("mount still busy, detached lazily (MNT_DETACH): it stays alive until its last user goes away",
				"path", p, "tries", busyRetries+1)
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
}

// removeTree removes dir and everything below it, refusing to descend into
// anything mounted there (statx mount ID), so that a mount left behind can
// never make it delete the image, the object store or the host's files.
func removeTree(dir string) error {
	rootID, err := mountID(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeBelow(dir, rootID)
}

func removeBelow(p string, rootID uint64) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	if fi.IsDir() {
		id, err := mountID(p)
		if err != nil {
			return err
		}
		if id != rootID {
			return fmt.Errorf("remove state: %s is still a mount point", p)
		}
		entries, err := os.ReadDir(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove state: %w", err)
		}
		for _, e := range entries {
			if err := removeBelow(filepath.Join(p, e.Name()), rootID); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

func mountID(p string) (uint64, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, &fs.PathError{Op: "statx", Path: p, Err: err}
	}
	return stx.Mnt_id, nil
}

// Cleanup removes what is left of containers in stateRoot (one state
// directory per container id) for which keep returns false: mounts found
// under it in /proc/self/mountinfo, deepest first, then the directory.
// State directories that a Mount or Unmount is working on right now are
// skipped. It returns the ids it removed, sorted.
//
// keep must answer true for ids whose create is still in progress (the
// runtime does not know them yet), or Cleanup tears down their mount.
func Cleanup(stateRoot string, keep func(id string) bool, opts ...UnmountOption) ([]string, error) {
	c := newUnmountConfig(opts)
	if keep == nil {
		return nil, fmt.Errorf("cleanup: %w: no keep function", ErrInvalidOptions)
	}
	root, err := filepath.EvalSymlinks(stateRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	ids := map[string][]string{} // id -> mount points under its directory
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids[e.Name()] = nil
		}
	}
	mps, err := mountPoints()
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	for _, mp := range mps {
		rel, ok := strings.CutPrefix(mp, root+"/")
		if !ok || rel == "" {
			continue
		}
		id, _, _ := strings.Cut(rel, "/")
		ids[id] = append(ids[id], mp)
	}
	var removed []string
	var errs []error
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range ids {
			if !yield(id) {
				return
			}
		}
	}) {
		if keep(id) {
			continue
		}
		dir := filepath.Join(root, id)
		lock, err := lockDir(dir)
		if errors.Is(err, ErrStateDirInUse) {
			c.log.Info("cleanup: skipping a state directory in use", "dir", dir)
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Mounted on but gone: only possible for a deleted
			// directory, whose mounts were detached by rmdir.
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Deepest first; the state directory's own bind mount last, and
		// only once (unmountLocked).
		var extra []string
		for _, mp := range ids[id] {
			if mp != dir {
				extra = append(extra, mp)
			}
		}
		slices.SortFunc(extra, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		err = unmountLocked(dir, extra, c.log)
		lock.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", id, err))
			continue
		}
		removed = append(removed, id)
	}
	return removed, errors.Join(errs...)
}

// mountinfoPath is read by mountPoints; a variable for tests.
var mountinfoPath = "/proc/self/mountinfo"

// mountPoints lists the mount points of this process's mount namespace.
func mountPoints() ([]string, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		mps = append(mps, unescapeOctal(fields[4]))
	}
	return mps, sc.Err()
}

// unescapeOctal undoes mountinfo's \NNN escapes (space, tab, newline, \).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
