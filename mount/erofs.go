//go:build linux

package mount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Per-process answers of "does the kernel do X", found by trying X.
const (
	unknown int32 = iota
	supported
	unsupported
)

// fileBacked caches, per filesystem (st_dev) of the image, whether EROFS
// mounts straight from a file there: it needs Linux ≥ 6.12 with
// CONFIG_EROFS_FS_BACKED_BY_FILE, and a filesystem whose files have
// read_folio (ext4, xfs, btrfs: yes; tmpfs: no).
var fileBacked sync.Map // uint64 -> int32

func fileBackedState(dev uint64) int32 {
	if v, ok := fileBacked.Load(dev); ok {
		return v.(int32)
	}
	return unknown
}

// errNoFileBacked explains the kernel's ENOTBLK for a file source.
var errNoFileBacked = errors.New("file-backed EROFS not supported (needs Linux ≥ 6.12, and the image on a filesystem such as ext4, xfs or btrfs, not tmpfs)")

func fileDev(f *os.File) uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0
	}
	return st.Dev
}

// fdPath names the open file f for the kernel: EROFS opens its source by
// path, and /proc/self/fd/N leads to f's own inode, whatever name it has
// by then (or none).
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// fsmountEROFSFile makes a detached read-only EROFS mount of source, a
// regular file or a block device. Tests replace it to force the loop
// device path.
var fsmountEROFSFile = fsmountEROFS

func fsmountEROFS(source string) (int, error) {
	c, err := openFS("erofs")
	if err != nil {
		return -1, err
	}
	defer c.close()
	if err := c.setString("source", source); err != nil {
		return -1, err
	}
	if err := c.setFlag("ro"); err != nil {
		return -1, err
	}
	if err := c.create(); err != nil {
		return -1, err
	}
	return c.fsmount(unix.MOUNT_ATTR_RDONLY)
}

// erofsMount is how the image got mounted.
type erofsMount struct {
	fileBacked bool
	loopDevice string // "/dev/loopN" when not file-backed
}

// mountEROFS mounts the image open as f (named image in messages)
// read-only on target: from that file itself where the kernel can,
// otherwise from a read-only, autoclear loop device bound to f, which the
// kernel detaches by itself once the EROFS superblock is gone (so
// unmounting is all the cleanup it needs, also after a crash). The image
// is never opened again by name.
func mountEROFS(f *os.File, image, target string, log *slog.Logger) (erofsMount, error) {
	fsDev := fileDev(f)
	if fileBackedState(fsDev) != unsupported {
		mfd, err := fsmountEROFSFile(fdPath(f))
		if err == nil {
			fileBacked.Store(fsDev, supported)
			if err := attach(mfd, target); err != nil {
				return erofsMount{}, fmt.Errorf("mount EROFS from %s: %w", image, err)
			}
			return erofsMount{fileBacked: true}, nil
		}
		// A kernel without file-backed EROFS looks the source up as a
		// block device and says ENOTBLK, and so does one with it for a
		// file it cannot read pages of; anything else is a real error (a
		// bad image fails the same way on a loop device).
		if !errors.Is(err, unix.ENOTBLK) {
			return erofsMount{}, fmt.Errorf("mount EROFS from %s: %w%s", image, err, explainEROFS(f, err))
		}
		fileBacked.Store(fsDev, unsupported)
		log.Debug("file-backed EROFS not supported, falling back to loop", "image", image, "err", err)
	}
	dev, lf, err := attachLoop(f, image)
	if err != nil {
		return erofsMount{}, fmt.Errorf("mount EROFS from %s: %w", image, err)
	}
	// Our descriptor is the device's only opener until the mount takes
	// it: closing it detaches the device (autoclear) if mounting fails.
	defer lf.Close()
	mfd, err := fsmountEROFSFile(dev)
	if err == nil {
		err = attach(mfd, target)
	}
	if err != nil {
		return erofsMount{}, fmt.Errorf("mount EROFS from %s on %s: %w%s", image, dev, err, explainEROFS(f, err))
	}
	return erofsMount{loopDevice: dev}, nil
}

// Where the loop driver lives; variables for tests.
var (
	loopControl = "/dev/loop-control"
	loopDevFmt  = "/dev/loop%d"
)

// attachLoop binds the file open as backing (named image) to a free loop
// device with LOOP_CONFIGURE (one ioctl, Linux ≥ 5.8): read-only and
// autoclear. It returns the device path and an open descriptor of it; the
// device detaches itself when its last opener (that descriptor or a mount)
// goes away.
func attachLoop(backing *os.File, image string) (string, *os.File, error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop device: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
	var last error
	// Another process can take the free device between GET_FREE and
	// CONFIGURE (EBUSY): ask again.
	for range 32 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("loop device: LOOP_CTL_GET_FREE: %w", err)
		}
		path := fmt.Sprintf(loopDevFmt, n)
		dev, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", nil, fmt.Errorf("loop device: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return path, dev, nil
		}
		dev.Close()
		last = err
		if !errors.Is(err, unix.EBUSY) {
			break
		}
	}
	return "", nil, fmt.Errorf("loop device: LOOP_CONFIGURE %s: %w", image, last)
}

// erofsMagic is the EROFS superblock magic, little-endian at offset 1024.
const erofsMagic = 0xE0F5E1E2

// explainEROFS adds a reason to an EINVAL the kernel gave without one (EROFS
// reports a bad superblock only in dmesg), looking at the image open as f.
func explainEROFS(f *os.File, err error) string {
	var ke *KernelError
	if !errors.As(err, &ke) || ke.Errno != unix.EINVAL || len(ke.Log) > 0 {
		return ""
	}
	var b [4]byte
	if _, rerr := f.ReadAt(b[:], 1024); rerr != nil || binary.LittleEndian.Uint32(b[:]) != erofsMagic {
		return ": not an EROFS image (no EROFS superblock at offset 1024)"
	}
	return " (the kernel log, dmesg, says why)"
}

// privateCopy writes data into a new file in dir that has no name
// (O_TMPFILE; where the filesystem has none, a file unlinked right after
// it was created) and returns it open: the image to mount for ImageBytes.
// Only this process's descriptor and then the mount reach it, so nobody can
// change it in place, and it disappears with the mount.
func privateCopy(dir string, data []byte) (*os.File, error) {
	fd, err := openTmpfile(dir)
	name := filepath.Join(dir, "image")
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			if err = unix.Unlink(name); err != nil {
				unix.Close(fd)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("private copy of the image: %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("private copy of the image: %w", err)
	}
	return f, nil
}

// openTmpfile opens a nameless file in dir; a variable for tests (a
// filesystem without O_TMPFILE says EOPNOTSUPP, EISDIR or EINVAL).
var openTmpfile = func(dir string) (int, error) {
	return unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
}
