//go:build linux

package verity

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotSupported means fs-verity cannot be used on the file or in the
	// directory. Every *UnsupportedError matches it; its Reason says why.
	ErrNotSupported = errors.New("fs-verity not supported")
	// ErrKernelNoVerity: the running kernel was built without
	// CONFIG_FS_VERITY.
	ErrKernelNoVerity = errors.New("kernel built without fs-verity")
	// ErrFSNoVerity: the filesystem type has no fs-verity support at all.
	ErrFSNoVerity = errors.New("filesystem does not support fs-verity")
	// ErrFeatureDisabled: the filesystem supports fs-verity, but this
	// filesystem was made without the verity feature (ext4, f2fs).
	ErrFeatureDisabled = errors.New("filesystem lacks the verity feature")

	// ErrAlreadyEnabled: Enable on a file that already has fs-verity (EEXIST).
	ErrAlreadyEnabled = errors.New("fs-verity already enabled")
	// ErrNotEnabled: Measure on a file without fs-verity (ENODATA).
	ErrNotEnabled = errors.New("fs-verity not enabled")
	// ErrOpenForWriting: Enable while some process (this one included) has
	// the file open for writing or mapped writable (ETXTBSY).
	ErrOpenForWriting = errors.New("file is open for writing")
)

// UnsupportedError says why fs-verity is unusable on a file or directory.
// It matches ErrNotSupported, its Reason and its Errno with errors.Is.
type UnsupportedError struct {
	FSType string     // filesystem type ("ext4", "xfs", "tmpfs", ...)
	Device string     // mount source, when the fix is on the device
	Reason error      // ErrKernelNoVerity, ErrFSNoVerity, ErrFeatureDisabled, or nil when unknown
	Errno  unix.Errno // the ioctl's error, 0 when none was seen
}

func (e *UnsupportedError) Error() string {
	switch e.Reason {
	case ErrKernelNoVerity:
		return "kernel built without fs-verity"
	case ErrFSNoVerity:
		return e.FSType + " does not support fs-verity"
	case ErrFeatureDisabled:
		dev := e.Device
		if dev == "" {
			dev = "its device"
		}
		fix := "tune2fs -O verity " + dev
		if e.FSType == "f2fs" {
			fix = "fsck.f2fs -O verity " + dev
		}
		return fmt.Sprintf("%s on %s lacks the verity feature (%s)", e.FSType, dev, fix)
	}
	if e.Errno != 0 {
		return fmt.Sprintf("fs-verity not supported on %s: %v", e.FSType, e.Errno)
	}
	return "fs-verity not supported on " + e.FSType
}

func (e *UnsupportedError) Unwrap() []error {
	errs := []error{ErrNotSupported}
	if e.Reason != nil {
		errs = append(errs, e.Reason)
	}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	return errs
}

// fsName names a filesystem magic number (statfs f_type) as mount shows
// it. (A switch, not a map: a map literal is built at package
// initialisation, which every runtime call through cfs-runtime pays.)
func fsName(magic int64) (string, bool) {
	switch magic {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4", true // also ext2/ext3 mounted by the ext4 driver
	case unix.F2FS_SUPER_MAGIC:
		return "f2fs", true
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", true
	case unix.XFS_SUPER_MAGIC:
		return "xfs", true
	case unix.TMPFS_MAGIC:
		return "tmpfs", true
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay", true
	case unix.EROFS_SUPER_MAGIC_V1:
		return "erofs", true
	case unix.SQUASHFS_MAGIC:
		return "squashfs", true
	case unix.NFS_SUPER_MAGIC:
		return "nfs", true
	case unix.FUSE_SUPER_MAGIC:
		return "fuse", true
	case unix.MSDOS_SUPER_MAGIC:
		return "vfat", true
	case unix.EXFAT_SUPER_MAGIC:
		return "exfat", true
	case unix.RAMFS_MAGIC:
		return "ramfs", true
	case unix.PROC_SUPER_MAGIC:
		return "proc", true
	case unix.SYSFS_MAGIC:
		return "sysfs", true
	case unix.CIFS_SUPER_MAGIC:
		return "cifs", true
	case unix.SMB2_SUPER_MAGIC:
		return "smb3", true
	case unix.V9FS_MAGIC:
		return "9p", true
	case unix.CEPH_SUPER_MAGIC:
		return "ceph", true
	case unix.ZONEFS_MAGIC:
		return "zonefs", true
	case unix.BCACHEFS_SUPER_MAGIC:
		return "bcachefs", true
	case 0x2fc12fc1:
		return "zfs", true
	}
	return "", false
}

