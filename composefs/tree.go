package composefs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// File type bits of Node.Mode (the st_mode S_IF* values).
const (
	ModeTypeMask = 0o170000
	ModeSocket   = 0o140000
	ModeSymlink  = 0o120000
	ModeRegular  = 0o100000
	ModeBlock    = 0o060000
	ModeDir      = 0o040000
	ModeChar     = 0o020000
	ModeFifo     = 0o010000
)

const (
	// MaxInlineFromDir is the largest regular file mkcomposefs stores
	// inside the image when reading a directory
	// (LCFS_BUILD_INLINE_FILE_SIZE_LIMIT); bigger files become objects.
	MaxInlineFromDir = 64
	// MaxInlineFromDump is the largest inline content accepted from a
	// composefs-dump(5) file.
	MaxInlineFromDump = 5000
	// MaxNameLen is the longest file name (LCFS_MAX_NAME_LENGTH).
	MaxNameLen = 255
	// MaxSymlinkLen is the longest symlink target (PATH_MAX - 1).
	MaxSymlinkLen = 4095
	// MaxXattrNameLen is XATTR_NAME_MAX.
	MaxXattrNameLen = 255
	// MaxXattrValueLen is the largest xattr value an EROFS entry can hold.
	MaxXattrValueLen = 65535
	// DigestSize is the size of a SHA-256 fs-verity digest.
	DigestSize = 32
	// SHA512DigestSize is the size of a SHA-512 fs-verity digest (the
	// default of composefs-rs' cfsctl and of bootc).
	SHA512DigestSize = 64
)

// DigestAlgorithm returns the fs-verity algorithm of a file digest by its
// size: SHA-256 (DigestSize) or SHA-512 (SHA512DigestSize).
func DigestAlgorithm(d []byte) (verity.Algorithm, bool) {
	switch len(d) {
	case DigestSize:
		return verity.SHA256, true
	case SHA512DigestSize:
		return verity.SHA512, true
	}
	return 0, false
}

// ErrInvalidTree is returned (wrapped) when a tree cannot be written as a
// composefs image.
var ErrInvalidTree = errors.New("invalid composefs tree")

// Xattr is one extended attribute. Value may contain any bytes.
type Xattr struct {
	Name  string
	Value []byte
}

// Node is one entry of a Tree: a file, directory, symlink, device, fifo or
// socket, or a hardlink to another Node (LinkTo set). Only the metadata is
// held in memory; regular file contents are referenced by Payload/Digest,
// except small files whose bytes are in Content.
type Node struct {
	Name      string // "" for the root
	Parent    *Node  // nil for the root
	Mode      uint32 // st_mode: type and permission bits
	Nlink     uint32 // ignored for directories (recomputed)
	UID, GID  uint32
	Rdev      uint64 // glibc dev_t encoding, as in struct stat
	MtimeSec  int64
	MtimeNsec uint32
	Size      uint64 // ignored for directories
	Xattrs    []Xattr
	// Content is the inline content of a small regular file (len == Size).
	Content []byte
	// Payload is the symlink target, or for a regular file stored outside
	// the image its object path "XX/YYYY..." relative to the object store.
	Payload string
	// Digest is the fs-verity SHA-256 digest of a regular file's content
	// (nil if unknown, e.g. from a dump without DIGEST).
	Digest []byte
	// Children are kept sorted bytewise by name (EROFS lookups binary search).
	Children []*Node
	// LinkTo makes this entry a hardlink: the name refers to LinkTo's inode
	// and all other fields are ignored. Never a directory.
	LinkTo *Node
}

// Type returns the file type bits of n.Mode.
func (n *Node) Type() uint32 { return n.Mode & ModeTypeMask }

// IsDir reports whether n is a directory (and not a hardlink).
func (n *Node) IsDir() bool { return n.LinkTo == nil && n.Type() == ModeDir }

// Path returns the absolute path of n inside the tree ("/" for the root).
func (n *Node) Path() string {
	if n.Parent == nil {
		return "/"
	}
	var parts []string
	for p := n; p.Parent != nil; p = p.Parent {
		parts = append(parts, p.Name)
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

// Lookup returns the child called name, or nil.
func (n *Node) Lookup(name string) *Node {
	i, ok := slices.BinarySearchFunc(n.Children, name, func(c *Node, name string) int {
		return strings.Compare(c.Name, name)
	})
	if !ok {
		return nil
	}
	return n.Children[i]
}

// AddChild inserts c under the directory n, keeping the children sorted.
func (n *Node) AddChild(c *Node) error {
	if n.Type() != ModeDir || n.LinkTo != nil {
		return fmt.Errorf("%w: %s: parent is not a directory", ErrInvalidTree, n.Path())
	}
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("%w: in %s: %w", ErrInvalidTree, n.Path(), err)
	}
	i, ok := slices.BinarySearchFunc(n.Children, c.Name, func(c *Node, name string) int {
		return strings.Compare(c.Name, name)
	})
	if ok {
		return fmt.Errorf("%w: %s: %w", ErrInvalidTree, c.Name, errExists)
	}
	c.Parent = n
	n.Children = slices.Insert(n.Children, i, c)
	return nil
}

var errExists = errors.New("already exists")

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case name == "." || name == "..":
		return fmt.Errorf("file name %q is reserved", name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("file name of %d bytes is longer than %d", len(name), MaxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL", name)
	}
	return nil
}

// SetXattr sets an xattr, replacing the value of an existing one of the
// same name (as lcfs_node_set_xattr does).
func (n *Node) SetXattr(name string, value []byte) {
	for i := range n.Xattrs {
		if n.Xattrs[i].Name == name {
			n.Xattrs[i].Value = value
			return
		}
	}
	n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: value})
}

