package composefs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rdDirent is a directory entry with where it sits in the image.
type rdDirent struct {
	name    string
	nid     uint64
	off     uint64 // of the 12-byte erofs_dirent
	nameOff uint64 // of the name
}

// rdDirents decodes directory nid of data independently of readDir, so
// that the tests can aim their corruptions.
func rdDirents(t *testing.T, data []byte, nid uint64) []rdDirent {
	t.Helper()
	img, err := ParseImage(data)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := img.inodeAt(nid)
	if err != nil {
		t.Fatal(err)
	}
	var areas [][2]uint64 // start, length
	full := ri.Size / erofsBlockSize
	if ri.layout == layoutFlatPlain && ri.Size%erofsBlockSize != 0 {
		full++
	}
	for b := uint64(0); b < full; b++ {
		areas = append(areas, [2]uint64{(uint64(ri.iu) + b) * erofsBlockSize, min(erofsBlockSize, ri.Size-b*erofsBlockSize)})
	}
	if ri.layout == layoutFlatInline {
		areas = append(areas, [2]uint64{ri.off + ri.isize + ri.xsize, ri.Size % erofsBlockSize})
	}
	le := binary.LittleEndian
	var out []rdDirent
	for _, a := range areas {
		blk := data[a[0] : a[0]+a[1]]
		n := int(le.Uint16(blk[8:])) / 12
		for i := 0; i < n; i++ {
			no := int(le.Uint16(blk[i*12+8:]))
			end := len(blk)
			if i+1 < n {
				end = int(le.Uint16(blk[i*12+20:]))
			}
			name := blk[no:end]
			if z := bytes.IndexByte(name, 0); z >= 0 {
				name = name[:z]
			}
			out = append(out, rdDirent{string(name), le.Uint64(blk[i*12:]), a[0] + uint64(i*12), a[0] + uint64(no)})
		}
	}
	return out
}

func rdFind(t *testing.T, data []byte, dir uint64, name string) rdDirent {
	t.Helper()
	for _, d := range rdDirents(t, data, dir) {
		if d.name == name {
			return d
		}
	}
	t.Fatalf("no %q in directory nid %d", name, dir)
	return rdDirent{}
}

// rdInodeOff returns the byte offset of inode nid.
func rdInodeOff(data []byte, nid uint64) uint64 {
	return uint64(binary.LittleEndian.Uint32(data[erofsSuperOff+40:]))*erofsBlockSize + nid*erofsSlotSize
}

// rdXattrOff returns the offset of inode nid's xattr header and its
// shared xattr count.
func rdXattrOff(data []byte, nid uint64) (uint64, uint64) {
	off := rdInodeOff(data, nid)
	isz := uint64(erofsCompactSz)
	if data[off]&1 != 0 {
		isz = erofsExtendedSz
	}
	return off + isz, uint64(data[off+isz+4])
}

// rdReadAll parses and walks an image the way `info dump` and `info ls` do.
func rdReadAll(data []byte) error {
	img, err := ParseImage(data)
	if err != nil {
		return err
	}
	if err := img.WriteDump(io.Discard); err != nil {
		return err
	}
	return img.WriteLs(io.Discard)
}

