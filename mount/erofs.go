//go:build linux

package mount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
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

func fileDev(path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	return st.Dev
}

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

// mountEROFS mounts image read-only on target: from the file itself where
// the kernel can, otherwise from a read-only, autoclear loop device, which
// the kernel detaches by itself once the EROFS superblock is gone (so
// unmounting is all the cleanup it needs, also after a crash).
func mountEROFS(image, target string, log *slog.Logger) (erofsMount, error) {
	fsDev := fileDev(image)
	if fileBackedState(fsDev) != unsupported {
		mfd, err := fsmountEROFSFile(image)
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
			return erofsMount{}, fmt.Errorf("mount EROFS from %s: %w%s", image, err, explainEROFS(image, err))
		}
		fileBacked.Store(fsDev, unsupported)
		log.Debug("file-backed EROFS not supported, falling back to loop", "image", image, "err", err)
	}
	dev, lf, err := attachLoop(image)
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
		return erofsMount{}, fmt.Errorf("mount EROFS from %s on %s: %w%s", image, dev, err, explainEROFS(image, err))
	}
	return erofsMount{loopDevice: dev}, nil
}

// Where the loop driver lives; variables for tests.
var (
	loopControl = "/dev/loop-control"
	loopDevFmt  = "/dev/loop%d"
)

// attachLoop binds image to a free loop device with LOOP_CONFIGURE (one
// ioctl, Linux ≥ 5.8): read-only and autoclear. It returns the device path
// and an open descriptor of it; the device detaches itself when its last
// opener (that descriptor or a mount) goes away.
func attachLoop(image string) (string, *os.File, error) {
	backing, err := os.OpenFile(image, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop device: %w", err)
	}
	defer backing.Close()
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
// reports a bad superblock only in dmesg).
func explainEROFS(image string, err error) string {
	var ke *KernelError
	if !errors.As(err, &ke) || ke.Errno != unix.EINVAL || len(ke.Log) > 0 {
		return ""
	}
	f, oerr := os.Open(image)
	if oerr != nil {
		return ""
	}
	defer f.Close()
	var b [4]byte
	if _, rerr := f.ReadAt(b[:], 1024); rerr != nil || binary.LittleEndian.Uint32(b[:]) != erofsMagic {
		return ": not an EROFS image (no EROFS superblock at offset 1024)"
	}
	return " (the kernel log, dmesg, says why)"
}