// Tree is an in-memory composefs tree.
type Tree struct {
	Root *Node
	// SourceDir is the directory the tree was scanned from ("" for a tree
	// parsed from a dump): regular files' contents are read from there.
	SourceDir string
}

// SourcePath returns where n's content lives on disk, or "" if the tree
// did not come from a directory.
func (t *Tree) SourcePath(n *Node) string {
	if t.SourceDir == "" {
		return ""
	}
	return filepath.Join(t.SourceDir, n.Path())
}

// Walk calls fn for every entry in depth-first pre-order (children in
// name order), including hardlink entries. Returning an error stops the
// walk and returns that error.
func (t *Tree) Walk(fn func(n *Node) error) error {
	var walk func(n *Node) error
	walk = func(n *Node) error {
		if err := fn(n); err != nil {
			return err
		}
		if !n.IsDir() {
			return nil
		}
		for _, c := range n.Children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(t.Root)
}

// Object is a regular file whose content lives outside the image.
type Object struct {
	Node    *Node
	Path    string // path inside the tree
	Source  string // path on disk ("" for a tree parsed from a dump)
	Payload string // object path relative to the store, "XX/YYYY..."
	Digest  []byte // fs-verity digest (nil if unknown)
	Size    uint64
}

// WalkObjects calls fn for every regular file (not hardlink entries) that
// has a payload and no inline content, i.e. every file that the image
// references by redirect and that belongs in an object store.
func (t *Tree) WalkObjects(fn func(Object) error) error {
	return t.Walk(func(n *Node) error {
		if n.LinkTo != nil || n.Type() != ModeRegular || n.Content != nil || n.Payload == "" || n.Size == 0 {
			return nil
		}
		p := n.Path()
		o := Object{Node: n, Path: p, Payload: n.Payload, Digest: n.Digest, Size: n.Size}
		if t.SourceDir != "" {
			o.Source = filepath.Join(t.SourceDir, p)
		}
		return fn(o)
	})
}

// ObjectPath returns the object store path of a digest: "XX/YYYY..." (hex,
// the first byte as a directory).
func ObjectPath(digest []byte) string {
	h := hex.EncodeToString(digest)
	return h[:2] + "/" + h[2:]
}

// Option configures BuildTree, WriteImage and Digest. Options that do not
// apply to an operation are ignored by it (e.g. the scan options when
// writing a tree parsed from a dump, as mkcomposefs --from-file does).
type Option func(*options)

type options struct {
	useEpoch    bool
	skipXattrs  bool
	userXattrs  bool
	skipDevices bool
	threads     int
	versionSet  bool
	minVersion  int
	maxVersion  int
	hash        verity.Algorithm
}

func newOptions(opts []Option) options {
	o := options{threads: runtime.GOMAXPROCS(0), hash: verity.SHA256}
	for _, f := range opts {
		f(&o)
	}
	if !o.versionSet {
		o.minVersion, o.maxVersion = 0, 1
	}
	if o.threads < 1 {
		o.threads = 1
	}
	return o
}

// WithHash sets the fs-verity hash algorithm of the file digests a scan
// computes and of the image digest (Tree.Digest): verity.SHA256, the
// default and mkcomposefs' only one, or verity.SHA512 (cfsctl --hash
// sha512, bootc's default). The image format is the same; the overlay
// metacopy xattrs then hold SHA-512 digests.
func WithHash(a verity.Algorithm) Option { return func(o *options) { o.hash = a } }

// WithUseEpoch sets every mtime to 0 (mkcomposefs --use-epoch).
func WithUseEpoch() Option { return func(o *options) { o.useEpoch = true } }

// WithSkipXattrs ignores all xattrs of the scanned files (--skip-xattrs).
func WithSkipXattrs() Option { return func(o *options) { o.skipXattrs = true } }

// WithUserXattrs keeps only user.* xattrs of the scanned files (--user-xattrs).
func WithUserXattrs() Option { return func(o *options) { o.userXattrs = true } }

// WithSkipDevices leaves out block and character devices, whiteouts
// included (--skip-devices).
func WithSkipDevices() Option { return func(o *options) { o.skipDevices = true } }

// WithThreads sets how many files are hashed in parallel (default
// GOMAXPROCS). The output does not depend on it.
func WithThreads(n int) Option { return func(o *options) { o.threads = n } }

// WithMinVersion sets the lowest image format version (--min-version). As
// with mkcomposefs, giving only one of WithMinVersion/WithMaxVersion makes
// the other 0; giving neither means 0..1.
func WithMinVersion(v int) Option {
	return func(o *options) {
		if !o.versionSet {
			o.minVersion, o.maxVersion = 0, 0
		}
		o.versionSet = true
		o.minVersion = v
	}
}

// WithMaxVersion sets the highest image format version (--max-version);
// see WithMinVersion.
func WithMaxVersion(v int) Option {
	return func(o *options) {
		if !o.versionSet {
			o.minVersion, o.maxVersion = 0, 0
		}
		o.versionSet = true
		o.maxVersion = v
	}
}