// TestReaderRejects corrupts golden images in aimed ways: each must be
// rejected with a one-line error wrapping ErrInvalidImage that says what
// is wrong, never a panic.
func TestReaderRejects(t *testing.T) {
	le := binary.LittleEndian
	const root = 36
	cases := []struct {
		name   string
		vector string
		mutate func(t *testing.T, d []byte) []byte
		want   string
	}{
		{"truncated below one block", "03-small-files", func(t *testing.T, d []byte) []byte { return d[:4000] }, "smaller than one 4096-byte block"},
		{"empty file", "03-small-files", func(t *testing.T, d []byte) []byte { return d[:0] }, "image of 0 bytes is smaller"},
		{"truncated by a block", "08-1000-entries", func(t *testing.T, d []byte) []byte { return d[:len(d)-4096] }, "image truncated"},
		{"truncated to the superblock", "08-1000-entries", func(t *testing.T, d []byte) []byte { return d[:4096] }, "image truncated"},
		{"wrong composefs magic", "03-small-files", func(t *testing.T, d []byte) []byte { d[0] ^= 0xff; return d }, "bad composefs magic"},
		{"wrong composefs version", "03-small-files", func(t *testing.T, d []byte) []byte { d[4] = 2; return d }, "unsupported composefs header version 2"},
		{"wrong EROFS magic", "03-small-files", func(t *testing.T, d []byte) []byte { d[1024] ^= 1; return d }, "bad EROFS magic"},
		{"wrong block size", "03-small-files", func(t *testing.T, d []byte) []byte { d[1024+12] = 9; return d }, "unsupported EROFS block size 2^9"},
		{"unknown incompat feature", "03-small-files", func(t *testing.T, d []byte) []byte { d[1024+80] = 0x80; return d }, "incompatible features 0x80"},
		{"root nid out of range", "01-empty-dir", func(t *testing.T, d []byte) []byte {
			le.PutUint16(d[1024+14:], 0xffff)
			return d
		}, "inode nid 65535 is beyond the end of the image"},
		{"root not a directory", "02-one-empty-file", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "empty")
			le.PutUint16(d[1024+14:], uint16(e.nid))
			return d
		}, "is not a directory"},
		{"metadata block out of range", "01-empty-dir", func(t *testing.T, d []byte) []byte {
			le.PutUint32(d[1024+40:], 1<<20)
			return d
		}, "metadata block address"},
		{"directory block out of range", "03-small-files", func(t *testing.T, d []byte) []byte {
			le.PutUint32(d[rdInodeOff(d, root)+16:], 0x00ffffff)
			return d
		}, "data blocks of inode nid 36 (block 16777215)"},
		{"dirent nid out of range", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			le.PutUint64(d[e.off:], 1<<40)
			return d
		}, "/hello.txt: invalid composefs image: inode nid 1099511627776 is beyond the end"},
		{"shared xattr id out of range", "13-xattrs", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "dir")
			x, shared := rdXattrOff(d, e.nid)
			if shared == 0 {
				t.Fatal("test assumes /dir has shared xattrs")
			}
			le.PutUint32(d[x+12:], 0x3fffffff)
			return d
		}, "shared xattr id 1073741823 points beyond the end"},
		{"xattr entry beyond its area", "13-xattrs", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "f1")
			x, shared := rdXattrOff(d, e.nid)
			le.PutUint16(d[x+12+4*shared+2:], 0xffff)
			return d
		}, "extends beyond its area"},
		{"unknown xattr name index", "13-xattrs", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "f1")
			x, shared := rdXattrOff(d, e.nid)
			d[x+12+4*shared+1] = 99
			return d
		}, "unknown name index 99"},
		{"too many shared xattrs", "13-xattrs", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "f1")
			x, _ := rdXattrOff(d, e.nid)
			d[x+4] = 255
			return d
		}, "shared xattrs do not fit"},
		{"duplicate xattr", "13-xattrs", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "f1")
			x, shared := rdXattrOff(d, e.nid)
			if shared < 2 {
				t.Fatal("test assumes /f1 has two shared xattrs")
			}
			le.PutUint32(d[x+16:], le.Uint32(d[x+12:]))
			return d
		}, `xattr "user.shared" appears twice`},
		{"directory loop to the root", "07-deep", func(t *testing.T, d []byte) []byte {
			d01 := rdFind(t, d, root, "d01")
			d02 := rdFind(t, d, d01.nid, "d02")
			le.PutUint64(d[d02.off:], root)
			return d
		}, "/d01/d02: inode nid 36 is reached twice: directory loop"},
		{"directory loop to itself", "07-deep", func(t *testing.T, d []byte) []byte {
			d01 := rdFind(t, d, root, "d01")
			d02 := rdFind(t, d, d01.nid, "d02")
			le.PutUint64(d[d02.off:], d01.nid)
			return d
		}, "is reached twice: directory loop"},
		{"dot not pointing to itself", "07-deep", func(t *testing.T, d []byte) []byte {
			d01 := rdFind(t, d, root, "d01")
			dot := rdFind(t, d, d01.nid, ".")
			le.PutUint64(d[dot.off:], root)
			return d
		}, `/d01: "." points to nid 36, not to the directory itself`},
		{"dotdot not pointing to the parent", "07-deep", func(t *testing.T, d []byte) []byte {
			d01 := rdFind(t, d, root, "d01")
			dd := rdFind(t, d, d01.nid, "..")
			le.PutUint64(d[dd.off:], d01.nid)
			return d
		}, `/d01: ".." points to nid`},
		{"inode inside another inode's data", "03-small-files", func(t *testing.T, d []byte) []byte {
			// A well-formed inode hidden in the inline content of /s64,
			// and /s65's entry pointing at it.
			s64 := rdFind(t, d, root, "s64")
			s65 := rdFind(t, d, root, "s65")
			hello := rdFind(t, d, root, "hello.txt")
			fake := rdInodeOff(d, s64.nid) + 32
			copy(d[fake:fake+32], d[rdInodeOff(d, hello.nid):])
			le.PutUint16(d[fake:], 0) // compact, FLAT_PLAIN
			le.PutUint32(d[fake+8:], 0)
			le.PutUint64(d[s65.off:], s64.nid+1)
			return d
		}, "overlaps another inode's data"},
		{"name with slash", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			d[e.nameOff+5] = '/'
			return d
		}, `name "hello/txt"`},
		{"name with NUL", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			d[e.nameOff+5] = 0
			return d
		}, "contains NUL"},
		{"names not sorted", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			d[e.nameOff] = 'z'
			return d
		}, `is not sorted after "zello.txt"`},
		{"nameoff out of order", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			le.PutUint16(d[e.off+8:], le.Uint16(d[e.off-12+8:]))
			return d
		}, "out of order or out of range"},
		{"first nameoff not a multiple of 12", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, ".")
			le.PutUint16(d[e.off+8:], 13)
			return d
		}, "bad first nameoff 13"},
		{"absurd size of an inline file", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			le.PutUint32(d[rdInodeOff(d, e.nid)+8:], 0xffffffff)
			return d
		}, "size 4294967295 is larger than the image"},
		{"absurd size of an extended inode", "14-modes-owners-times", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "sticky")
			off := rdInodeOff(d, e.nid)
			if d[off]&1 == 0 {
				t.Fatal("test assumes an extended inode")
			}
			le.PutUint64(d[off+8:], 1<<62)
			return d
		}, "size 4611686018427387904 is larger than the image"},
		{"absurd chunk count", "05-large-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "1MiB")
			off := rdInodeOff(d, e.nid)
			if d[off]&1 == 0 {
				le.PutUint32(d[off+8:], 0xffffffff)
			} else {
				le.PutUint64(d[off+8:], 1<<50)
			}
			le.PutUint32(d[off+16:], 0) // 4 KiB chunks
			return d
		}, "chunks, more than the image can hold"},
		{"symlink too long", "10-symlinks", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "short")
			le.PutUint32(d[rdInodeOff(d, e.nid)+8:], 5000)
			return d
		}, "symlink target length 5000 not in 1..4095"},
		{"inline data crossing a block", "10-symlinks", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "long2048")
			le.PutUint32(d[rdInodeOff(d, e.nid)+8:], 4090)
			return d
		}, "cross a block boundary"},
		{"unknown file type", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			le.PutUint16(d[rdInodeOff(d, e.nid)+4:], 0o170644)
			return d
		}, "unknown file type in mode 0170644"},
		{"compressed layout", "03-small-files", func(t *testing.T, d []byte) []byte {
			e := rdFind(t, d, root, "hello.txt")
			off := rdInodeOff(d, e.nid)
			le.PutUint16(d[off:], le.Uint16(d[off:])&1|1<<1) // COMPRESSED_FULL
			return d
		}, "unsupported data layout 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig, err := os.ReadFile(filepath.Join(readerVectorDir, c.vector, "image.cfs"))
			if err != nil {
				t.Fatal(err)
			}
			d := c.mutate(t, bytes.Clone(orig))
			rdLeanAgrees(t, d)
			err = rdReadAll(d)
			if err == nil {
				t.Fatalf("corrupt image accepted, want error containing %q", c.want)
			}
			if !errors.Is(err, ErrInvalidImage) {
				t.Errorf("error %q does not wrap ErrInvalidImage", err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, c.want)
			}
		})
	}
}

// FuzzReader feeds mutated vector images to the reader: it may reject them
// but must never panic, hang or allocate without bound.
func FuzzReader(f *testing.F) {
	rdSeedVectors(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := ParseImage(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("error does not wrap ErrInvalidImage: %v", err)
			}
			return
		}
		// A small image can describe a huge dump (a hardlink repeats its
		// inode's xattrs on every line, as in composefs-info); that is
		// output, not work, so stop writing after 8 MiB.
		if err := img.WriteDump(&rdLimitWriter{n: 8 << 20}); err != nil {
			if errors.Is(err, errRdLimit) {
				return
			}
			if !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("error does not wrap ErrInvalidImage: %v", err)
			}
			return
		}
		if err := img.WriteLs(io.Discard); err != nil {
			t.Fatalf("dump succeeded but ls failed: %v", err)
		}
		if _, err := img.Objects(); err != nil {
			t.Fatalf("dump succeeded but objects failed: %v", err)
		}
	})
}

var errRdLimit = errors.New("output limit reached")

// rdLimitWriter discards what is written and fails after n bytes.
type rdLimitWriter struct{ n int }

func (w *rdLimitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errRdLimit
	}
	w.n -= len(p)
	return len(p), nil
}
