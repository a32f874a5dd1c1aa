package composefs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// The EROFS writer below shares the on-disk constants of reader.go
// (erofsMagic, layout*, the overlay xattr names).
//
// The EROFS writer below reproduces libcomposefs 1.0.8
// (lcfs-writer-erofs.c) byte for byte; the rules are in
// composefs-format-notes.md. Comments name the upstream function a piece of
// logic mirrors, so that a difference found by the golden vectors can be
// traced back.

const (
	blkSize      = 4096
	blkBits      = 12
	slotSize     = 32
	superOffset  = 1024
	superSize    = 128
	compactSize  = 32
	extendedSize = 64
	headerSize   = 32

	composefsMagic        = 0xd078629a
	composefsEROFSVersion = 1
	composefsFlagHasACL   = 1
	featureCompatMtime    = 0x2
	featureCompatFilter   = 0x4

	xattrFilterSeed = 0x25bbe08f
	maxSharedRefs   = 0x80 // EROFS_XATTR_LONG_PREFIX: h_shared_count < 128
	chunkBitsMax    = 31   // EROFS_CHUNK_FORMAT_BLKBITS_MASK
	nullAddr        = 0xffffffff

	// MaxVersion is the highest composefs image format version written.
	MaxVersion = 1
)

const (
	overlayPrefix         = "trusted.overlay."
	overlayEscapePrefix   = "trusted.overlay.overlay."
	xattrOpaque           = "trusted.overlay.opaque"
	xattrEscOpaque        = "trusted.overlay.overlay.opaque"
	xattrUserOpaque       = "user.overlay.opaque"
	xattrACLAccess        = "system.posix_acl_access"
	xattrACLDefault       = "system.posix_acl_default"
	xattrSELinux          = "security.selinux"
	fsverityHashAlgSHA512 = 2
)

// metacopy returns the overlay metacopy xattr of a file of fs-verity
// digest d (struct ovl_metacopy: version 0, length, flags 0, the digest's
// FS_VERITY_HASH_ALG_*, the digest).
func metacopy(n *Node, d []byte) ([]byte, error) {
	alg, ok := DigestAlgorithm(d)
	if !ok {
		return nil, fmt.Errorf("%w: %s: digest of %d bytes", ErrInvalidTree, n.Path(), len(d))
	}
	mc := make([]byte, 4+len(d))
	mc[1] = byte(len(mc))
	mc[3] = byte(alg)
	copy(mc[4:], d)
	return mc, nil
}

// ErrVersion is returned for an unsupported format version range.
var ErrVersion = errors.New("unsupported composefs format version")

type wXattr struct {
	key   string
	value []byte
	ent   int32 // index into the writer's xattr table
	// shared is the byte offset in the shared xattr table, or -1 when the
	// xattr is stored inline in the inode.
	shared int64
}

type wDirent struct {
	name    string
	target  *wInode
	link    *Node // hardlink target, resolved after the tree is built
	primary bool  // the inode is serialized from this entry (not ".", "..", hardlinks)
}

type wInode struct {
	mode      uint32
	nlink     uint32
	uid, gid  uint32
	rdev      uint64
	mtimeSec  int64
	mtimeNsec uint32
	size      uint64
	content   []byte
	target    string // symlink target
	xattrs    []wXattr
	dirents   []wDirent

	ino       uint32
	nid       uint64
	compact   bool
	nBlocks   uint64
	tail      uint64
	ipad      uint64
	xattrSize uint64
	nShared   int
}

func (i *wInode) typ() uint32 { return i.mode & ModeTypeMask }

// setXattr is lcfs_node_set_xattr: replace or append.
func (i *wInode) setXattr(key string, value []byte) {
	for k := range i.xattrs {
		if i.xattrs[k].key == key {
			i.xattrs[k].value = value
			return
		}
	}
	i.xattrs = append(i.xattrs, wXattr{key: key, value: value})
}

func (i *wInode) getXattr(key string) ([]byte, bool) {
	for _, x := range i.xattrs {
		if x.key == key {
			return x.value, true
		}
	}
	return nil, false
}

type wXentry struct {
	x      *wXattr
	count  uint32
	next   int32 // hash chain
	shared int64
}

type writer struct {
	version int
	links   map[*Node]*wInode // hardlink targets
	order   []*wInode         // BFS order

	minSec  int64
	minNsec uint32
	hasACL  bool

	table      []wXentry
	sharedList []*wXattr
	sharedSize uint64
	inodesEnd  uint64
	dataBlocks uint64
}

