package ociimage

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/composefs"
)

// merger applies layers, one entry at a time, to the merged tree.
//
// In the default (OCI) semantics a whiteout only hides what lower layers
// put there, as the image-spec says ("Files that are present in the same
// layer as a whiteout file can only be hidden by whiteout files in
// subsequent layers"): every node remembers the layer that last wrote it
// (or made it a parent), and .wh.NAME / .wh..wh..opq leave this layer's
// nodes alone, whatever their order in the tar. With composefs-rs'
// semantics (process_entry) entries are applied strictly in tar order: an
// opaque marker clears the directory as it stands, a whiteout removes
// NAME even if this layer wrote it just before. The two agree for every
// layer whose tar puts a directory's markers before its other entries, as
// docker, buildah, podman and umoci write them.
//
// A directory written over a directory keeps its children and takes the new
// metadata (in both semantics, as tar extraction and composefs-rs' merge
// do); anything else written over a name replaces it. Hardlinks share the
// target's inode, also across layers. Parent directories a layer does not
// list are created (mode 0755, root, mtime 0) where missing.
type merger struct {
	root    *mnode
	inOrder bool // composefs-rs semantics
	layer   int  // 1-based index of the layer being applied
}

// mnode is a name in the merged tree: a directory, or a non-directory
// inode shared by all its hardlinks.
type mnode struct {
	dir   *mdir
	leaf  *composefs.Node
	layer int // the last layer that wrote or traversed this name
}

type mdir struct {
	meta     composefs.Node
	children map[string]*mnode
}

func newDir(meta composefs.Node) *mnode {
	return &mnode{dir: &mdir{meta: meta, children: map[string]*mnode{}}}
}

// implicitDir is the metadata of a parent directory no layer lists.
func implicitDir() composefs.Node {
	return composefs.Node{Mode: composefs.ModeDir | 0o755, Nlink: 1}
}

func newMerger(inOrder bool) *merger {
	return &merger{root: newDir(implicitDir()), inOrder: inOrder}
}

func (m *merger) beginLayer(i int) { m.layer = i + 1 }

// apply applies one entry of the current layer.
func (m *merger) apply(e entry) error {
	if e.path == "/" {
		if e.link != "" || e.node.Type() != composefs.ModeDir {
			return fmt.Errorf("the root entry \"/\" is not a directory")
		}
		m.root.dir.meta = *e.node
		m.root.layer = m.layer
		return nil
	}
	i := strings.LastIndexByte(e.path, '/')
	parent, err := m.parent(e.path[:i])
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	name := e.path[i+1:]
	if w, ok := strings.CutPrefix(name, whiteoutPrefix); ok {
		switch {
		case name == opaqueName:
			m.opaque(parent)
		case w == "" || strings.HasPrefix(w, whiteoutPrefix):
			// .wh..wh.plnk and friends: AUFS bookkeeping, no file.
		default:
			if old := parent.children[w]; old != nil && (m.inOrder || old.layer != m.layer) {
				delete(parent.children, w)
			}
		}
		return nil
	}
	var n *mnode
	switch {
	case e.link != "":
		t := m.lookup(e.link)
		if t == nil {
			return fmt.Errorf("%s: hardlink target %s does not exist", e.path, e.link)
		}
		if t.dir != nil {
			return fmt.Errorf("%s: hardlink target %s is a directory", e.path, e.link)
		}
		n = &mnode{leaf: t.leaf}
	case e.node.Type() == composefs.ModeDir:
		if old := parent.children[name]; old != nil && old.dir != nil {
			old.dir.meta = *e.node
			old.layer = m.layer
			return nil
		}
		n = newDir(*e.node)
	default:
		leaf := *e.node
		n = &mnode{leaf: &leaf}
	}
	n.layer = m.layer
	parent.children[name] = n
	return nil
}

