package composefs

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// This file writes composefs-rs' legacy "V2" EROFS format (crates/composefs,
// erofs/writer.rs, FormatVersion::V2 with FormatEpoch::Epoch2): the format
// composefs-rs wrote before it learnt to write libcomposefs' format, and
// still writes for repositories initialised with `--erofs-version 2`. A
// digest computed here equals what `cfsctl --hash sha256 --erofs-version 2
// oci compute-id` prints for the same tree. (composefs-rs' current default,
// V1, is libcomposefs' format with composefs_version 1: writer.go with
// WithMinVersion(1).)
//
// It differs from libcomposefs 1.0.8's format (writer.go): inodes in
// depth-first order, all extended, ino = nid, no build time, no overlay
// whiteouts or opaque xattr on the root, seconds-only mtimes, shared xattrs
// (numbered by absolute offset) for every (name, value) pair used more than
// once, a single chunk (chunk format 31) for external files. The comments
// name the composefs-rs function a piece mirrors.

// rsComposefsVersion is the composefs header version composefs-rs writes
// for V2.
const rsComposefsVersion = 2

// rsXattrPrefixes is composefs-rs' format::XATTR_PREFIXES (EROFS name
// indexes 0..6), matched from the last one back.
var rsXattrPrefixes = [...]string{"", "user.", "system.posix_acl_access", "system.posix_acl_default", "trusted.", "lustre.", "security."}

type rsXattr struct {
	prefix uint8
	suffix string
	value  string
}

func (x rsXattr) key() string { return string(rune(x.prefix)) + x.suffix + "\x00" + x.value }

// rsCompare orders xattrs as the derived Ord of composefs-rs' XAttr:
// prefix, then suffix bytes, then value bytes.
func rsCompare(a, b rsXattr) int {
	if a.prefix != b.prefix {
		return int(a.prefix) - int(b.prefix)
	}
	if c := strings.Compare(a.suffix, b.suffix); c != 0 {
		return c
	}
	return strings.Compare(a.value, b.value)
}

func (x rsXattr) size() uint64 { return roundUp(4+uint64(len(x.suffix))+uint64(len(x.value)), 4) }

type rsXattrs struct {
	shared []int
	local  []rsXattr
	filter uint32
}

// add is InodeXAttrs::add.
func (xs *rsXattrs) add(name string, value []byte) {
	for i := len(rsXattrPrefixes) - 1; i >= 0; i-- {
		suffix, ok := strings.CutPrefix(name, rsXattrPrefixes[i])
		if !ok {
			continue
		}
		xs.filter |= 1 << (xxh32([]byte(suffix), xattrFilterSeed+uint32(i)) % 32)
		xs.local = append(xs.local, rsXattr{prefix: uint8(i), suffix: suffix, value: string(value)})
		return
	}
}

// size is what InodeXAttrs::write writes.
func (xs *rsXattrs) size() uint64 {
	if xs.filter == 0 {
		return 0
	}
	n := 12 + 4*uint64(len(xs.shared)) // header: name filter, shared count, reserved
	for _, x := range xs.local {
		n += x.size()
	}
	return n
}

type rsDirent struct {
	name  string
	inode int
	ftype byte
}

// rsDir is composefs-rs' writer Directory: entries split into full blocks
// and an inline tail.
type rsDir struct {
	blocks [][]rsDirent
	inline []rsDirent
	size   uint64
	nlink  uint32
}

// newRSDir is Directory::from_entries.
func newRSDir(entries []rsDirent) *rsDir {
	d := &rsDir{}
	var rest []rsDirent
	var n uint64
	for _, e := range entries {
		sz := uint64(12 + len(e.name))
		if e.ftype == fileType(ModeDir) {
			d.nlink++
		}
		n += sz
		if n <= blkSize {
			rest = append(rest, e)
		} else {
			d.blocks = append(d.blocks, rest)
			rest = []rsDirent{e}
			n = sz
		}
	}
	if n > blkSize/2 {
		d.blocks = append(d.blocks, rest)
		rest, n = nil, 0
	}
	d.inline = rest
	d.size = blkSize*uint64(len(d.blocks)) + n
	return d
}

