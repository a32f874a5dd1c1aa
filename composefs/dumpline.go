package composefs

import (
	"fmt"
	"strings"
)

// One composefs-dump(5) line at a time, in the format of dump.go and
// dumpparse.go, for records that list entries without forming a tree
// (ociimage's layer records: an OCI layer's entries, whose parents and
// hardlink targets may live in other layers).

// AppendDumpLine appends the composefs-dump(5) line (with its newline) of n
// at path, in the format DumpEntry writes; with link set, a hardlink line
// ("@" before the mode, link as payload).
func AppendDumpLine(dst []byte, path string, n *Node, link string) []byte {
	in := &Inode{
		Mode: n.Mode, Nlink: n.Nlink, UID: n.UID, GID: n.GID, Rdev: uint32(n.Rdev),
		Size: n.Size, MtimeSec: n.MtimeSec, MtimeNsec: n.MtimeNsec,
		Xattrs: n.Xattrs, Payload: n.Payload, Digest: n.Digest, Content: n.Content,
	}
	return DumpEntry(dst, &Entry{Path: path, Inode: in, HardlinkOf: link})
}

// ParseDumpLine parses one composefs-dump(5) line on its own, with the
// checks ParseDump applies to it: it returns the absolute path, the node
// (named, without parent) and, for a hardlink line, the target path.
func ParseDumpLine(line string) (path string, n *Node, link string, err error) {
	field, _, _ := strings.Cut(line, " ")
	path, err = unescapeField(field, "PATH")
	if err == nil && !strings.HasPrefix(path, "/") {
		err = fmt.Errorf("PATH %q: not absolute", path)
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("%w: %w", ErrInvalidDump, err)
	}
	p := &dumpParser{ln: 1}
	parent := (*Node)(nil)
	if path != "/" {
		// The parent directories, made up: the line only needs a place.
		p.root = &Node{Mode: ModeDir}
		parent = p.root
		dir := path[:strings.LastIndexByte(path, '/')]
		for _, c := range strings.Split(dir, "/") {
			if c == "" {
				continue
			}
			d := &Node{Name: c, Mode: ModeDir}
			if err := parent.AddChild(d); err != nil && parent.Lookup(c) == nil {
				return "", nil, "", fmt.Errorf("%w: PATH %q: %w", ErrInvalidDump, path, err)
			}
			parent = parent.Lookup(c)
		}
	}
	if err := p.line(line); err != nil {
		return "", nil, "", fmt.Errorf("%w: %w", ErrInvalidDump, err)
	}
	if parent == nil {
		n = p.root
	} else {
		n = parent.Lookup(path[strings.LastIndexByte(path, '/')+1:])
		n.Parent = nil
	}
	if len(p.fixups) > 0 {
		link = p.fixups[0].target
	}
	return path, n, link, nil
}
