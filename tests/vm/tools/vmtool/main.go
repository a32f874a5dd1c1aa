// Command vmtool is a tiny static helper for the real-kernel tests in
// tests/vm. It talks to the kernel's fs-verity interface directly, so the
// kernel-feature scenarios do not depend on the code under test.
//
//	vmtool enable FILE...   FS_IOC_ENABLE_VERITY (SHA-256, 4096-byte blocks, no salt)
//	vmtool measure FILE...  FS_IOC_MEASURE_VERITY (SHA-256 or SHA-512), printed like `fsverity digest`
//	vmtool fsmount [-r] FSTYPE SOURCE TARGET KEY[=VALUE]...
//	                        mount through the new mount API (fsopen, fsconfig,
//	                        fsmount, move_mount): each KEY=VALUE is one
//	                        FSCONFIG_SET_STRING, so keys may repeat
//	                        (lowerdir+=A datadir+=B); a bare KEY is a flag;
//	                        -r mounts read-only
//	vmtool corrupt FILE OFFSET DEVICE
//	                        change the file's byte at OFFSET on the block
//	                        device underneath (FIEMAP, O_DIRECT), behind the
//	                        file system's back, then drop the page cache: the
//	                        next read of that block sees the disk
//	vmtool mount [-r] FSTYPE SOURCE TARGET [DATA]
//	                        plain mount(2), with no loop device set up for a
//	                        regular file (busybox mount always adds one)
//
// Errors are printed with the errno name (EEXIST, ENOTTY, ...) so shell
// assertions can match them exactly.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	hashSHA256 = 1
	hashSHA512 = 2
	blockSize  = 4096
	maxDigest  = 64
)

func enable(path string) error {
	// The kernel refuses to enable verity on a file opened for writing.
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: hashSHA256,
		Block_size:     blockSize,
	}
	return ioctl(f, unix.FS_IOC_ENABLE_VERITY, unsafe.Pointer(&arg))
}

func measure(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// struct fsverity_digest { __u16 digest_algorithm; __u16 digest_size; __u8 digest[]; }
	var buf [4 + maxDigest]byte
	*(*uint16)(unsafe.Pointer(&buf[2])) = maxDigest
	if err := ioctl(f, unix.FS_IOC_MEASURE_VERITY, unsafe.Pointer(&buf[0])); err != nil {
		return "", err
	}
	alg := *(*uint16)(unsafe.Pointer(&buf[0]))
	size := *(*uint16)(unsafe.Pointer(&buf[2]))
	name := ""
	switch {
	case alg == hashSHA256 && size == 32:
		name = "sha256"
	case alg == hashSHA512 && size == 64:
		name = "sha512"
	default:
		return "", fmt.Errorf("unexpected digest algorithm %d size %d", alg, size)
	}
	return name + ":" + hex.EncodeToString(buf[4:4+size]), nil
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// fsmount mounts with the new mount API. The file system context's log
// (the kernel's reason for refusing an option) is added to errors.
func fsmount(readonly bool, fstype, source, target string, opts []string) (err error) {
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen %s: %s", fstype, errName(err))
	}
	defer unix.Close(fd)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, fsLog(fd))
		}
	}()
	if source != "" && source != "none" {
		if err := unix.FsconfigSetString(fd, "source", source); err != nil {
			return fmt.Errorf("fsconfig source=%s: %s", source, errName(err))
		}
	}
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		if hasValue {
			err = unix.FsconfigSetString(fd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fd, k)
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s: %s", o, errName(err))
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %s", errName(err))
	}
	var attr int
	if readonly {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %s", errName(err))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %s", target, errName(err))
	}
	return nil
}

