//go:build vmtest

// Real-kernel tests of the fs-verity ioctls. They need a kernel with
// fs-verity and an ext4 filesystem made with `mkfs.ext4 -O verity` (4096-byte
// blocks), so they run only inside the VM harness (tests/vm):
//
//	go test -c -tags vmtest -o verity.test ./verity
//	# in the guest, as root:
//	CFS_VERITY_TEST_DIR=/mnt/verity CFS_VERITY_TEST_DEV=/dev/vdb ./verity.test -test.v
//
// CFS_VERITY_TEST_DIR is a writable directory on that filesystem and
// CFS_VERITY_TEST_DEV its block device (written to by the corruption test).
// Nothing is skipped: a missing variable or feature is a failure.

package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func vmDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CFS_VERITY_TEST_DIR")
	if dir == "" {
		t.Fatal("CFS_VERITY_TEST_DIR is not set (a directory on ext4 with the verity feature)")
	}
	d, err := os.MkdirTemp(dir, "verity-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVMProbe(t *testing.T) {
	dir := vmDir(t)
	if err := Probe(dir); err != nil {
		t.Fatalf("Probe(%s) = %v, want nil", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("Probe left %d entries behind (%v)", len(entries), err)
	}
}

// TestVMEnableMeasure: the kernel's digest equals the computed one, for
// several parameter sets and sizes.
func TestVMEnableMeasure(t *testing.T) {
	dir := vmDir(t)
	r := rand.New(rand.NewPCG(11, 12))
	for _, ps := range []struct {
		alg  Algorithm
		bs   int
		salt string
	}{
		{SHA256, 4096, ""},
		{SHA512, 4096, ""},
		{SHA256, 4096, "0102030405"},
		{SHA256, 1024, ""},
	} {
		for _, n := range []int{0, 1, 4096, 4097, 128*4096 + 1, 3 << 20} {
			opts := []Option{WithAlgorithm(ps.alg), WithBlockSize(ps.bs), WithSalt(mustHex(t, ps.salt))}
			p := filepath.Join(dir, ps.alg.String()+"-"+itoa(ps.bs)+"-"+ps.salt+"-"+itoa(n))
			writeFile(t, p, randBytes(r, n))
			want, err := DigestFile(p, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if on, err := IsEnabled(p); on || err != nil {
				t.Fatalf("%s: IsEnabled before Enable = %v, %v", p, on, err)
			}
			if _, _, err := Measure(p); !errors.Is(err, ErrNotEnabled) || !errors.Is(err, unix.ENODATA) {
				t.Fatalf("%s: Measure before Enable = %v, want ErrNotEnabled", p, err)
			}
			if err := Enable(p, opts...); err != nil {
				t.Fatalf("Enable(%s): %v", p, err)
			}
			alg, got, err := Measure(p)
			if err != nil {
				t.Fatalf("Measure(%s): %v", p, err)
			}
			if alg != ps.alg || !bytes.Equal(got, want) {
				t.Fatalf("%s: kernel %s:%x, computed %s:%x", p, alg, got, ps.alg, want)
			}
			if on, err := IsEnabled(p); !on || err != nil {
				t.Fatalf("%s: IsEnabled after Enable = %v, %v", p, on, err)
			}
			if n == 0 && hex.EncodeToString(got) != emptyDigest && ps.alg == SHA256 && ps.bs == 4096 && ps.salt == "" {
				t.Fatalf("empty file: kernel digest %x, want %s", got, emptyDigest)
			}
		}
	}
}

func TestVMEnableTwiceAndWrite(t *testing.T) {
	dir := vmDir(t)
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("hello, verity\n"))
	if err := Enable(p); err != nil {
		t.Fatal(err)
	}
	err := Enable(p)
	if !errors.Is(err, ErrAlreadyEnabled) || !errors.Is(err, unix.EEXIST) || errors.Is(err, ErrNotSupported) {
		t.Fatalf("second Enable = %v, want ErrAlreadyEnabled", err)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND} {
		f, err := os.OpenFile(p, flag, 0)
		if err == nil {
			f.Close()
			t.Fatalf("open(%s, %#x) of a verity file succeeded", p, flag)
		}
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("open(%s, %#x) = %v, want EPERM", p, flag, err)
		}
	}
	if err := os.Truncate(p, 1); !errors.Is(err, unix.EPERM) {
		t.Fatalf("truncate of a verity file = %v, want EPERM", err)
	}
}

func TestVMEnableWhileOpenForWriting(t *testing.T) {
	dir := vmDir(t)
	p := filepath.Join(dir, "busy")
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("still being written")); err != nil {
		t.Fatal(err)
	}
	err = Enable(p)
	if !errors.Is(err, ErrOpenForWriting) || !errors.Is(err, unix.ETXTBSY) {
		t.Fatalf("Enable while open for writing = %v, want ErrOpenForWriting", err)
	}
	w.Close()
	if err := Enable(p); err != nil {
		t.Fatalf("Enable after close: %v", err)
	}
}

