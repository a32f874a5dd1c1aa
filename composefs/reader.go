package composefs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// ErrInvalidImage is returned (wrapped, with what was wrong and where) for
// an image that is not a well-formed composefs EROFS image. Images are
// untrusted input: every offset, size and name is checked before use.
var ErrInvalidImage = errors.New("invalid composefs image")

// On-disk constants of the composefs header and EROFS (see
// libcomposefs/lcfs-erofs.h and the kernel's fs/erofs/erofs_fs.h).
const (
	cfsMagic        = 0xd078629a
	cfsVersion      = 1
	cfsFlagHasACL   = 1
	erofsMagic      = 0xe0f5e1e2
	erofsSuperOff   = 1024
	erofsSuperSize  = 128
	erofsBlkBits    = 12
	erofsBlockSize  = 1 << erofsBlkBits
	erofsSlotSize   = 32
	erofsCompactSz  = 32
	erofsExtendedSz = 64
	erofsDirentSize = 12
	erofsXattrHdrSz = 12

	layoutFlatPlain  = 0
	layoutFlatInline = 2
	layoutChunkBased = 4

	chunkFormatBlkBitsMask = 0x1f
	chunkFormatIndexes     = 0x20

	// incompat features a composefs image may use: ZERO_PADDING (harmless
	// without compression) and CHUNKED_FILE (mkcomposefs does not set it,
	// other writers may).
	erofsIncompatKnown = 0x1 | 0x4

	// maxDepth bounds directory nesting (PATH_MAX allows at most 2048
	// levels of one-byte names) so a crafted image cannot exhaust the stack.
	maxDepth = 2048
)

// Xattr names composefs uses for its overlayfs integration.
const (
	xattrOverlayPrefix   = "trusted.overlay."
	xattrEscapedPrefix   = "trusted.overlay.overlay."
	xattrRedirect        = "trusted.overlay.redirect"
	xattrMetacopy        = "trusted.overlay.metacopy"
	xattrEscWhiteout     = "trusted.overlay.overlay.whiteout"
	xattrEscWhiteouts    = "trusted.overlay.overlay.whiteouts"
	xattrUserWhiteout    = "user.overlay.whiteout"
	xattrUserWhiteouts   = "user.overlay.whiteouts"
	metacopyHeaderSize   = 4
	metacopyDigestLength = metacopyHeaderSize + DigestSize
)

// Header is the composefs header and the EROFS superblock fields a caller
// may want to see.
type Header struct {
	ComposefsVersion uint32 // image format version (0 or 1)
	Flags            uint32 // 1 = has ACLs
	RootNid          uint64
	Inodes           uint64
	BuildTimeSec     int64
	BuildTimeNsec    uint32
	Blocks           uint32
}

// Inode is the metadata of one file of an image, as composefs-info sees it:
// composefs' own overlay xattrs are hidden, escaped trusted.overlay.* names
// are unescaped, escaped whiteouts are character devices 0:0 again.
type Inode struct {
	Nid       uint64
	Mode      uint32
	Nlink     uint32
	UID, GID  uint32
	Rdev      uint32
	Size      uint64
	MtimeSec  int64
	MtimeNsec uint32
	// Xattrs in image order (inline ones first, then shared ones).
	Xattrs []Xattr
	// Payload is the symlink target, or for a regular file the object path
	// from trusted.overlay.redirect without its leading "/" ("" if none).
	Payload string
	// Digest is the fs-verity digest from trusted.overlay.metacopy (nil
	// if none).
	Digest []byte
	// Content is the inline content of a regular file stored in the image
	// (nil if none). It may alias the image's bytes: do not modify it.
	Content []byte
}

// Type returns the file type bits of the mode.
func (in *Inode) Type() uint32 { return in.Mode & ModeTypeMask }

// Entry is one name in an image visited by Walk.
type Entry struct {
	// Path is the absolute path ("/" for the root, "/a/b" below it).
	Path  string
	Name  string // "" for the root
	Depth int    // 0 for the root
	Inode *Inode
	// HardlinkOf is set when this name refers to an inode already visited
	// under another name: the path of that first name (depth-first order).
	HardlinkOf string
}

// Image is a parsed composefs image held in memory.
type Image struct {
	data   []byte
	hdr    Header
	meta   uint64 // byte offset of the metadata area (meta_blkaddr)
	xattrs uint64 // byte offset of the shared xattr area (xattr_blkaddr)
}

// ReadImageFile reads and parses the image at path.
func ReadImageFile(path string) (*Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := ParseImage(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidImage}, args...)...)
}

