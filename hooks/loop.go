//go:build linux

package hooks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// loopFile is the file behind a loop device.
type loopFile struct {
	device   string // the device node, /dev/loopN
	path     string // the backing file, as the kernel names it now
	dev, ino uint64 // the backing file's device and inode, from the loop driver
}

// loopBacking returns the file that the loop device under EROFS mount m
// reads: its name from sysfs (/sys/dev/block/MAJ:MIN/loop/backing_file),
// its identity, offset and size limit from the device (LOOP_GET_STATUS64).
// A loop device that shows only part of its file is refused: the image
// measured is the whole file.
func (c *checker) loopBacking(m *mountinfo.Info) (loopFile, error) {
	sys := filepath.Join(c.sysfs, "dev", "block", fmt.Sprintf("%d:%d", m.Major, m.Minor), "loop", "backing_file")
	data, err := os.ReadFile(sys)
	if errors.Is(err, fs.ErrNotExist) {
		return loopFile{}, fmt.Errorf("%w: EROFS at %s is on block device %s (%d:%d), which is not a loop device: the hook measures image files only", ErrNotComposefs, m.Mountpoint, m.Source, m.Major, m.Minor)
	}
	if err != nil {
		return loopFile{}, fmt.Errorf("loop device %s: %w", m.Source, err)
	}
	lf := loopFile{device: m.Source, path: strings.TrimSuffix(string(data), "\n")}
	if strings.HasSuffix(lf.path, " (deleted)") {
		return loopFile{}, fmt.Errorf("%w: the backing file of loop device %s was deleted: %s", ErrNotComposefs, lf.device, lf.path)
	}
	if !filepath.IsAbs(lf.path) {
		return loopFile{}, fmt.Errorf("%w: loop device %s: backing file %q is not an absolute path", ErrNotComposefs, lf.device, lf.path)
	}
	info, err := c.loopStatus(m.Source, m.Major, m.Minor)
	if err != nil {
		return loopFile{}, fmt.Errorf("%w: loop device %s: %w", ErrNotComposefs, m.Source, err)
	}
	if info.Offset != 0 || info.Sizelimit != 0 {
		return loopFile{}, fmt.Errorf("%w: loop device %s reads %s from offset %d with size limit %d, not the whole file", ErrNotComposefs, lf.device, lf.path, info.Offset, info.Sizelimit)
	}
	lf.dev, lf.ino = info.Device, info.Inode
	return lf, nil
}

// loopStatus asks the loop device node which file it reads, after making
// sure that the node is the device major:minor that the mount is on.
func loopStatus(node string, major, minor int) (*unix.LoopInfo64, error) {
	f, err := os.Open(node)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", node, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(st.Rdev) != uint32(major) || unix.Minor(st.Rdev) != uint32(minor) {
		return nil, fmt.Errorf("%s is not block device %d:%d", node, major, minor)
	}
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("LOOP_GET_STATUS64 %s: %w", node, err)
	}
	return info, nil
}