// fiemapExtent returns the physical byte offset of the file's byte at
// logical offset off, using FS_IOC_FIEMAP.
func fiemapPhysical(t *testing.T, f *os.File, off uint64) uint64 {
	t.Helper()
	const (
		fsIocFiemap      = 0xC020660B // _IOWR('f', 11, struct fiemap)
		fiemapFlagSync   = 0x1
		extentUnknown    = 0x2
		extentDelalloc   = 0x4
		extentEncoded    = 0x8
		extentNotAligned = 0x100
		extentInline     = 0x200
		maxExtents       = 32
	)
	// struct fiemap (32 bytes) + maxExtents * struct fiemap_extent (56 bytes)
	buf := make([]byte, 32+maxExtents*56)
	binary.LittleEndian.PutUint64(buf[0:], 0)          // fm_start
	binary.LittleEndian.PutUint64(buf[8:], ^uint64(0)) // fm_length
	binary.LittleEndian.PutUint32(buf[16:], fiemapFlagSync)
	binary.LittleEndian.PutUint32(buf[24:], maxExtents) // fm_extent_count
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		t.Fatalf("FS_IOC_FIEMAP: %v", errno)
	}
	n := binary.LittleEndian.Uint32(buf[20:]) // fm_mapped_extents
	for i := range n {
		e := buf[32+i*56:]
		logical := binary.LittleEndian.Uint64(e[0:])
		physical := binary.LittleEndian.Uint64(e[8:])
		length := binary.LittleEndian.Uint64(e[16:])
		flags := binary.LittleEndian.Uint32(e[40:])
		if off < logical || off >= logical+length {
			continue
		}
		if flags&(extentUnknown|extentDelalloc|extentEncoded|extentNotAligned|extentInline) != 0 {
			t.Fatalf("extent at %d has flags %#x: no fixed physical location", logical, flags)
		}
		return physical + (off - logical)
	}
	t.Fatalf("no extent maps offset %d (%d extents)", off, n)
	return 0
}

func dropCaches(t *testing.T) {
	t.Helper()
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		t.Fatalf("drop caches: %v", err)
	}
}

// TestVMCorruptBlockIsEIO: a data block changed on disk behind the
// filesystem's back reads back as EIO once it is not in the page cache.
func TestVMCorruptBlockIsEIO(t *testing.T) {
	dev := os.Getenv("CFS_VERITY_TEST_DEV")
	if dev == "" {
		t.Fatal("CFS_VERITY_TEST_DEV is not set (the block device of CFS_VERITY_TEST_DIR)")
	}
	dir := vmDir(t)
	p := filepath.Join(dir, "victim")
	const blk = 4096
	data := randBytes(rand.New(rand.NewPCG(5, 6)), 4*blk)
	writeFile(t, p, data)
	if err := Enable(p); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	phys := fiemapPhysical(t, f, 2*blk) // the third data block
	f.Close()
	if phys%512 != 0 {
		t.Fatalf("physical offset %d is not sector aligned", phys)
	}

	// An aligned buffer for O_DIRECT: anonymous memory is page aligned.
	garbage, err := unix.Mmap(-1, 0, blk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(garbage)
	for i := range garbage {
		garbage[i] = byte(i*7 + 1)
	}
	if bytes.Equal(garbage, data[2*blk:3*blk]) {
		t.Fatal("garbage equals the data")
	}
	d, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Check that the extent really holds the file's data before writing.
	check, err := unix.Mmap(-1, 0, blk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(check)
	if _, err := d.ReadAt(check, int64(phys)); err != nil {
		t.Fatalf("read %s at %d: %v", dev, phys, err)
	}
	if !bytes.Equal(check, data[2*blk:3*blk]) {
		t.Fatalf("%s at %d does not hold the file's third block (FIEMAP wrong?)", dev, phys)
	}
	if _, err := d.WriteAt(garbage, int64(phys)); err != nil {
		t.Fatalf("write %s at %d: %v", dev, phys, err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	dropCaches(t)

	f, err = os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, blk)
	if _, err := f.ReadAt(b, 2*blk); !errors.Is(err, unix.EIO) {
		t.Fatalf("read of the corrupted block = %v, want EIO", err)
	}
	dropCaches(t)
	if _, err := io.ReadAll(f); !errors.Is(err, unix.EIO) {
		t.Fatalf("reading the whole corrupted file = %v, want EIO", err)
	}
	// Digesting it through the filesystem fails the same way.
	if _, err := DigestFile(p); !errors.Is(err, unix.EIO) {
		t.Fatalf("DigestFile of the corrupted file = %v, want EIO", err)
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}