type rsInode struct {
	n      *Node // metadata: mode, uid, gid, mtime
	typ    uint32
	dir    *rsDir
	size   uint64
	inline []byte // regular inline content or symlink target
	digest []byte // external regular file
	rdev   uint32
	nlink  uint32
	xattrs rsXattrs
}

// layout returns composefs-rs' (DataLayout, u) of an inode:
// Directory::inode_meta and Leaf::inode_meta.
func (in *rsInode) layout(blockOff uint64) (uint16, uint32) {
	switch {
	case in.dir != nil:
		switch {
		case len(in.dir.inline) == 0:
			return layoutFlatPlain, uint32(blockOff / blkSize)
		case len(in.dir.blocks) > 0:
			return layoutFlatInline, uint32(blockOff / blkSize)
		}
		return layoutFlatInline, 0
	case in.digest != nil:
		return layoutChunkBased, rsChunkFormat
	case in.typ == ModeChar || in.typ == ModeBlock:
		return layoutFlatPlain, in.rdev
	case in.typ == ModeSymlink || len(in.inline) > 0:
		return layoutFlatInline, 0
	}
	return layoutFlatPlain, 0
}

// rsChunkFormat is the chunk format V2 writes for every external file
// (Epoch2 hardcodes 31: one chunk, whatever the size).
const rsChunkFormat = 31

// rsCollector is InodeCollector: inodes in depth-first pre-order, each
// hardlinked inode once.
type rsCollector struct {
	inodes []*rsInode
	links  map[*Node]int
	names  map[*Node]uint32
}