// physical returns the byte offset on the block device of the file's byte at
// logical offset off (FS_IOC_FIEMAP).
func physical(f *os.File, off uint64) (uint64, error) {
	const (
		fsIocFiemap    = 0xC020660B // _IOWR('f', 11, struct fiemap)
		fiemapFlagSync = 0x1
		// extents with no fixed place on the device
		unmovable  = 0x2 | 0x4 | 0x8 | 0x100 | 0x200 // UNKNOWN DELALLOC ENCODED NOT_ALIGNED DATA_INLINE
		maxExtents = 32
	)
	// struct fiemap (32 bytes) + maxExtents struct fiemap_extent (56 bytes)
	buf := make([]byte, 32+maxExtents*56)
	binary.LittleEndian.PutUint64(buf[8:], ^uint64(0)) // fm_length
	binary.LittleEndian.PutUint32(buf[16:], fiemapFlagSync)
	binary.LittleEndian.PutUint32(buf[24:], maxExtents)
	if err := ioctl(f, fsIocFiemap, unsafe.Pointer(&buf[0])); err != nil {
		return 0, fmt.Errorf("FS_IOC_FIEMAP: %s", errName(err))
	}
	n := binary.LittleEndian.Uint32(buf[20:])
	for i := range n {
		e := buf[32+i*56:]
		logical := binary.LittleEndian.Uint64(e[0:])
		phys := binary.LittleEndian.Uint64(e[8:])
		length := binary.LittleEndian.Uint64(e[16:])
		flags := binary.LittleEndian.Uint32(e[40:])
		if off < logical || off >= logical+length {
			continue
		}
		if flags&unmovable != 0 {
			return 0, fmt.Errorf("extent at %d has flags %#x: no fixed place on the device", logical, flags)
		}
		return phys + (off - logical), nil
	}
	return 0, fmt.Errorf("no extent maps offset %d", off)
}

// corrupt flips the bits of the file's byte at off on the device under it.
func corrupt(path string, off uint64, dev string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	phys, err := physical(f, off)
	f.Close()
	if err != nil {
		return err
	}
	d, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	// O_DIRECT wants aligned buffers and offsets: one page-aligned block
	blk, err := unix.Mmap(-1, 0, blockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(blk)
	base := int64(phys) &^ (blockSize - 1)
	if _, err := d.ReadAt(blk, base); err != nil {
		return fmt.Errorf("read %s at %d: %w", dev, base, err)
	}
	blk[int64(phys)-base] ^= 0xff
	if _, err := d.WriteAt(blk, base); err != nil {
		return fmt.Errorf("write %s at %d: %w", dev, base, err)
	}
	if err := d.Sync(); err != nil {
		return err
	}
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// fsLog drains the messages the kernel queued on a file system context.
func fsLog(fd int) string {
	var b strings.Builder
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			return b.String()
		}
		b.WriteString("; kernel: ")
		b.Write(buf[:n])
	}
}

// errName renders an error as "ENAME (message)" when it carries an errno.
func errName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno) + " (" + errno.Error() + ")"
	}
	return err.Error()
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: vmtool enable|measure FILE... | vmtool fsmount [-r] FSTYPE SOURCE TARGET OPTION...")
		os.Exit(2)
	}
	if os.Args[1] == "corrupt" {
		if len(os.Args) != 5 {
			fmt.Fprintln(os.Stderr, "usage: vmtool corrupt FILE OFFSET DEVICE")
			os.Exit(2)
		}
		off, err := strconv.ParseUint(os.Args[3], 10, 64)
		if err == nil {
			err = corrupt(os.Args[2], off, os.Args[4])
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtool: corrupt %s: %v\n", os.Args[2], err)
			os.Exit(1)
		}
		return
	}
	if cmd := os.Args[1]; cmd == "fsmount" || cmd == "mount" {
		args := os.Args[2:]
		readonly := len(args) > 0 && args[0] == "-r"
		if readonly {
			args = args[1:]
		}
		if len(args) < 3 || (cmd == "mount" && len(args) > 4) {
			fmt.Fprintf(os.Stderr, "usage: vmtool %s [-r] FSTYPE SOURCE TARGET OPTION...\n", cmd)
			os.Exit(2)
		}
		var err error
		if cmd == "fsmount" {
			err = fsmount(readonly, args[0], args[1], args[2], args[3:])
		} else {
			var flags uintptr
			if readonly {
				flags = unix.MS_RDONLY
			}
			err = unix.Mount(args[1], args[2], args[0], flags, strings.Join(args[3:], ""))
			if err != nil {
				err = errors.New(errName(err))
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtool: %s %s on %s: %v\n", cmd, args[0], args[2], err)
			os.Exit(1)
		}
		return
	}
	failed := false
	for _, path := range os.Args[2:] {
		switch os.Args[1] {
		case "enable":
			if err := enable(path); err != nil {
				fmt.Fprintf(os.Stderr, "vmtool: enable %s: %s\n", path, errName(err))
				failed = true
			}
		case "measure":
			d, err := measure(path)
			if err != nil {
				fmt.Fprintf(os.Stderr, "vmtool: measure %s: %s\n", path, errName(err))
				failed = true
				continue
			}
			fmt.Printf("%s %s\n", d, path)
		default:
			fmt.Fprintf(os.Stderr, "vmtool: unknown command %q\n", os.Args[1])
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}