// WriteImage writes t as a composefs EROFS image, byte-identical to what
// mkcomposefs 1.0.8 writes for the same tree and options (only
// WithMinVersion/WithMaxVersion matter here). The tree is not modified.
func (t *Tree) WriteImage(w io.Writer, opts ...Option) error {
	o := newOptions(opts)
	wr, err := prepare(t, o)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &countWriter{w: bw}
	if err := wr.write(cw); err != nil {
		return err
	}
	return bw.Flush()
}

// Digest returns the composefs digest of t: the fs-verity digest (SHA-256,
// or WithHash's) of the image WriteImage would write, computed without
// keeping the image.
func (t *Tree) Digest(opts ...Option) ([]byte, error) {
	h, err := verity.NewHasher(verity.WithAlgorithm(newOptions(opts).hash))
	if err != nil {
		return nil, err
	}
	if err := t.WriteImage(h, opts...); err != nil {
		return nil, err
	}
	return h.Sum(), nil
}

// Digest scans dir and returns its composefs digest, like
// `mkcomposefs --print-digest-only dir`.
func Digest(dir string, opts ...Option) ([]byte, error) {
	t, err := BuildTree(dir, opts...)
	if err != nil {
		return nil, err
	}
	return t.Digest(opts...)
}

func prepare(t *Tree, o options) (*writer, error) {
	if t == nil || t.Root == nil || !t.Root.IsDir() {
		return nil, fmt.Errorf("%w: the root must be a directory", ErrInvalidTree)
	}
	// lcfs_write_to: validate, then raise the version if whiteouts need it.
	if o.minVersion < 0 || o.maxVersion < 0 || o.minVersion > MaxVersion || o.maxVersion > MaxVersion {
		return nil, fmt.Errorf("%w: %d..%d (supported: 0..%d)", ErrVersion, o.minVersion, o.maxVersion, MaxVersion)
	}
	wr := &writer{version: o.minVersion, links: map[*Node]*wInode{}}
	maxV := max(o.maxVersion, o.minVersion)
	if wr.version < 1 && maxV >= 1 && hasWhiteout(t.Root) {
		wr.version = 1
	}
	if err := wr.collectLinks(t.Root); err != nil {
		return nil, err
	}
	root, err := wr.build(t.Root, nil)
	if err != nil {
		return nil, err
	}
	if err := wr.resolveLinks(root); err != nil {
		return nil, err
	}
	wr.addRootWhiteouts(root)
	wr.computeTree(root)
	wr.computeSharedXattrs()
	if err := wr.computeInodes(); err != nil {
		return nil, err
	}
	return wr, nil
}

func hasWhiteout(n *Node) bool {
	if n.Type() == ModeChar && n.Rdev == 0 {
		return true
	}
	for _, c := range n.Children {
		if c.LinkTo == nil && hasWhiteout(c) {
			return true
		}
	}
	return false
}

// followLink returns the final target of a hardlink chain.
func followLink(n *Node) (*Node, error) {
	start := n
	for steps := 0; n.LinkTo != nil; steps++ {
		n = n.LinkTo
		if n == start || steps > 1<<20 {
			return nil, fmt.Errorf("%w: %s: hardlink loop", ErrInvalidTree, start.Path())
		}
	}
	return n, nil
}