func (c *rsCollector) push(in *rsInode) int {
	n := in.n
	// Extra xattrs come first (push_inode), then the file's own, sorted
	// by name, trusted.overlay.* escaped.
	if in.digest != nil {
		mc, _ := metacopy(n, in.digest) // leaf checked the digest's size
		in.xattrs.add(xattrMetacopy, mc)
		in.xattrs.add(xattrRedirect, []byte("/"+ObjectPath(in.digest)))
	}
	xs := slices.Clone(n.Xattrs)
	slices.SortStableFunc(xs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	for i, x := range xs {
		if i+1 < len(xs) && xs[i+1].Name == x.Name {
			continue // a map keeps the last value
		}
		name := x.Name
		if rest, ok := strings.CutPrefix(name, overlayPrefix); ok {
			name = overlayEscapePrefix + rest
		}
		in.xattrs.add(name, x.Value)
	}
	c.inodes = append(c.inodes, in)
	return len(c.inodes) - 1
}

func (c *rsCollector) leaf(n *Node) (int, error) {
	if i, ok := c.links[n]; ok {
		return i, nil
	}
	in := &rsInode{n: n, typ: n.Type(), nlink: c.names[n]}
	switch in.typ {
	case ModeRegular:
		switch {
		case n.Size == 0:
		case n.Content != nil:
			if uint64(len(n.Content)) != n.Size {
				return 0, fmt.Errorf("%w: %s: inline content of %d bytes for size %d", ErrInvalidTree, n.Path(), len(n.Content), n.Size)
			}
			in.inline, in.size = n.Content, n.Size
		case len(n.Digest) == DigestSize || len(n.Digest) == SHA512DigestSize:
			in.digest, in.size = n.Digest, n.Size
		default:
			return 0, fmt.Errorf("%w: %s: a file stored outside the image needs its fs-verity digest", ErrInvalidTree, n.Path())
		}
	case ModeSymlink:
		if n.Payload == "" || len(n.Payload) > MaxSymlinkLen {
			return 0, fmt.Errorf("%w: %s: symlink target must be 1..%d bytes", ErrInvalidTree, n.Path(), MaxSymlinkLen)
		}
		in.inline, in.size = []byte(n.Payload), uint64(len(n.Payload))
	case ModeChar, ModeBlock:
		in.rdev = uint32(n.Rdev)
	case ModeFifo, ModeSocket:
	default:
		return 0, fmt.Errorf("%w: %s: unknown file type in mode %o", ErrInvalidTree, n.Path(), n.Mode)
	}
	i := c.push(in)
	if in.nlink > 1 {
		c.links[n] = i
	}
	return i, nil
}

// dir is collect_dir: the directory's slot first, then its entries in
// name order, "." and ".." sorted in.
func (c *rsCollector) dir(n *Node, parent int) (int, error) {
	me := c.push(&rsInode{n: n, typ: ModeDir})
	if parent < 0 {
		parent = me
	}
	entries := make([]rsDirent, 0, len(n.Children)+2)
	for _, ch := range n.Children {
		if err := checkName(ch.Name); err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrInvalidTree, n.Path(), err)
		}
		t, err := followLink(ch)
		if err != nil {
			return 0, err
		}
		var i int
		if t.IsDir() {
			if ch.LinkTo != nil {
				return 0, fmt.Errorf("%w: %s: hardlink to directory %s", ErrInvalidTree, ch.Path(), t.Path())
			}
			i, err = c.dir(t, me)
		} else {
			i, err = c.leaf(t)
		}
		if err != nil {
			return 0, err
		}
		entries = append(entries, rsDirent{name: ch.Name, inode: i, ftype: fileType(c.inodes[i].typ)})
	}
	for _, d := range []rsDirent{{".", me, fileType(ModeDir)}, {"..", parent, fileType(ModeDir)}} {
		at, _ := slices.BinarySearchFunc(entries, d.name, func(e rsDirent, name string) int { return strings.Compare(e.name, name) })
		entries = slices.Insert(entries, at, d)
	}
	c.inodes[me].dir = newRSDir(entries)
	c.inodes[me].size = c.inodes[me].dir.size
	return me, nil
}

// countNames counts the names of every non-directory inode (its nlink).
func countNames(root *Node, names map[*Node]uint32) error {
	for _, ch := range root.Children {
		t, err := followLink(ch)
		if err != nil {
			return err
		}
		if ch.LinkTo == nil && t.IsDir() {
			if err := countNames(t, names); err != nil {
				return err
			}
			continue
		}
		names[t]++
	}
	return nil
}

// shareXattrs is share_xattrs: every (name, value) pair found more than
// once becomes shared, numbered in sorted order.
func shareXattrs(inodes []*rsInode) []rsXattr {
	count := map[string]int{}
	first := map[string]rsXattr{}
	for _, in := range inodes {
		for _, x := range in.xattrs.local {
			k := x.key()
			count[k]++
			first[k] = x
		}
	}
	var shared []rsXattr
	for k, n := range count {
		if n > 1 {
			shared = append(shared, first[k])
		}
	}
	slices.SortFunc(shared, rsCompare)
	index := make(map[string]int, len(shared))
	for i, x := range shared {
		index[x.key()] = i
	}
	for _, in := range inodes {
		local := in.xattrs.local[:0]
		for _, x := range in.xattrs.local {
			if i, ok := index[x.key()]; ok {
				in.xattrs.shared = append(in.xattrs.shared, i)
			} else {
				local = append(local, x)
			}
		}
		in.xattrs.local = local
	}
	return shared
}

// rsLayout holds the offsets the first pass finds (write_erofs' Offset
// kinds): the second pass writes the same bytes with them filled in.
type rsLayout struct {
	inode, xattr, block []uint64
	end                 uint64
}

type rsOut struct {
	w   *bufio.Writer // nil in the first pass
	pos uint64
	rec *rsLayout // recorded (first pass)
	lay *rsLayout // looked up (second pass; zero in the first)
	err error
}