// verityFS: only ext4, f2fs and btrfs implement fs-verity.
func verityFS(name string) bool { return name == "ext4" || name == "f2fs" || name == "btrfs" }

// Where the kernel shows its configuration. Variables so that tests can
// stand in for a kernel with fs-verity.
var (
	procVerity = "/proc/sys/fs/verity"
	sysFS      = "/sys/fs"
	mountinfo  = "/proc/self/mountinfo"
)

// kernelVerity reports whether the kernel was built with CONFIG_FS_VERITY,
// and whether that could be told at all. Since 6.6 /proc/sys/fs/verity
// exists whenever it is (before, only with
// CONFIG_FS_VERITY_BUILTIN_SIGNATURES); ext4, f2fs and btrfs list a "verity"
// feature in /sys/fs/<fs>/features exactly when it is. Without
// /proc/sys/fs or /sys/fs/<fs>/features to look at (a container), it is
// unknown.
func kernelVerity(fstype string) (has, known bool) {
	features := filepath.Join(sysFS, fstype, "features")
	if exists(procVerity) || exists(filepath.Join(features, "verity")) {
		return true, true
	}
	return false, exists(filepath.Dir(procVerity)) || exists(features)
}

// KernelSupport reports whether the running kernel was built with
// CONFIG_FS_VERITY, and whether that could be told at all (see
// kernelVerity), whatever filesystem is at hand.
func KernelSupport() (has, known bool) {
	for _, fs := range []string{"ext4", "btrfs", "f2fs"} {
		h, k := kernelVerity(fs)
		if h {
			return true, true
		}
		known = known || k
	}
	return false, known
}

// FilesystemType names the filesystem that holds path ("ext4", "tmpfs",
// "filesystem 0x..." when unknown).
func FilesystemType(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", path, err)
	}
	return fsTypeName(int64(st.Type)), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fsTypeName(magic int64) string {
	if n, ok := fsName(magic); ok {
		return n
	}
	return fmt.Sprintf("filesystem 0x%x", uint64(magic))
}

// unsupported explains why fs-verity is unusable on the filesystem of fd,
// given the errno the ioctl returned (0 when none was tried). It returns nil
// when nothing rules fs-verity out.
func unsupported(fd int, errno unix.Errno) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	e := &UnsupportedError{FSType: fsTypeName(int64(st.Type)), Errno: errno}
	has, known := kernelVerity(e.FSType)
	switch {
	case !verityFS(e.FSType):
		e.Reason = ErrFSNoVerity
	case known && !has:
		e.Reason = ErrKernelNoVerity
	case errno == 0:
		return nil
	case known && errno == unix.EOPNOTSUPP && e.FSType != "btrfs":
		// With kernel support, ext4 and f2fs say EOPNOTSUPP only when the
		// superblock lacks the verity feature.
		e.Reason = ErrFeatureDisabled
		e.Device = mountSource(fd)
	}
	return e
}

// mountSource returns the source ("/dev/vda") of the mount holding fd, from
// mountinfo: the last mount with the file's device number.
func mountSource(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ""
	}
	want := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	f, err := os.Open(mountinfo)
	if err != nil {
		return ""
	}
	defer f.Close()
	src := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != want {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				src = unescapeMount(fields[i+2])
				break
			}
		}
	}
	return src
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Enable turns on fs-verity for the file at path (FS_IOC_ENABLE_VERITY), with
// the algorithm, block size and salt of opts. The kernel then computes the
// same digest as DigestFile with the same options.
func Enable(path string, opts ...Option) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("enable fs-verity: %w", err)
	}
	defer f.Close()
	if err := EnableFile(f, opts...); err != nil {
		return fmt.Errorf("enable fs-verity on %s: %w", path, err)
	}
	return nil
}