func (wr *writer) collectLinks(n *Node) error {
	for _, c := range n.Children {
		if c.LinkTo != nil {
			t, err := followLink(c)
			if err != nil {
				return err
			}
			if t.Type() == ModeDir {
				return fmt.Errorf("%w: %s: hardlink to directory %s", ErrInvalidTree, c.Path(), t.Path())
			}
			wr.links[t] = nil
			continue
		}
		if c.IsDir() {
			if err := wr.collectLinks(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// build clones n into an inode and applies rewrite_tree_node_for_erofs and
// add_overlayfs_xattrs to it, pre-order.
func (wr *writer) build(n *Node, parent *wInode) (*wInode, error) {
	in := &wInode{
		mode: n.Mode, nlink: n.Nlink, uid: n.UID, gid: n.GID, rdev: n.Rdev,
		mtimeSec: n.MtimeSec, mtimeNsec: n.MtimeNsec, size: n.Size,
		content: n.Content,
	}
	if _, ok := wr.links[n]; ok {
		wr.links[n] = in
	}
	typ := n.Type()
	switch typ {
	case ModeRegular, ModeDir, ModeSymlink, ModeBlock, ModeChar, ModeFifo, ModeSocket:
	default:
		return nil, fmt.Errorf("%w: %s: unknown file type in mode %o", ErrInvalidTree, n.Path(), n.Mode)
	}
	if typ == ModeSymlink {
		if n.Payload == "" || len(n.Payload) > MaxSymlinkLen || strings.IndexByte(n.Payload, 0) >= 0 {
			return nil, fmt.Errorf("%w: %s: symlink target must be 1..%d bytes without NUL", ErrInvalidTree, n.Path(), MaxSymlinkLen)
		}
		in.target = n.Payload
	}
	if typ == ModeRegular && n.Content != nil && uint64(len(n.Content)) != n.Size {
		return nil, fmt.Errorf("%w: %s: inline content of %d bytes for size %d", ErrInvalidTree, n.Path(), len(n.Content), n.Size)
	}
	if typ != ModeRegular {
		in.content = nil
	}
	if len(in.content) == 0 {
		in.content = nil
	}
	if typ == ModeRegular && n.Content == nil && n.Size > maxExternalSize {
		return nil, fmt.Errorf("%w: %s: file size %d is larger than %d", ErrInvalidTree, n.Path(), n.Size, uint64(maxExternalSize))
	}
	if typ != ModeDir && len(n.Children) > 0 {
		return nil, fmt.Errorf("%w: %s: only directories can have children", ErrInvalidTree, n.Path())
	}
	nx := len(n.Xattrs)
	if typ == ModeRegular && n.Size > 0 && in.content == nil {
		nx += 2 // metacopy, redirect
	}
	if nx > 0 {
		in.xattrs = make([]wXattr, 0, nx)
	}
	for _, x := range n.Xattrs {
		if x.Name == "" || len(x.Name) > MaxXattrNameLen || len(x.Value) > MaxXattrValueLen || strings.IndexByte(x.Name, 0) >= 0 {
			return nil, fmt.Errorf("%w: %s: invalid wXattr %q", ErrInvalidTree, n.Path(), x.Name)
		}
		key := x.Name
		if strings.HasPrefix(key, overlayPrefix) {
			key = overlayEscapePrefix + key[len(overlayPrefix):]
		}
		in.setXattr(key, x.Value)
	}
	if typ == ModeRegular && n.Size > 0 && in.content == nil {
		var mc []byte
		if n.Digest != nil {
			var err error
			if mc, err = metacopy(n, n.Digest); err != nil {
				return nil, err
			}
		} else {
			mc = []byte{}
		}
		in.setXattr(xattrMetacopy, mc)
		if n.Payload != "" {
			in.setXattr(xattrRedirect, []byte("/"+n.Payload))
		}
	}
	if typ == ModeChar && n.Rdev == 0 {
		// Escape the whiteout so that overlayfs shows it as a whiteout
		// only in the composefs mount, not in the lower layer itself.
		in.mode = ModeRegular | (n.Mode &^ ModeTypeMask)
		in.size = 0
		in.setXattr(xattrEscWhiteout, []byte{})
		in.setXattr(xattrUserWhiteout, []byte{})
		if parent != nil {
			parent.setXattr(xattrEscWhiteouts, []byte{})
			parent.setXattr(xattrUserWhiteouts, []byte{})
			if wr.version >= 1 {
				parent.setXattr(xattrEscOpaque, []byte("x"))
				parent.setXattr(xattrUserOpaque, []byte("x"))
			}
		}
	}
	if typ != ModeDir {
		return in, nil
	}
	if parent == nil {
		parent = in
	}
	in.dirents = make([]wDirent, 0, len(n.Children)+2)
	in.dirents = append(in.dirents, wDirent{name: ".", target: in}, wDirent{name: "..", target: parent})
	for _, c := range n.Children {
		if err := checkName(c.Name); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalidTree, n.Path(), err)
		}
		if c.LinkTo != nil {
			t, err := followLink(c)
			if err != nil {
				return nil, err
			}
			in.dirents = append(in.dirents, wDirent{name: c.Name, link: t})
			continue
		}
		ci, err := wr.build(c, in)
		if err != nil {
			return nil, err
		}
		in.dirents = append(in.dirents, wDirent{name: c.Name, target: ci, primary: true})
	}
	sortDirents(in.dirents)
	for k := 1; k < len(in.dirents); k++ {
		if in.dirents[k].name == in.dirents[k-1].name {
			return nil, fmt.Errorf("%w: %s: duplicate name %q", ErrInvalidTree, n.Path(), in.dirents[k].name)
		}
	}
	return in, nil
}

func sortDirents(d []wDirent) {
	slices.SortFunc(d, func(a, b wDirent) int { return strings.Compare(a.name, b.name) })
}

func (wr *writer) resolveLinks(root *wInode) error {
	if len(wr.links) == 0 {
		return nil
	}
	var walk func(in *wInode) error
	walk = func(in *wInode) error {
		for k := range in.dirents {
			d := &in.dirents[k]
			if d.link != nil {
				t := wr.links[d.link]
				if t == nil {
					return fmt.Errorf("%w: hardlink %q points outside the tree", ErrInvalidTree, d.name)
				}
				d.target = t
			}
			if d.primary && d.target.typ() == ModeDir {
				if err := walk(d.target); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root)
}

// addRootWhiteouts is set_overlay_opaque + add_overlay_whiteouts: the root
// is opaque and gets the 256 whiteouts "00".."ff" (real char 0/0 devices,
// not escaped) that hide the object store directories when the image is
// mounted with the store as a lower layer.
func (wr *writer) addRootWhiteouts(root *wInode) {
	root.setXattr(xattrOpaque, []byte("y"))
	selinux, hasSELinux := root.getXattr(xattrSELinux)
	const hexdigits = "0123456789abcdef"
	added := false
	existing := root.dirents[:len(root.dirents):len(root.dirents)] // sorted
	for i := range 256 {
		name := string([]byte{hexdigits[i>>4], hexdigits[i&15]})
		if _, found := slices.BinarySearchFunc(existing, name, func(d wDirent, name string) int {
			return strings.Compare(d.name, name)
		}); found {
			continue
		}
		wh := &wInode{
			mode: ModeChar | 0o644, nlink: 1, uid: root.uid, gid: root.gid,
			mtimeSec: root.mtimeSec, mtimeNsec: root.mtimeNsec,
		}
		if hasSELinux {
			wh.xattrs = []wXattr{{key: xattrSELinux, value: selinux}}
		}
		root.dirents = append(root.dirents, wDirent{name: name, target: wh, primary: true})
		added = true
	}
	if added {
		sortDirents(root.dirents)
	}
}

// computeTree is lcfs_compute_tree: BFS order and inode numbers, directory
// link counts, sorted xattrs, the minimum mtime and the ACL flag.
func (wr *writer) computeTree(root *wInode) {
	wr.order = append(wr.order[:0], root)
	wr.minSec, wr.minNsec = root.mtimeSec, root.mtimeNsec
	for idx := 0; idx < len(wr.order); idx++ {
		in := wr.order[idx]
		if in.typ() == ModeDir {
			nl := uint32(2)
			for _, d := range in.dirents {
				if d.primary && d.target.typ() == ModeDir {
					nl++
				}
			}
			in.nlink = nl
		}
		slices.SortFunc(in.xattrs, func(a, b wXattr) int { return strings.Compare(a.key, b.key) })
		if in.mtimeSec < wr.minSec || (in.mtimeSec == wr.minSec && in.mtimeNsec < wr.minNsec) {
			wr.minSec, wr.minNsec = in.mtimeSec, in.mtimeNsec
		}
		in.ino = uint32(idx)
		for _, x := range in.xattrs {
			if x.key == xattrACLAccess || x.key == xattrACLDefault {
				wr.hasACL = true
			}
		}
		for _, d := range in.dirents {
			if d.primary {
				wr.order = append(wr.order, d.target)
			}
		}
	}
}

// xattrIndex is xattr_erofs_entry_index: the EROFS name prefix index and
// the stored name suffix.
func xattrIndex(key string) (uint8, string) {
	for _, p := range []struct {
		prefix string
		index  uint8
	}{
		{"user.", 1},
		{xattrACLAccess, 2},
		{xattrACLDefault, 3},
		{"trusted.", 4},
		{"security.", 6},
	} {
		if strings.HasPrefix(key, p.prefix) {
			return p.index, key[len(p.prefix):]
		}
	}
	return 0, key
}

func xattrEntrySize(x *wXattr) uint64 {
	_, suffix := xattrIndex(x.key)
	return roundUp(uint64(4+len(suffix)+len(x.value)), 4)
}

// nameFilter is compute_erofs_xattr_filter: a 32-bit bloom filter of the
// names of all the inode's xattrs; a set bit means "not present".
func nameFilter(xs []wXattr) uint32 {
	var f uint32
	for _, x := range xs {
		idx, suffix := xattrIndex(x.key)
		f |= 1 << (xxh32([]byte(suffix), xattrFilterSeed+uint32(idx)) & 31)
	}
	return ^f
}

// compareShared is xattrs_ht_sort: key descending, then value length
// descending, then value bytes descending.
func compareShared(a, b *wXattr) int {
	if c := strings.Compare(b.key, a.key); c != 0 {
		return c
	}
	if len(a.value) != len(b.value) {
		return len(b.value) - len(a.value)
	}
	return bytes.Compare(b.value, a.value)
}

// computeSharedXattrs is compute_erofs_shared_xattrs: an xattr (name and
// value) used by more than one inode goes to the shared table.
func (wr *writer) computeSharedXattrs() {
	total := 0
	for _, in := range wr.order {
		total += len(in.xattrs)
	}
	seed := maphash.MakeSeed()
	heads := make(map[uint64]int32, total)
	wr.table = make([]wXentry, 0, total)
	for _, in := range wr.order {
		for k := range in.xattrs {
			x := &in.xattrs[k]
			var h maphash.Hash
			h.SetSeed(seed)
			h.WriteString(x.key)
			h.WriteByte(0)
			h.Write(x.value)
			sum := h.Sum64()
			e, ok := heads[sum]
			if !ok {
				e = -1
			}
			found := int32(-1)
			for i := e; i >= 0; i = wr.table[i].next {
				y := wr.table[i].x
				if y.key == x.key && bytes.Equal(y.value, x.value) {
					found = i
					break
				}
			}
			if found < 0 {
				found = int32(len(wr.table))
				wr.table = append(wr.table, wXentry{x: x, next: e, shared: -1})
				heads[sum] = found
			}
			wr.table[found].count++
			x.ent = found
		}
	}
	var shared []int32
	for i := range wr.table {
		if wr.table[i].count > 1 {
			shared = append(shared, int32(i))
		}
	}
	slices.SortFunc(shared, func(a, b int32) int { return compareShared(wr.table[a].x, wr.table[b].x) })
	var off uint64
	wr.sharedList = wr.sharedList[:0]
	for _, i := range shared {
		wr.table[i].shared = int64(off)
		wr.sharedList = append(wr.sharedList, wr.table[i].x)
		off += xattrEntrySize(wr.table[i].x)
	}
	wr.sharedSize = off
	for _, in := range wr.order {
		n := 0
		for k := range in.xattrs {
			x := &in.xattrs[k]
			x.shared = -1
			if s := wr.table[x.ent].shared; s >= 0 && n < maxSharedRefs {
				x.shared = s
				n++
			}
		}
	}
}

func roundUp(v, a uint64) uint64 { return (v + a - 1) / a * a }

// dirSize is compute_erofs_dir_size: dirents packed greedily into blocks;
// a last partial block of more than half a block is not inlined.
func dirSize(in *wInode) (nBlocks, tail uint64) {
	var blk uint64
	for _, d := range in.dirents {
		l := uint64(12 + len(d.name))
		if blk+l > blkSize {
			nBlocks++
			blk = 0
		}
		blk += l
	}
	if blk > blkSize/2 {
		nBlocks++
		blk = 0
	}
	return nBlocks, blk
}

// chunkBits is compute_erofs_chunk_bitsize.
func chunkBits(size uint64) uint32 {
	var cb uint32 = blkBits
	if size > 1 {
		cb = uint32(bits.Len64(size - 1))
	}
	if cb < blkBits {
		cb = blkBits
	}
	if cb-blkBits > chunkBitsMax {
		cb = chunkBitsMax + blkBits
	}
	return cb
}

func (in *wInode) isChunked() bool {
	return in.typ() == ModeRegular && in.size > 0 && in.content == nil
}

// maxExternalSize bounds external files so that their chunk index (one
// 4-byte entry per 2^43-byte chunk) stays far below a block.
const maxExternalSize = 1 << 52

// maxXattrSize is the largest xattr area an inode can describe: the u16
// i_xattr_icount counts 4-byte words after the 12-byte header.
const maxXattrSize = 12 + 4*(0xffff-1)

// computeInodes is compute_erofs_inodes: placement of every inode, its
// xattrs and inline tail in the metadata area.
func (wr *writer) computeInodes() error {
	pos := uint64(superOffset + superSize)
	for _, in := range wr.order {
		// compute_erofs_inode_size
		switch {
		case in.typ() == ModeDir:
			in.nBlocks, in.tail = dirSize(in)
		case in.typ() == ModeSymlink:
			in.nBlocks, in.tail = 0, uint64(len(in.target))
		case in.typ() == ModeRegular && in.size > 0:
			if in.content != nil {
				in.nBlocks, in.tail = in.size/blkSize, in.size%blkSize
				if in.tail > blkSize/2 {
					in.nBlocks++
					in.tail = 0
				}
			} else {
				cs := uint64(1) << chunkBits(in.size)
				in.nBlocks, in.tail = 0, (in.size+cs-1)/cs*4
			}
		default:
			in.nBlocks, in.tail = 0, 0
		}
		// lcfs_fits_in_erofs_compact
		size := in.size
		if in.typ() == ModeDir {
			size = in.nBlocks*blkSize + in.tail
		}
		in.compact = in.mtimeSec == wr.minSec && in.mtimeNsec == wr.minNsec &&
			in.nlink <= 0xffff && in.uid <= 0xffff && in.gid <= 0xffff && size <= 0xffffffff
		isize := uint64(extendedSize)
		if in.compact {
			isize = compactSize
		}
		// xattr_erofs_inode_size
		var unshared uint64
		in.nShared = 0
		for k := range in.xattrs {
			if in.xattrs[k].shared >= 0 {
				in.nShared++
			} else {
				unshared += xattrEntrySize(&in.xattrs[k])
			}
		}
		in.xattrSize = 0
		if len(in.xattrs) > 0 {
			in.xattrSize = roundUp(12+4*uint64(in.nShared)+unshared, 4)
			if in.xattrSize > maxXattrSize {
				return fmt.Errorf("%w: inode %d: %d bytes of xattrs, more than an EROFS inode can hold", ErrInvalidTree, in.ino, in.xattrSize)
			}
		}
		ppos := pos
		pos = roundUp(pos, slotSize)
		in.ipad = pos - ppos
		pad := wr.tailPadding(in, pos, isize)
		in.ipad += pad
		pos += pad
		wr.dataBlocks += in.nBlocks
		in.nid = pos / slotSize
		pos += isize + in.xattrSize + in.tail
	}
	wr.inodesEnd = roundUp(pos, slotSize)
	return nil
}

// tailPadding is compute_erofs_inode_padding_for_tail; it may also decide
// that the tail is not inlined after all (nBlocks++, tail 0).
func (wr *writer) tailPadding(in *wInode, pos, isize uint64) uint64 {
	nonTail := isize + in.xattrSize
	if in.typ() == ModeSymlink {
		// The kernel's fast symlink path needs the inode and the
		// target in the same block.
		total := nonTail + in.tail
		var pad uint64
		if pos/blkSize != (pos+total-1)/blkSize {
			pad = roundUp(pos, blkSize) - pos
		}
		if total >= blkSize {
			in.nBlocks, in.tail = 1, 0
		}
		return pad
	}
	rem := blkSize - (pos+nonTail)%blkSize
	if rem < in.tail {
		extra := roundUp(rem, slotSize)
		rem = blkSize - (pos+nonTail+extra)%blkSize
		if in.tail <= rem {
			return extra
		}
		in.nBlocks++
		in.tail = 0
	}
	return 0
}

type countWriter struct {
	w *bufio.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

var zeros [blkSize]byte

func (c *countWriter) pad(n uint64) error {
	for n > 0 {
		k := min(n, blkSize)
		if _, err := c.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func (c *countWriter) align(a uint64) error { return c.pad(roundUp(c.n, a) - c.n) }

var errLayout = errors.New("internal error: image layout mismatch")

func (wr *writer) write(c *countWriter) error {
	var hdr [headerSize]byte
	le := binary.LittleEndian
	le.PutUint32(hdr[0:], composefsMagic)
	le.PutUint32(hdr[4:], composefsEROFSVersion)
	if wr.hasACL {
		le.PutUint32(hdr[8:], composefsFlagHasACL)
	}
	le.PutUint32(hdr[12:], uint32(wr.version))
	if _, err := c.Write(hdr[:]); err != nil {
		return err
	}
	if err := c.pad(superOffset - headerSize); err != nil {
		return err
	}
	dataStart := roundUp(wr.inodesEnd+wr.sharedSize, blkSize)
	var sb [superSize]byte
	le.PutUint32(sb[0:], erofsMagic)
	le.PutUint32(sb[8:], featureCompatMtime|featureCompatFilter)
	sb[12] = blkBits
	le.PutUint16(sb[14:], uint16(wr.order[0].nid))
	le.PutUint64(sb[16:], uint64(len(wr.order)))
	le.PutUint64(sb[24:], uint64(wr.minSec))
	le.PutUint32(sb[32:], wr.minNsec)
	le.PutUint32(sb[36:], uint32(dataStart/blkSize+wr.dataBlocks))
	le.PutUint32(sb[40:], 0) // meta_blkaddr
	le.PutUint32(sb[44:], uint32(wr.inodesEnd/blkSize))
	if _, err := c.Write(sb[:]); err != nil {
		return err
	}
	cur := dataStart
	buf := make([]byte, 0, 4096)
	for _, in := range wr.order {
		if err := c.pad(in.ipad); err != nil {
			return err
		}
		if c.n != in.nid*slotSize {
			return fmt.Errorf("%w: wInode %d at %d, expected %d", errLayout, in.ino, c.n, in.nid*slotSize)
		}
		buf = wr.appendInode(buf[:0], in, &cur)
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	if err := c.align(slotSize); err != nil {
		return err
	}
	if c.n != wr.inodesEnd {
		return fmt.Errorf("%w: inodes end at %d, expected %d", errLayout, c.n, wr.inodesEnd)
	}
	for _, x := range wr.sharedList {
		buf = appendXattr(buf[:0], x)
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	if err := c.align(blkSize); err != nil {
		return err
	}
	if c.n != dataStart {
		return fmt.Errorf("%w: data starts at %d, expected %d", errLayout, c.n, dataStart)
	}
	for _, in := range wr.order {
		if in.nBlocks == 0 {
			continue
		}
		switch in.typ() {
		case ModeDir:
			if err := wr.writeDirBlocks(c, in); err != nil {
				return err
			}
		case ModeRegular:
			// write_erofs_file_content
			for b := uint64(0); b < in.nBlocks; b++ {
				off := b * blkSize
				end := min(in.size, off+blkSize)
				if _, err := c.Write(in.content[off:end]); err != nil {
					return err
				}
			}
			if err := c.align(blkSize); err != nil {
				return err
			}
		case ModeSymlink:
			if _, err := io.WriteString(c, in.target); err != nil {
				return err
			}
			if err := c.align(blkSize); err != nil {
				return err
			}
		}
	}
	if c.n != cur {
		return fmt.Errorf("%w: image ends at %d, expected %d", errLayout, c.n, cur)
	}
	return nil
}

// appendInode is write_erofs_inode_data: the inode, its xattrs and its
// inline tail.
func (wr *writer) appendInode(b []byte, in *wInode, cur *uint64) []byte {
	le := binary.LittleEndian
	typ := in.typ()
	layout := uint16(layoutFlatPlain)
	if in.tail > 0 {
		layout = layoutFlatInline
	}
	var size uint64
	var iu uint32
	switch typ {
	case ModeDir:
		size = in.nBlocks*blkSize + in.tail
	case ModeSymlink:
		size = uint64(len(in.target))
	case ModeRegular:
		size = in.size
	}
	var chunkCount uint64
	switch {
	case typ == ModeChar || typ == ModeBlock:
		iu = uint32(in.rdev)
	case in.isChunked():
		cb := chunkBits(in.size)
		layout = layoutChunkBased
		chunkCount = (in.size + (1 << cb) - 1) >> cb
		iu = cb - blkBits
	case in.nBlocks > 0 && (typ == ModeDir || typ == ModeRegular || typ == ModeSymlink):
		iu = uint32(*cur / blkSize)
		*cur += in.nBlocks * blkSize
	}
	var icount uint16
	if in.xattrSize > 0 {
		icount = uint16((in.xattrSize-12)/4 + 1)
	}
	if in.compact {
		var r [compactSize]byte
		le.PutUint16(r[0:], layout<<1)
		le.PutUint16(r[2:], icount)
		le.PutUint16(r[4:], uint16(in.mode))
		le.PutUint16(r[6:], uint16(in.nlink))
		le.PutUint32(r[8:], uint32(size))
		le.PutUint32(r[16:], iu)
		le.PutUint32(r[20:], in.ino)
		le.PutUint16(r[24:], uint16(in.uid))
		le.PutUint16(r[26:], uint16(in.gid))
		b = append(b, r[:]...)
	} else {
		var r [extendedSize]byte
		le.PutUint16(r[0:], layout<<1|1)
		le.PutUint16(r[2:], icount)
		le.PutUint16(r[4:], uint16(in.mode))
		le.PutUint64(r[8:], size)
		le.PutUint32(r[16:], iu)
		le.PutUint32(r[20:], in.ino)
		le.PutUint32(r[24:], in.uid)
		le.PutUint32(r[28:], in.gid)
		le.PutUint64(r[32:], uint64(in.mtimeSec))
		le.PutUint32(r[40:], in.mtimeNsec)
		le.PutUint32(r[44:], in.nlink)
		b = append(b, r[:]...)
	}
	if in.xattrSize > 0 {
		start := len(b)
		b = le.AppendUint32(b, nameFilter(in.xattrs))
		b = append(b, byte(in.nShared), 0, 0, 0, 0, 0, 0, 0)
		for k := range in.xattrs {
			if s := in.xattrs[k].shared; s >= 0 {
				b = le.AppendUint32(b, uint32((wr.inodesEnd%blkSize+uint64(s))/4))
			}
		}
		for k := range in.xattrs {
			if in.xattrs[k].shared < 0 {
				b = appendXattr(b, &in.xattrs[k])
			}
		}
		for uint64(len(b)-start) < in.xattrSize {
			b = append(b, 0)
		}
	}
	switch {
	case typ == ModeDir && in.tail > 0:
		first, _ := dirBlocks(in)
		b = appendDirChunk(b, in.dirents[first:])
	case typ == ModeSymlink && in.tail > 0:
		b = append(b, in.target...)
	case typ == ModeRegular && in.content != nil && in.tail > 0:
		b = append(b, in.content[in.size-in.tail:]...)
	case in.isChunked():
		for range chunkCount {
			b = le.AppendUint32(b, nullAddr)
		}
	}
	return b
}

func appendXattr(b []byte, x *wXattr) []byte {
	idx, suffix := xattrIndex(x.key)
	start := len(b)
	b = append(b, byte(len(suffix)), idx)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(x.value)))
	b = append(b, suffix...)
	b = append(b, x.value...)
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// dirBlocks splits the dirents the way write_erofs_dentries does and
// returns the index of the first dirent of the inline tail and the start
// indexes of the full blocks.
func dirBlocks(in *wInode) (tailStart int, blockStarts []int) {
	var blk uint64
	first := 0
	for i, d := range in.dirents {
		l := uint64(12 + len(d.name))
		if blk+l > blkSize {
			blockStarts = append(blockStarts, first)
			blk = 0
			first = i
		}
		blk += l
	}
	if uint64(len(blockStarts)) < in.nBlocks {
		blockStarts = append(blockStarts, first)
		first = len(in.dirents)
	}
	return first, blockStarts
}

func appendDirChunk(b []byte, ds []wDirent) []byte {
	le := binary.LittleEndian
	nameoff := 12 * len(ds)
	for _, d := range ds {
		b = le.AppendUint64(b, d.target.nid)
		b = le.AppendUint16(b, uint16(nameoff))
		b = append(b, fileType(d.target.mode), 0)
		nameoff += len(d.name)
	}
	for _, d := range ds {
		b = append(b, d.name...)
	}
	return b
}

func (wr *writer) writeDirBlocks(c *countWriter, in *wInode) error {
	tailStart, starts := dirBlocks(in)
	buf := make([]byte, 0, blkSize)
	for k, s := range starts {
		end := tailStart
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		buf = appendDirChunk(buf[:0], in.dirents[s:end])
		if _, err := c.Write(buf); err != nil {
			return err
		}
		if err := c.align(blkSize); err != nil {
			return err
		}
	}
	return nil
}

// fileType maps a mode to an EROFS dirent file type (EROFS_FT_*).
func fileType(mode uint32) byte {
	switch mode & ModeTypeMask {
	case ModeRegular:
		return 1
	case ModeDir:
		return 2
	case ModeChar:
		return 3
	case ModeBlock:
		return 4
	case ModeFifo:
		return 5
	case ModeSocket:
		return 6
	case ModeSymlink:
		return 7
	}
	return 0
}