func (o *rsOut) write(p []byte) {
	if o.w != nil && o.err == nil {
		_, o.err = o.w.Write(p)
	}
	o.pos += uint64(len(p))
}

var rsZeros [blkSize]byte

func (o *rsOut) pad(a uint64) {
	for n := roundUp(o.pos, a) - o.pos; n > 0; {
		k := min(n, blkSize)
		o.write(rsZeros[:k])
		n -= k
	}
}

func (o *rsOut) nid(i int) uint64 {
	if o.lay == nil {
		return 0
	}
	return o.lay.inode[i] / slotSize
}

// sharedID is Output::get_xattr_v2: the xattr's absolute offset in 4-byte
// units (V2 leaves xattr_blkaddr 0).
func (o *rsOut) sharedID(i int) uint32 {
	if o.lay == nil {
		return 0
	}
	return uint32(o.lay.xattr[i] / 4)
}

func (o *rsOut) writeXattr(x rsXattr) {
	var h [4]byte
	h[0] = byte(len(x.suffix))
	h[1] = x.prefix
	binary.LittleEndian.PutUint16(h[2:], uint16(len(x.value)))
	o.write(h[:])
	o.write([]byte(x.suffix))
	o.write([]byte(x.value))
	o.pad(4)
}

func (o *rsOut) writeDirents(ds []rsDirent) {
	nameOff := 12 * len(ds)
	b := make([]byte, 0, 12*len(ds))
	for _, d := range ds {
		b = binary.LittleEndian.AppendUint64(b, o.nid(d.inode))
		b = binary.LittleEndian.AppendUint16(b, uint16(nameOff))
		b = append(b, d.ftype, 0)
		nameOff += len(d.name)
	}
	o.write(b)
	for _, d := range ds {
		o.write([]byte(d.name))
	}
}

// writeInode is Inode::write_inode for format 1.1 (always extended).
func (o *rsOut) writeInode(in *rsInode, idx int) {
	var blockOff uint64
	if o.lay != nil {
		blockOff = o.lay.block[idx]
	}
	layout, u := in.layout(blockOff)
	xsize := in.xattrs.size()
	o.pad(slotSize)
	if layout == layoutFlatInline {
		// pad_inline_tail_v2: the inline data must not cross into
		// another block than the end of the inode's metadata.
		start := o.pos + extendedSize + xsize
		end := start + in.size%blkSize
		if (start-1)/blkSize != end/blkSize {
			o.write(make([]byte, blkSize-(start-1)%blkSize))
			o.pad(slotSize)
		}
	}
	if o.rec != nil {
		o.rec.inode = append(o.rec.inode, o.pos)
	}
	var icount uint16
	if xsize > 0 {
		icount = uint16(1 + (xsize-12)/4)
	}
	nlink := in.nlink
	if in.dir != nil {
		nlink = in.dir.nlink
	}
	r := make([]byte, extendedSize)
	le := binary.LittleEndian
	le.PutUint16(r[0:], 1|layout<<1) // EROFS_INODE_LAYOUT_EXTENDED | datalayout
	le.PutUint16(r[2:], icount)
	le.PutUint16(r[4:], uint16(in.typ|in.n.Mode&^ModeTypeMask))
	le.PutUint64(r[8:], in.size)
	le.PutUint32(r[16:], u)
	le.PutUint32(r[20:], uint32(o.pos/slotSize))
	le.PutUint32(r[24:], in.n.UID)
	le.PutUint32(r[28:], in.n.GID)
	le.PutUint64(r[32:], uint64(in.n.MtimeSec))
	le.PutUint32(r[44:], nlink)
	o.write(r)
	if in.xattrs.filter != 0 {
		h := make([]byte, 12)
		le.PutUint32(h[0:], ^in.xattrs.filter)
		h[4] = byte(len(in.xattrs.shared))
		o.write(h)
		for _, i := range in.xattrs.shared {
			o.write(le.AppendUint32(nil, o.sharedID(i)))
		}
		for _, x := range in.xattrs.local {
			o.writeXattr(x)
		}
	}
	switch {
	case in.dir != nil:
		o.writeDirents(in.dir.inline)
	case in.digest != nil:
		o.write([]byte{0xff, 0xff, 0xff, 0xff}) // null chunk
	default:
		o.write(in.inline)
	}
	o.pad(slotSize)
}