// ParseImage checks the composefs header and the EROFS superblock of data.
// The inodes are checked as Walk reaches them. data must not be modified
// while the Image is in use.
func ParseImage(data []byte) (*Image, error) {
	size := uint64(len(data))
	if size < erofsBlockSize {
		return nil, invalidf("image of %d bytes is smaller than one %d-byte block", size, erofsBlockSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(data[0:]); m != cfsMagic {
		return nil, invalidf("bad composefs magic 0x%08x at offset 0 (want 0x%08x)", m, cfsMagic)
	}
	if v := le.Uint32(data[4:]); v != cfsVersion {
		return nil, invalidf("unsupported composefs header version %d at offset 4", v)
	}
	sb := data[erofsSuperOff : erofsSuperOff+erofsSuperSize]
	if m := le.Uint32(sb[0:]); m != erofsMagic {
		return nil, invalidf("bad EROFS magic 0x%08x at offset %d (want 0x%08x)", m, erofsSuperOff, erofsMagic)
	}
	if b := sb[12]; b != erofsBlkBits {
		return nil, invalidf("unsupported EROFS block size 2^%d at offset %d", b, erofsSuperOff+12)
	}
	if f := le.Uint32(sb[80:]); f&^erofsIncompatKnown != 0 {
		return nil, invalidf("unsupported EROFS incompatible features 0x%x at offset %d", f, erofsSuperOff+80)
	}
	if n := sb[91]; n != 0 {
		return nil, invalidf("unsupported EROFS long xattr prefixes (%d) at offset %d", n, erofsSuperOff+91)
	}
	if d := sb[90]; d != 0 {
		return nil, invalidf("unsupported EROFS directory block bits %d at offset %d", d, erofsSuperOff+90)
	}
	img := &Image{data: data}
	img.hdr = Header{
		ComposefsVersion: le.Uint32(data[12:]),
		Flags:            le.Uint32(data[8:]),
		RootNid:          uint64(le.Uint16(sb[14:])),
		Inodes:           le.Uint64(sb[16:]),
		BuildTimeSec:     int64(le.Uint64(sb[24:])),
		BuildTimeNsec:    le.Uint32(sb[32:]),
		Blocks:           le.Uint32(sb[36:]),
	}
	if need := uint64(img.hdr.Blocks) * erofsBlockSize; need > size {
		return nil, invalidf("image truncated: superblock at offset %d says %d blocks (%d bytes), file has %d bytes",
			erofsSuperOff+36, img.hdr.Blocks, need, size)
	}
	if img.hdr.BuildTimeNsec >= 1e9 {
		return nil, invalidf("superblock build_time_nsec %d at offset %d is not below 1e9", img.hdr.BuildTimeNsec, erofsSuperOff+32)
	}
	img.meta = uint64(le.Uint32(sb[40:])) * erofsBlockSize
	img.xattrs = uint64(le.Uint32(sb[44:])) * erofsBlockSize
	if img.meta >= size {
		return nil, invalidf("metadata block address %d at offset %d is beyond the end of the image (%d bytes)",
			img.meta/erofsBlockSize, erofsSuperOff+40, size)
	}
	if img.xattrs > size {
		return nil, invalidf("shared xattr block address %d at offset %d is beyond the end of the image (%d bytes)",
			img.xattrs/erofsBlockSize, erofsSuperOff+44, size)
	}
	return img, nil
}

// HasACL reports whether the image holds POSIX ACLs (composefs header
// flag), which mounting needs to know.
func (h Header) HasACL() bool { return h.Flags&cfsFlagHasACL != 0 }

// Header returns the image's header fields.
func (img *Image) Header() Header { return img.hdr }

// Size is the image size in bytes.
func (img *Image) Size() int64 { return int64(len(img.data)) }

// Bytes returns the image as it was parsed (not a copy: do not modify it).
func (img *Image) Bytes() []byte { return img.data }

// span returns data[off:off+n], or an error naming what was out of range:
// what(nid), or what(nid, block) for a format with two verbs. The name
// is only formatted for the error: the walk calls span several times for
// every inode.
func (img *Image) span(off, n uint64, what string, args ...uint64) ([]byte, error) {
	size := uint64(len(img.data))
	if off > size || n > size-off {
		a := make([]any, len(args))
		for i, v := range args {
			a[i] = v
		}
		return nil, invalidf("%s at offset %d, %d bytes, is beyond the end of the image (%d bytes)", fmt.Sprintf(what, a...), off, n, size)
	}
	return img.data[off : off+n], nil
}

// rawInode is an inode with its data location, before xattr processing.
type rawInode struct {
	Inode
	off       uint64 // byte offset of the inode
	isize     uint64 // 32 or 64
	xsize     uint64 // xattr area size
	layout    int
	diskType  uint32 // file type bits as stored (before whiteout unescaping)
	slots     bitmap // the walk's slot map (see loadInode)
	iu        uint32
	xattrBody []byte
	// lean: for the walk of fsck, which needs no symlink target or
	// redirect and takes the digest as a view of the image: none of them
	// are copied (everything is still checked).
	lean bool
}

// inodeAt reads and checks the inode nid (everything but directory
// entries).
func (img *Image) inodeAt(nid uint64) (*rawInode, error) {
	le := binary.LittleEndian
	if nid > (uint64(len(img.data))-img.meta)/erofsSlotSize {
		return nil, invalidf("inode nid %d is beyond the end of the image", nid)
	}
	off := img.meta + nid*erofsSlotSize
	b, err := img.span(off, erofsCompactSz, "inode nid %d", nid)
	if err != nil {
		return nil, err
	}
	format := le.Uint16(b[0:])
	if format&^0x0f != 0 {
		return nil, invalidf("inode nid %d at offset %d: unknown i_format bits 0x%x", nid, off, format)
	}
	ri := &rawInode{off: off, layout: int(format >> 1 & 7)}
	ri.Nid = nid
	xcount := le.Uint16(b[2:])
	ri.Mode = uint32(le.Uint16(b[4:]))
	if format&1 == 0 {
		ri.isize = erofsCompactSz
		ri.Nlink = uint32(le.Uint16(b[6:]))
		ri.Size = uint64(le.Uint32(b[8:]))
		ri.iu = le.Uint32(b[16:])
		ri.UID = uint32(le.Uint16(b[24:]))
		ri.GID = uint32(le.Uint16(b[26:]))
		ri.MtimeSec = img.hdr.BuildTimeSec
		ri.MtimeNsec = img.hdr.BuildTimeNsec
	} else {
		ri.isize = erofsExtendedSz
		b, err = img.span(off, erofsExtendedSz, "extended inode nid %d", nid)
		if err != nil {
			return nil, err
		}
		ri.Size = le.Uint64(b[8:])
		ri.iu = le.Uint32(b[16:])
		ri.UID = le.Uint32(b[24:])
		ri.GID = le.Uint32(b[28:])
		ri.MtimeSec = int64(le.Uint64(b[32:]))
		ri.MtimeNsec = le.Uint32(b[40:])
		ri.Nlink = le.Uint32(b[44:])
		if ri.MtimeNsec >= 1e9 {
			return nil, invalidf("inode nid %d at offset %d: mtime nanoseconds %d not below 1e9", nid, off, ri.MtimeNsec)
		}
	}
	switch ri.Type() {
	case ModeRegular, ModeDir, ModeSymlink, ModeChar, ModeBlock, ModeFifo, ModeSocket:
	default:
		return nil, invalidf("inode nid %d at offset %d: unknown file type in mode 0%o", nid, off, ri.Mode)
	}
	ri.diskType = ri.Type()
	if ri.Type() == ModeChar || ri.Type() == ModeBlock {
		ri.Rdev = ri.iu
	}
	switch ri.layout {
	case layoutFlatPlain, layoutFlatInline:
	case layoutChunkBased:
		if ri.Type() != ModeRegular {
			return nil, invalidf("inode nid %d at offset %d: chunk-based layout for mode 0%o", nid, off, ri.Mode)
		}
	default:
		return nil, invalidf("inode nid %d at offset %d: unsupported data layout %d", nid, off, ri.layout)
	}
	if xcount > 0 {
		ri.xsize = erofsXattrHdrSz + 4*uint64(xcount-1)
		ri.xattrBody, err = img.span(off+ri.isize, ri.xsize, "xattrs of inode nid %d", nid)
		if err != nil {
			return nil, err
		}
	}
	return ri, nil
}

// tail returns the inline data after the inode and its xattrs. Like the
// kernel, it refuses a tail that crosses a block boundary.
func (img *Image) tail(ri *rawInode, n uint64) ([]byte, error) {
	start := ri.off + ri.isize + ri.xsize
	if n > erofsBlockSize || start%erofsBlockSize+n > erofsBlockSize {
		return nil, invalidf("inode nid %d at offset %d: %d bytes of inline data at offset %d cross a block boundary",
			ri.Nid, ri.off, n, start)
	}
	b, err := img.span(start, n, "inline data of inode nid %d", ri.Nid)
	if err != nil {
		return nil, err
	}
	if err := ri.claim(ri.slots, start, n); err != nil {
		return nil, err
	}
	return b, nil
}

// claim marks the slots of [off, off+n) as used by ri, or fails if another
// inode uses one of them already.
func (ri *rawInode) claim(slots bitmap, off, n uint64) error {
	ri.slots = slots
	if slots == nil || n == 0 {
		return nil
	}
	for i := off / erofsSlotSize; i <= (off+n-1)/erofsSlotSize; i++ {
		if i == off/erofsSlotSize && off%erofsSlotSize != 0 {
			continue // a tail starting mid-slot shares it with its own xattrs
		}
		if slots.mark(i) {
			return invalidf("inode nid %d at offset %d overlaps another inode's data at offset %d", ri.Nid, ri.off, i*erofsSlotSize)
		}
	}
	return nil
}

// flatData returns the blocks and the inline tail of a flat inode. The
// size has to be checked against the image first so that a huge i_size
// never leads to a huge allocation.
func (img *Image) flatData(ri *rawInode) (blocks, tail []byte, err error) {
	size := ri.Size
	nblocks := size / erofsBlockSize
	if size%erofsBlockSize != 0 {
		nblocks++
	}
	if nblocks == 0 {
		return nil, nil, nil
	}
	if nblocks > uint64(len(img.data))/erofsBlockSize+1 {
		return nil, nil, invalidf("inode nid %d at offset %d: size %d is larger than the image", ri.Nid, ri.off, size)
	}
	oob := nblocks
	if ri.layout == layoutFlatInline {
		oob--
		tail, err = img.tail(ri, size-oob*erofsBlockSize)
		if err != nil {
			return nil, nil, err
		}
	}
	if oob > 0 {
		n := oob * erofsBlockSize
		if ri.layout == layoutFlatPlain {
			n = size
		}
		blocks, err = img.span(uint64(ri.iu)*erofsBlockSize, n, "data blocks of inode nid %d (block %d)", ri.Nid, uint64(ri.iu))
		if err != nil {
			return nil, nil, err
		}
	}
	return blocks, tail, nil
}

// checkChunks checks that a chunk-based inode's chunk table lies inside
// the image.
func (img *Image) checkChunks(ri *rawInode) error {
	if ri.iu&^(chunkFormatBlkBitsMask|chunkFormatIndexes) != 0 {
		return invalidf("inode nid %d at offset %d: unknown chunk format bits 0x%x", ri.Nid, ri.off, ri.iu)
	}
	bits := erofsBlkBits + uint64(ri.iu&chunkFormatBlkBitsMask)
	if bits > 63 {
		return invalidf("inode nid %d at offset %d: chunk size 2^%d too large", ri.Nid, ri.off, bits)
	}
	count := ri.Size >> bits
	if ri.Size&(1<<bits-1) != 0 {
		count++
	}
	unit := uint64(4)
	start := ri.off + ri.isize + ri.xsize
	if ri.iu&chunkFormatIndexes != 0 {
		unit = 8
		start = (start + 7) &^ 7
	}
	if count > uint64(len(img.data))/unit {
		return invalidf("inode nid %d at offset %d: size %d needs %d chunks, more than the image can hold", ri.Nid, ri.off, ri.Size, count)
	}
	_, err := img.span(start, count*unit, "chunk table of inode nid %d", ri.Nid)
	return err
}

var xattrPrefixes = [...]string{
	0: "",
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	5: "lustre.",
	6: "security.",
}

// xattrName is an xattr name as EROFS stores it: a prefix (by index) and
// the rest, compared without building the full name, which only the
// xattrs an inode keeps need.
type xattrName struct {
	prefix string
	suffix []byte // aliases the image
}

func (n xattrName) String() string { return n.prefix + string(n.suffix) }

// is reports whether the name is s.
func (n xattrName) is(s string) bool {
	return len(n.prefix)+len(n.suffix) == len(s) && s[:len(n.prefix)] == n.prefix && s[len(n.prefix):] == string(n.suffix)
}

// hasPrefix reports whether the name starts with p.
func (n xattrName) hasPrefix(p string) bool {
	if len(p) <= len(n.prefix) {
		return n.prefix[:len(p)] == p
	}
	rest := p[len(n.prefix):]
	return p[:len(n.prefix)] == n.prefix && len(n.suffix) >= len(rest) && string(n.suffix[:len(rest)]) == rest
}

// xattrEntry parses one erofs_xattr_entry at b (4-byte header, name
// suffix, value) and returns the name, value and entry length.
func xattrEntry(b []byte, off uint64, nid uint64) (name xattrName, value []byte, n uint64, err error) {
	if len(b) < 4 {
		return xattrName{}, nil, 0, invalidf("inode nid %d: xattr entry at offset %d truncated", nid, off)
	}
	nlen := uint64(b[0])
	idx := b[1]
	vlen := uint64(binary.LittleEndian.Uint16(b[2:]))
	if uint64(len(b)) < 4+nlen+vlen {
		return xattrName{}, nil, 0, invalidf("inode nid %d: xattr entry at offset %d (name %d bytes, value %d bytes) extends beyond its area",
			nid, off, nlen, vlen)
	}
	if int(idx) >= len(xattrPrefixes) {
		return xattrName{}, nil, 0, invalidf("inode nid %d: xattr entry at offset %d has unknown name index %d", nid, off, idx)
	}
	suffix := b[4 : 4+nlen]
	if bytes.IndexByte(suffix, 0) >= 0 {
		return xattrName{}, nil, 0, invalidf("inode nid %d: xattr name at offset %d contains NUL", nid, off)
	}
	name = xattrName{xattrPrefixes[idx], suffix}
	if len(name.prefix)+len(name.suffix) == 0 {
		return xattrName{}, nil, 0, invalidf("inode nid %d: empty xattr name at offset %d", nid, off)
	}
	return name, b[4+nlen : 4+nlen+vlen], (4 + nlen + vlen + 3) &^ 3, nil
}

// readXattrs parses the inline and shared xattrs of ri and applies them as
// libcomposefs' image loader does.
func (img *Image) readXattrs(ri *rawInode) error {
	if ri.xattrBody == nil {
		return nil
	}
	body := ri.xattrBody
	shared := uint64(body[4])
	if erofsXattrHdrSz+4*shared > uint64(len(body)) {
		return invalidf("inode nid %d at offset %d: %d shared xattrs do not fit in %d bytes of xattrs", ri.Nid, ri.off, shared, len(body))
	}
	base := ri.off + ri.isize
	pos := erofsXattrHdrSz + 4*shared
	for pos < uint64(len(body)) {
		name, value, n, err := xattrEntry(body[pos:], base+pos, ri.Nid)
		if err != nil {
			return err
		}
		if err := ri.applyXattr(name, value); err != nil {
			return err
		}
		pos += n
	}
	size := uint64(len(img.data))
	for i := range shared {
		id := uint64(binary.LittleEndian.Uint32(body[erofsXattrHdrSz+4*i:]))
		off := img.xattrs + 4*id
		if off > size {
			return invalidf("inode nid %d at offset %d: shared xattr id %d points beyond the end of the image", ri.Nid, ri.off, id)
		}
		name, value, _, err := xattrEntry(img.data[off:], off, ri.Nid)
		if err != nil {
			return err
		}
		if err := ri.applyXattr(name, value); err != nil {
			return err
		}
	}
	return nil
}

// applyXattr maps composefs' overlay xattrs back to what they stand for
// (lcfs_build_node_erofs_xattr): redirect -> payload, metacopy -> digest,
// escaped whiteout -> character device 0:0; composefs' own
// trusted.overlay.* and whiteout markers are hidden and
// trusted.overlay.overlay.X becomes trusted.overlay.X again.
func (ri *rawInode) applyXattr(xn xattrName, value []byte) error {
	isReg := ri.Type() == ModeRegular
	var name string
	switch {
	case xn.is(xattrRedirect):
		if isReg {
			v := value
			if len(v) > 1 && v[0] == '/' {
				v = v[1:]
			}
			if bytes.IndexByte(v, 0) >= 0 {
				return invalidf("inode nid %d at offset %d: redirect xattr contains NUL", ri.Nid, ri.off)
			}
			if !ri.lean {
				ri.Payload = string(v)
			}
		}
		return nil
	case xn.is(xattrMetacopy):
		if isReg && metacopyOK(value) {
			if ri.lean {
				ri.Digest = value[metacopyHeaderSize:len(value):len(value)]
			} else {
				ri.Digest = append([]byte(nil), value[metacopyHeaderSize:]...)
			}
		}
		return nil
	case xn.is(xattrEscWhiteout) && isReg:
		ri.Mode = ri.Mode&^ModeTypeMask | ModeChar
		ri.Rdev = 0
		ri.Size = 0
		return nil
	case xn.is(xattrEscWhiteouts) || xn.is(xattrUserWhiteout) || xn.is(xattrUserWhiteouts):
		return nil
	case xn.hasPrefix(xattrEscapedPrefix):
		name = xattrOverlayPrefix + xn.String()[len(xattrEscapedPrefix):]
	case xn.hasPrefix(xattrOverlayPrefix):
		return nil
	default:
		name = xn.String()
	}
	ri.Xattrs = append(ri.Xattrs, Xattr{Name: name, Value: value})
	return nil
}

// checkDupXattrs refuses an inode with two xattrs of the same name (EROFS
// would only ever return the first; libcomposefs would keep the last).
func checkDupXattrs(ri *rawInode) error {
	if len(ri.Xattrs) < 2 {
		return nil
	}
	names := make(map[string]struct{}, len(ri.Xattrs))
	for _, x := range ri.Xattrs {
		if _, dup := names[x.Name]; dup {
			return invalidf("inode nid %d at offset %d: xattr %q appears twice", ri.Nid, ri.off, x.Name)
		}
		names[x.Name] = struct{}{}
	}
	return nil
}

// loadInode reads inode nid with its xattrs and, for a symlink or a flat
// regular file, its target or content. Directory entries are read by Walk.
//
// slots marks the 32-byte slots used by inodes, their xattrs and inline
// data: in a valid image these never overlap, and refusing overlaps bounds
// the work a crafted image can cause (one xattr area parsed for thousands
// of inodes) by the image size.
func (img *Image) loadInode(nid uint64, slots bitmap, lean bool) (*rawInode, error) {
	ri, err := img.inodeAt(nid)
	if err != nil {
		return nil, err
	}
	ri.lean = lean
	if err := ri.claim(slots, ri.off, ri.isize+ri.xsize); err != nil {
		return nil, err
	}
	switch ri.Type() {
	case ModeDir:
		if ri.layout == layoutChunkBased {
			return nil, invalidf("inode nid %d: chunk-based directory", nid)
		}
	case ModeSymlink:
		if ri.Size == 0 || ri.Size > MaxSymlinkLen {
			return nil, invalidf("inode nid %d at offset %d: symlink target length %d not in 1..%d", nid, ri.off, ri.Size, MaxSymlinkLen)
		}
		blocks, tail, err := img.flatData(ri)
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(blocks, 0) >= 0 || bytes.IndexByte(tail, 0) >= 0 {
			return nil, invalidf("inode nid %d at offset %d: symlink target contains NUL", nid, ri.off)
		}
		if !ri.lean {
			ri.Payload = string(blocks) + string(tail)
		}
	case ModeRegular:
		if ri.layout == layoutChunkBased {
			if err := img.checkChunks(ri); err != nil {
				return nil, err
			}
		} else if ri.Size > 0 {
			blocks, tail, err := img.flatData(ri)
			if err != nil {
				return nil, err
			}
			if len(tail) == 0 {
				ri.Content = blocks
			} else if len(blocks) == 0 {
				ri.Content = tail
			} else {
				ri.Content = append(append(make([]byte, 0, ri.Size), blocks...), tail...)
			}
		}
	}
	if err := img.readXattrs(ri); err != nil {
		return nil, err
	}
	if err := checkDupXattrs(ri); err != nil {
		return nil, err
	}
	return ri, nil
}

// dirent is one parsed directory entry.
type dirent struct {
	name []byte // aliases the image
	nid  uint64
}

// readDir returns the entries of directory ri, checking the EROFS rules:
// nameoffs increasing inside each block, names 1..255 bytes without '/'
// or NUL, strictly sorted over the whole directory, "." and ".." present.
func (img *Image) readDir(ri *rawInode, used bitmap) ([]dirent, error) {
	blocks, tail, err := img.flatData(ri)
	if err != nil {
		return nil, err
	}
	var ents []dirent
	var last []byte
	parseBlock := func(b []byte, off uint64) error {
		if len(b) < erofsDirentSize {
			return invalidf("directory nid %d: block at offset %d of %d bytes is too small for a dirent", ri.Nid, off, len(b))
		}
		le := binary.LittleEndian
		first := uint64(le.Uint16(b[8:]))
		if first < erofsDirentSize || first%erofsDirentSize != 0 || first > uint64(len(b)) {
			return invalidf("directory nid %d: bad first nameoff %d in block at offset %d", ri.Nid, first, off)
		}
		n := first / erofsDirentSize
		for i := range n {
			d := b[i*erofsDirentSize:]
			nameoff := uint64(le.Uint16(d[8:]))
			end := uint64(len(b))
			if i+1 < n {
				end = uint64(le.Uint16(d[erofsDirentSize+8:]))
			}
			if nameoff < first || nameoff >= end || end > uint64(len(b)) {
				return invalidf("directory nid %d: dirent %d at offset %d has nameoff %d out of order or out of range",
					ri.Nid, i, off+i*erofsDirentSize, nameoff)
			}
			nb := b[nameoff:end]
			if i+1 == n {
				if z := bytes.IndexByte(nb, 0); z >= 0 {
					nb = nb[:z]
				}
			}
			where := off + nameoff
			switch {
			case len(nb) == 0:
				return invalidf("directory nid %d: empty name at offset %d", ri.Nid, where)
			case len(nb) > MaxNameLen:
				return invalidf("directory nid %d: name of %d bytes at offset %d is longer than %d", ri.Nid, len(nb), where, MaxNameLen)
			case bytes.IndexByte(nb, '/') >= 0:
				return invalidf("directory nid %d: name %q at offset %d contains '/'", ri.Nid, nb, where)
			case bytes.IndexByte(nb, 0) >= 0:
				return invalidf("directory nid %d: name %q at offset %d contains NUL", ri.Nid, nb, where)
			}
			if len(ents) > 0 && bytes.Compare(nb, last) <= 0 {
				return invalidf("directory nid %d: name %q at offset %d is not sorted after %q", ri.Nid, nb, where, last)
			}
			last = nb
			ents = append(ents, dirent{name: nb, nid: le.Uint64(d[0:])})
		}
		return nil
	}
	base := uint64(ri.iu) * erofsBlockSize
	for i := 0; i < len(blocks); i += erofsBlockSize {
		// Directories never share blocks; refusing it keeps a crafted
		// image from making the walk parse the same blocks over and over.
		if used != nil && used.mark((base+uint64(i))/erofsBlockSize) {
			return nil, invalidf("directory nid %d: block %d is used by another directory", ri.Nid, (base+uint64(i))/erofsBlockSize)
		}
		end := min(i+erofsBlockSize, len(blocks))
		if err := parseBlock(blocks[i:end], base+uint64(i)); err != nil {
			return nil, err
		}
	}
	if len(tail) > 0 {
		if err := parseBlock(tail, ri.off+ri.isize+ri.xsize); err != nil {
			return nil, err
		}
	}
	return ents, nil
}

// Walk visits every name of the image depth-first, children in name
// order, as composefs-info does: "." and ".." are checked and not
// reported, the root's overlay whiteouts (character devices 0:0) are
// skipped, a non-directory inode reached a second time is reported as a
// hardlink, and a directory reached a second time is an error (a loop).
func (img *Image) Walk(fn func(*Entry) error) error { return img.walk(fn, false) }

// WalkInodes is Walk, with every check, for a caller that only wants the
// inodes (fsck, which finds paths again only for a report of damage): the
// Entry's Path, Name and HardlinkOf are empty, the Inode has no Payload and
// its Digest is a view of the image, and fn gets the same *Entry every time
// (it must not keep it).
func (img *Image) WalkInodes(fn func(*Entry) error) error { return img.walk(fn, true) }

// walk is Walk, or with lean WalkInodes. A lean walk builds paths only
// for an error.
func (img *Image) walk(fn func(*Entry) error, lean bool) error {
	w := walker{
		img:       img,
		fn:        fn,
		lean:      lean,
		seen:      newBitmap(uint64(len(img.data)) / erofsSlotSize),
		slots:     newBitmap(uint64(len(img.data)) / erofsSlotSize),
		dirBlocks: newBitmap(uint64(len(img.data)) / erofsBlockSize),
		links:     map[uint64]*Entry{},
	}
	root, err := img.loadInode(img.hdr.RootNid, w.slots, lean)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if root.Type() != ModeDir {
		return invalidf("root inode nid %d is not a directory (mode 0%o)", root.Nid, root.Mode)
	}
	w.seen.mark(root.Nid)
	return w.dir(root, "/", "", root.Nid, 0)
}

type walker struct {
	img       *Image
	fn        func(*Entry) error
	seen      bitmap            // visited nids
	slots     bitmap            // 32-byte slots used by inodes (see loadInode)
	dirBlocks bitmap            // blocks holding directory entries
	links     map[uint64]*Entry // first entry of inodes with nlink > 1 (nil: skipped whiteout)

	lean  bool
	ent   Entry    // a lean walk's only Entry
	names [][]byte // a lean walk's path: the names of the directories it is in
}

// entry returns the Entry to give fn.
func (w *walker) entry(path, name string, depth int, in *Inode, hardlinkOf string) *Entry {
	if w.lean {
		w.ent = Entry{Depth: depth, Inode: in}
		return &w.ent
	}
	return &Entry{Path: path, Name: name, Depth: depth, Inode: in, HardlinkOf: hardlinkOf}
}

// path returns the path of the directory being walked, given as path
// unless the walk is lean.
func (w *walker) path(path string) string {
	if !w.lean {
		return path
	}
	if len(w.names) == 0 {
		return "/"
	}
	var b []byte
	for _, n := range w.names {
		b = append(append(b, '/'), n...)
	}
	return string(b)
}

// child returns the path of the directory's entry name, given as cpath
// unless the walk is lean.
func (w *walker) child(cpath string, name []byte) string {
	if !w.lean {
		return cpath
	}
	if len(w.names) == 0 {
		return "/" + string(name)
	}
	return w.path("") + "/" + string(name)
}

// bitmap is a set of small integers (nids, block numbers), one bit each, so
// that checking a million-inode image costs kilobytes, not a map.
type bitmap []uint64

func newBitmap(n uint64) bitmap { return make(bitmap, n/64+1) }

// mark sets bit i and reports whether it was set before.
func (b bitmap) mark(i uint64) bool {
	w, bit := i/64, uint64(1)<<(i%64)
	if w >= uint64(len(b)) {
		return false // out of range: the caller's bounds check reports it
	}
	was := b[w]&bit != 0
	b[w] |= bit
	return was
}

func (w *walker) dir(ri *rawInode, path, name string, parent uint64, depth int) error {
	if err := w.fn(w.entry(path, name, depth, &ri.Inode, "")); err != nil {
		return err
	}
	if depth >= maxDepth {
		return invalidf("%s: directories nested deeper than %d levels", w.path(path), maxDepth)
	}
	ents, err := w.img.readDir(ri, w.dirBlocks)
	if err != nil {
		return fmt.Errorf("%s: %w", w.path(path), err)
	}
	var dot, dotdot bool
	prefix := path
	if prefix != "/" {
		prefix += "/"
	}
	for _, e := range ents {
		switch {
		case string(e.name) == ".":
			if e.nid != ri.Nid {
				return invalidf("%s: \".\" points to nid %d, not to the directory itself (nid %d)", w.path(path), e.nid, ri.Nid)
			}
			dot = true
			continue
		case string(e.name) == "..":
			if e.nid != parent {
				return invalidf("%s: \"..\" points to nid %d, not to the parent (nid %d)", w.path(path), e.nid, parent)
			}
			dotdot = true
			continue
		}
		var cpath, cname string
		if !w.lean {
			cpath = prefix + string(e.name)
			cname = cpath[len(prefix):]
		}
		if w.seen.mark(e.nid) {
			first, ok := w.links[e.nid]
			if !ok {
				return invalidf("%s: inode nid %d is reached twice: directory loop, hardlinked directory or nlink mismatch", w.child(cpath, e.name), e.nid)
			}
			if first == nil {
				continue // a skipped whiteout
			}
			if err := w.fn(w.entry(cpath, cname, depth+1, first.Inode, first.Path)); err != nil {
				return err
			}
			continue
		}
		ci, err := w.img.loadInode(e.nid, w.slots, w.lean)
		if err != nil {
			return fmt.Errorf("%s: %w", w.child(cpath, e.name), err)
		}
		if isRealWhiteout(ci) {
			// An overlay whiteout (the root's 00..ff): not part of the tree.
			w.links[e.nid] = nil
			continue
		}
		if ci.Type() == ModeDir {
			if w.lean {
				w.names = append(w.names, e.name)
			}
			err := w.dir(ci, cpath, cname, ri.Nid, depth+1)
			if w.lean {
				w.names = w.names[:len(w.names)-1]
			}
			if err != nil {
				return err
			}
			continue
		}
		ent := w.entry(cpath, cname, depth+1, &ci.Inode, "")
		if ci.Nlink > 1 {
			if w.lean {
				ent = &Entry{Depth: depth + 1, Inode: &ci.Inode}
			}
			w.links[e.nid] = ent
		}
		if err := w.fn(ent); err != nil {
			return err
		}
	}
	if !dot || !dotdot {
		return invalidf("%s: directory nid %d lacks \".\" or \"..\"", w.path(path), ri.Nid)
	}
	return nil
}

// isRealWhiteout reports whether the image itself holds a character device
// 0:0 (an overlay whiteout that hides lower layers, like the root's
// 00..ff). libcomposefs' loader skips these; an escaped whiteout (a regular
// file turned back into 0:0 by its xattr) is a user file and stays.
func isRealWhiteout(ri *rawInode) bool {
	return ri.diskType == ModeChar && ri.iu == 0
}

// metacopyOK reports whether a metacopy xattr value carries a digest: a
// SHA-256 one of DigestSize bytes or a SHA-512 one of SHA512DigestSize.
// (A value of another length is a metacopy without digest, as overlayfs
// reads it.)
func metacopyOK(v []byte) bool {
	switch len(v) {
	case metacopyDigestLength:
		return true
	case metacopyHeaderSize + SHA512DigestSize:
		return v[3] == fsverityHashAlgSHA512
	}
	return false
}