// parent returns the directory at dir, creating missing directories; the
// directories on the way count as written by this layer.
func (m *merger) parent(dir string) (*mdir, error) {
	cur := m.root
	for c := range strings.SplitSeq(dir, "/") {
		if c == "" {
			continue
		}
		next := cur.dir.children[c]
		switch {
		case next == nil:
			next = newDir(implicitDir())
			cur.dir.children[c] = next
		case next.dir == nil:
			return nil, fmt.Errorf("parent %s is not a directory", c)
		}
		next.layer = m.layer
		cur = next
	}
	return cur.dir, nil
}

func (m *merger) lookup(p string) *mnode {
	cur := m.root
	for c := range strings.SplitSeq(p, "/") {
		if c == "" {
			continue
		}
		if cur.dir == nil {
			return nil
		}
		if cur = cur.dir.children[c]; cur == nil {
			return nil
		}
	}
	return cur
}

// opaque hides the lower layers' content of d.
func (m *merger) opaque(d *mdir) {
	if m.inOrder {
		clear(d.children)
		return
	}
	for name, c := range d.children {
		switch {
		case c.layer != m.layer:
			delete(d.children, name)
		case c.dir != nil:
			m.opaque(c.dir)
		}
	}
}

// canonicalizeComposefsRS applies composefs-rs' transform_for_oci: the root
// takes /usr's metadata (copy_root_metadata_from_usr: OCI layers' root
// entries are ignored by container runtimes, so composefs-rs defines the
// root by /usr), /run is emptied and gets /usr's mtime (canonicalize_run:
// a tmpfs at runtime; build tools leave mount stubs in it). Without /usr
// composefs-rs refuses the image, and so does this.
func (m *merger) canonicalizeComposefsRS() error {
	usr := m.root.dir.children["usr"]
	if usr == nil || usr.dir == nil {
		return fmt.Errorf("%w: the composefs-rs rules take the root directory's metadata from /usr, and the image has no /usr directory", ErrUnsupported)
	}
	root := &m.root.dir.meta
	u := usr.dir.meta
	root.Mode = composefs.ModeDir | u.Mode&^composefs.ModeTypeMask
	root.UID, root.GID, root.MtimeSec = u.UID, u.GID, u.MtimeSec
	root.Xattrs = slices.Clone(u.Xattrs)
	if run := m.root.dir.children["run"]; run != nil {
		if run.dir == nil {
			return fmt.Errorf("%w: the composefs-rs rules empty /run, and /run is not a directory", ErrUnsupported)
		}
		run.dir.meta.MtimeSec = u.MtimeSec
		clear(run.dir.children)
	}
	return nil
}

// tree builds the composefs tree. Each inode's first name in sorted
// depth-first order is its primary entry (as in a composefs dump), the
// others hardlink to it; the inode's link count is its number of names.
// secondsOnly drops sub-second mtimes (composefs-rs keeps seconds).
func (m *merger) tree(secondsOnly bool) (*composefs.Tree, error) {
	primary := map[*composefs.Node]*composefs.Node{}
	var build func(d *mdir, n *composefs.Node) error
	build = func(d *mdir, n *composefs.Node) error {
		for _, name := range slices.Sorted(maps.Keys(d.children)) {
			c := d.children[name]
			var cn *composefs.Node
			switch {
			case c.dir != nil:
				meta := c.dir.meta
				cn = &meta
			case primary[c.leaf] != nil:
				cn = &composefs.Node{LinkTo: primary[c.leaf]}
				primary[c.leaf].Nlink++
			default:
				leaf := *c.leaf
				leaf.Nlink = 1
				cn = &leaf
				primary[c.leaf] = cn
			}
			cn.Name, cn.Parent, cn.Children = name, nil, nil
			if secondsOnly {
				cn.MtimeNsec = 0
			}
			if err := n.AddChild(cn); err != nil {
				return err
			}
			if c.dir != nil {
				if err := build(c.dir, cn); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root := m.root.dir.meta
	root.Name, root.Parent, root.Children = "", nil, nil
	if secondsOnly {
		root.MtimeNsec = 0
	}
	if err := build(m.root.dir, &root); err != nil {
		return nil, err
	}
	return &composefs.Tree{Root: &root}, nil
}