// emit is write_erofs.
func (o *rsOut) emit(inodes []*rsInode, shared []rsXattr) {
	le := binary.LittleEndian
	hdr := make([]byte, headerSize)
	le.PutUint32(hdr[0:], composefsMagic)
	le.PutUint32(hdr[4:], composefsEROFSVersion)
	le.PutUint32(hdr[12:], rsComposefsVersion)
	o.write(hdr)
	o.pad(superOffset)
	sb := make([]byte, superSize)
	le.PutUint32(sb[0:], erofsMagic)
	le.PutUint32(sb[8:], featureCompatMtime|featureCompatFilter)
	sb[12] = blkBits
	le.PutUint16(sb[14:], uint16(o.nid(0)))
	le.PutUint64(sb[16:], uint64(len(inodes)))
	if o.lay != nil {
		le.PutUint32(sb[36:], uint32(o.lay.end/blkSize))
	}
	o.write(sb)
	for i, in := range inodes {
		o.writeInode(in, i)
	}
	o.pad(slotSize)
	for _, x := range shared {
		if o.rec != nil {
			o.rec.xattr = append(o.rec.xattr, o.pos)
		}
		o.writeXattr(x)
	}
	o.pad(blkSize)
	for _, in := range inodes {
		if o.rec != nil {
			o.rec.block = append(o.rec.block, o.pos)
		}
		if in.dir == nil {
			continue
		}
		for _, b := range in.dir.blocks {
			o.writeDirents(b)
			o.pad(blkSize)
		}
	}
	if o.rec != nil {
		o.rec.end = o.pos
	}
}

// WriteComposefsRSImage writes t as the EROFS image composefs-rs' legacy V2
// writer makes of the same tree. Only what composefs-rs keeps
// is used: seconds of mtimes, mode, uid, gid, xattrs, contents; link counts
// of files are the number of their names in the tree. Regular files above
// 64 bytes need Digest (their content is referenced by it); files up to
// that size should have their bytes in Content.
func (t *Tree) WriteComposefsRSImage(w io.Writer) error {
	if t == nil || t.Root == nil || !t.Root.IsDir() {
		return fmt.Errorf("%w: the root must be a directory", ErrInvalidTree)
	}
	c := &rsCollector{links: map[*Node]int{}, names: map[*Node]uint32{}}
	if err := countNames(t.Root, c.names); err != nil {
		return err
	}
	if _, err := c.dir(t.Root, -1); err != nil {
		return err
	}
	shared := shareXattrs(c.inodes)
	first := &rsOut{rec: &rsLayout{}}
	first.emit(c.inodes, shared)
	bw := bufio.NewWriterSize(w, 256<<10)
	second := &rsOut{w: bw, lay: first.rec}
	second.emit(c.inodes, shared)
	if second.err != nil {
		return second.err
	}
	return bw.Flush()
}

// ComposefsRSDigest returns the fs-verity digest of the image
// WriteComposefsRSImage writes: what `cfsctl --hash sha256 --erofs-version 2
// compute-id` prints for the same tree.
func (t *Tree) ComposefsRSDigest() ([]byte, error) {
	h, err := verity.NewHasher()
	if err != nil {
		return nil, err
	}
	if err := t.WriteComposefsRSImage(h); err != nil {
		return nil, err
	}
	return h.Sum(), nil
}