// EnableFile is Enable on an open file. f must be open read-only: the kernel
// refuses (ErrOpenForWriting) while any writable descriptor exists.
func EnableFile(f *os.File, opts ...Option) error {
	p, err := NewParams(opts...)
	if err != nil {
		return err
	}
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: uint32(p.Algorithm),
		Block_size:     uint32(p.BlockSize),
		Salt_size:      uint32(len(p.Salt)),
	}
	if len(p.Salt) > 0 {
		arg.Salt_ptr = uint64(uintptr(unsafe.Pointer(&p.Salt[0])))
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var (
		errno unix.Errno
		why   error // why fs-verity is unsupported, from the same fd
	)
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.FS_IOC_ENABLE_VERITY, uintptr(unsafe.Pointer(&arg)))
		if errno == unix.ENOTTY || errno == unix.EOPNOTSUPP {
			why = unsupported(int(fd), errno)
		}
	}); err != nil {
		return err
	}
	runtime.KeepAlive(p.Salt)
	if why != nil {
		return why
	}
	switch errno {
	case 0:
		return nil
	case unix.EEXIST:
		return fmt.Errorf("%w: %w", ErrAlreadyEnabled, errno)
	case unix.ETXTBSY:
		return fmt.Errorf("%w: %w", ErrOpenForWriting, errno)
	case unix.ENOTTY, unix.EOPNOTSUPP:
		return fmt.Errorf("%w: %w", ErrNotSupported, errno)
	}
	return errno
}

// Measure returns the fs-verity digest the kernel holds for the file at path
// (FS_IOC_MEASURE_VERITY), and its algorithm.
func Measure(path string) (Algorithm, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("measure fs-verity: %w", err)
	}
	defer f.Close()
	a, d, err := MeasureFile(f)
	if err != nil {
		return 0, nil, fmt.Errorf("measure fs-verity of %s: %w", path, err)
	}
	return a, d, nil
}

// MeasureFile is Measure on an open file.
func MeasureFile(f *os.File) (Algorithm, []byte, error) {
	// struct fsverity_digest { __u16 digest_algorithm; __u16 digest_size; __u8 digest[]; }
	var buf struct {
		alg, size uint16
		digest    [64]byte
	}
	buf.size = uint16(len(buf.digest))
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var (
		errno unix.Errno
		why   error
	)
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.FS_IOC_MEASURE_VERITY, uintptr(unsafe.Pointer(&buf)))
		if errno == unix.ENOTTY || errno == unix.EOPNOTSUPP {
			why = unsupported(int(fd), errno)
		}
	}); err != nil {
		return 0, nil, err
	}
	if why != nil {
		return 0, nil, why
	}
	switch errno {
	case 0:
	case unix.ENODATA:
		return 0, nil, fmt.Errorf("%w: %w", ErrNotEnabled, errno)
	case unix.ENOTTY, unix.EOPNOTSUPP:
		return 0, nil, fmt.Errorf("%w: %w", ErrNotSupported, errno)
	default:
		return 0, nil, errno
	}
	a := Algorithm(buf.alg)
	if int(buf.size) > len(buf.digest) || (a.Size() != 0 && a.Size() != int(buf.size)) {
		return 0, nil, fmt.Errorf("kernel returned a %d-byte digest for algorithm %d", buf.size, buf.alg)
	}
	return a, append([]byte(nil), buf.digest[:buf.size]...), nil
}

// IsEnabled reports whether the file at path has fs-verity (STATX_ATTR_VERITY).
func IsEnabled(path string) (bool, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_SYNC_AS_STAT, 0, &st); err != nil {
		return false, fmt.Errorf("statx %s: %w", path, err)
	}
	return st.Attributes&unix.STATX_ATTR_VERITY != 0, nil
}

// Probe reports whether fs-verity can be enabled on files in dir. It returns
// nil when it can, and otherwise an error matching ErrNotSupported whose
// *UnsupportedError says why (kernel, filesystem type, missing feature).
// When nothing rules fs-verity out up front, Probe enables it on a
// temporary file in dir (removed again), so dir must be writable.
func Probe(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("probe fs-verity: %w", err)
	}
	defer d.Close()
	if err := unsupported(int(d.Fd()), 0); err != nil {
		return fmt.Errorf("fs-verity in %s: %w", dir, err)
	}
	if err := probeEnable(dir); err != nil {
		return fmt.Errorf("fs-verity in %s: %w", dir, err)
	}
	return nil
}

// probeEnable enables fs-verity on a one-byte temporary file in dir.
func probeEnable(dir string) error {
	f, err := os.CreateTemp(dir, ".cfs-verity-probe-*")
	if err != nil {
		return fmt.Errorf("cannot create a probe file: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, werr := f.Write([]byte{0})
	if err := f.Close(); werr != nil || err != nil {
		return fmt.Errorf("writing probe file: %w", errors.Join(werr, err))
	}
	r, err := os.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := EnableFile(r); err != nil {
		var ue *UnsupportedError
		if errors.As(err, &ue) {
			return ue
		}
		return err
	}
	return nil
}
