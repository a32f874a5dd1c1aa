package composefs

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrInvalidDump is returned (wrapped, with the line number and what was
// wrong) for composefs-dump(5) input that cannot be parsed.
var ErrInvalidDump = errors.New("invalid composefs dump")

// maxDumpXattrBytes bounds the xattr names and values of one file read
// from a dump (LCFS_INODE_EXTERNAL_XATTR_MAX).
const maxDumpXattrBytes = 32767

const (
	fieldPath = iota
	fieldSize
	fieldMode
	fieldNlink
	fieldUID
	fieldGID
	fieldRdev
	fieldMtime
	fieldPayload
	fieldContent
	fieldDigest
	nFixedFields
)

type hardlinkFixup struct {
	node   *Node
	target string
	line   int
}

type dumpParser struct {
	ln     int // current line number
	root   *Node
	fixups []hardlinkFixup
}

// ParseDump reads a composefs-dump(5) text (as written by `composefs-info
// dump` and read by `mkcomposefs --from-file`) into a Tree: one file per
// line, 11 space-separated fields (PATH SIZE MODE NLINK UID GID RDEV MTIME
// PAYLOAD CONTENT DIGEST) then KEY=VALUE xattrs, with \\ \n \r \t \xHH
// escapes and "-" for an absent optional field. A MODE starting with '@'
// makes the line a hardlink to the path in PAYLOAD. Every parent
// directory must come before its children, the root "/" first.
//
// Bad input is rejected with an error naming the line and the problem;
// the tree is never partially returned.
func ParseDump(r io.Reader) (*Tree, error) {
	p := &dumpParser{}
	br := bufio.NewReaderSize(r, 64<<10)
	for ln := 1; ; ln++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading dump: %w", err)
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		p.ln = ln
		if perr := p.line(string(line)); perr != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidDump, ln, perr)
		}
		if err == io.EOF {
			break
		}
	}
	if p.root == nil {
		return nil, fmt.Errorf("%w: no files in dump", ErrInvalidDump)
	}
	if err := p.resolveHardlinks(); err != nil {
		return nil, err
	}
	return &Tree{Root: p.root}, nil
}

func (p *dumpParser) line(line string) error {
	if line == "" {
		return errors.New("empty line")
	}
	fields := strings.SplitN(line, " ", nFixedFields+1)
	if len(fields) < nFixedFields {
		return fmt.Errorf("%d fields, want at least %d", len(fields), nFixedFields)
	}
	var xattrs []string
	if len(fields) > nFixedFields {
		xattrs = strings.Split(fields[nFixedFields], " ")
	}
	path, err := unescapeField(fields[fieldPath], "PATH")
	if err != nil {
		return err
	}
	modeStr := fields[fieldMode]
	hardlink := strings.HasPrefix(modeStr, "@")
	if hardlink {
		modeStr = modeStr[1:]
	}
	mode, err := parseUint(modeStr, 8, 32, "MODE")
	if err != nil {
		return err
	}
	n := &Node{Mode: uint32(mode), Nlink: 1}
	switch n.Type() {
	case ModeRegular, ModeDir, ModeSymlink, ModeBlock, ModeChar, ModeFifo, ModeSocket:
	default:
		return fmt.Errorf("MODE %s: unknown file type", fields[fieldMode])
	}
	if err := p.add(path, n); err != nil {
		return err
	}
	if hardlink {
		if n.Type() == ModeDir {
			return fmt.Errorf("%s: directories can't be hardlinked", path)
		}
		target, err := unescapeOptional(fields[fieldPayload], "PAYLOAD")
		if err != nil {
			return err
		}
		if target == nil {
			return fmt.Errorf("%s: hardlink without a target path in PAYLOAD", path)
		}
		p.fixups = append(p.fixups, hardlinkFixup{node: n, target: string(target), line: p.ln})
		return nil
	}
	size, err := parseUint(fields[fieldSize], 10, 64, "SIZE")
	if err != nil {
		return err
	}
	nlink, err := parseUint(fields[fieldNlink], 10, 32, "NLINK")
	if err != nil {
		return err
	}
	uid, err := parseUint(fields[fieldUID], 10, 32, "UID")
	if err != nil {
		return err
	}
	gid, err := parseUint(fields[fieldGID], 10, 32, "GID")
	if err != nil {
		return err
	}
	rdev, err := parseUint(fields[fieldRdev], 10, 64, "RDEV")
	if err != nil {
		return err
	}
	sec, nsec, err := parseMtime(fields[fieldMtime])
	if err != nil {
		return err
	}
	n.Size, n.Nlink, n.UID, n.GID, n.Rdev = size, uint32(nlink), uint32(uid), uint32(gid), rdev
	n.MtimeSec, n.MtimeNsec = sec, nsec

	payload, err := unescapeOptional(fields[fieldPayload], "PAYLOAD")
	if err != nil {
		return err
	}
	if len(payload) > MaxSymlinkLen || bytes.IndexByte(payload, 0) >= 0 {
		return fmt.Errorf("PAYLOAD: longer than %d bytes or contains NUL", MaxSymlinkLen)
	}
	n.Payload = string(payload)
	if n.Type() == ModeSymlink {
		if n.Payload == "" {
			return fmt.Errorf("%s: symlink without a target in PAYLOAD", path)
		}
	}
	content, err := unescapeOptional(fields[fieldContent], "CONTENT")
	if err != nil {
		return err
	}
	if content != nil {
		if n.Type() != ModeRegular {
			return fmt.Errorf("%s: CONTENT for a file that is not a regular file", path)
		}
		if uint64(len(content)) != size {
			return fmt.Errorf("CONTENT: %d bytes, must match SIZE %d", len(content), size)
		}
		if len(content) > MaxInlineFromDump {
			return fmt.Errorf("CONTENT: %d bytes, more than the %d bytes that can be inlined", len(content), MaxInlineFromDump)
		}
		if len(content) > 0 {
			n.Content = content
		}
	}
	digest, err := unescapeOptional(fields[fieldDigest], "DIGEST")
	if err != nil {
		return err
	}
	if digest != nil {
		d, err := hex.DecodeString(string(digest))
		if _, ok := DigestAlgorithm(d); err != nil || !ok {
			return fmt.Errorf("DIGEST %q: not %d (SHA-256) or %d (SHA-512) hex digits", digest, 2*DigestSize, 2*SHA512DigestSize)
		}
		n.Digest = d
	}
	total := 0
	for _, x := range xattrs {
		name, value, err := parseXattr(x)
		if err != nil {
			return err
		}
		total += len(name) + len(value)
		if total > maxDumpXattrBytes {
			return fmt.Errorf("xattrs of %s larger than %d bytes", path, maxDumpXattrBytes)
		}
		n.SetXattr(name, value)
	}
	return nil
}

// add links n into the tree at path.
func (p *dumpParser) add(path string, n *Node) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("PATH %q: not absolute", path)
	}
	if path == "/" {
		if n.Type() != ModeDir {
			return errors.New("the root must be a directory")
		}
		if p.root != nil {
			return errors.New("more than one root \"/\"")
		}
		p.root = n
		return nil
	}
	if p.root == nil {
		return fmt.Errorf("%s before the root directory \"/\"", path)
	}
	dir, name := path[:strings.LastIndexByte(path, '/')], path[strings.LastIndexByte(path, '/')+1:]
	if err := checkName(name); err != nil {
		return fmt.Errorf("PATH %q: %w", path, err)
	}
	parent, err := p.lookup(dir)
	if err != nil {
		return fmt.Errorf("PATH %q: parent directory missing: %w", path, err)
	}
	if !parent.IsDir() {
		return fmt.Errorf("PATH %q: parent is not a directory", path)
	}
	n.Name = name
	if err := parent.AddChild(n); err != nil {
		if errors.Is(err, errExists) {
			return fmt.Errorf("PATH %q: already exists", path)
		}
		return fmt.Errorf("PATH %q: %w", path, err)
	}
	return nil
}

// lookup finds an existing path (absolute; "" and "/" are the root).
func (p *dumpParser) lookup(path string) (*Node, error) {
	n := p.root
	for _, c := range strings.Split(path, "/") {
		if c == "" {
			continue
		}
		if !n.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", n.Path())
		}
		next := n.Lookup(c)
		if next == nil {
			return nil, fmt.Errorf("%s/%s does not exist", strings.TrimSuffix(n.Path(), "/"), c)
		}
		n = next
	}
	return n, nil
}

func (p *dumpParser) resolveHardlinks() error {
	for _, f := range p.fixups {
		t, err := p.lookup(f.target)
		if err != nil {
			return fmt.Errorf("%w: line %d: hardlink %s: target %q: %w", ErrInvalidDump, f.line, f.node.Path(), f.target, err)
		}
		if t == f.node {
			return fmt.Errorf("%w: line %d: hardlink %s points to itself", ErrInvalidDump, f.line, f.node.Path())
		}
		f.node.LinkTo = t
	}
	for _, f := range p.fixups {
		t := f.node
		for steps := 0; t.LinkTo != nil; steps++ {
			t = t.LinkTo
			if t == f.node || steps > len(p.fixups) {
				return fmt.Errorf("%w: line %d: hardlink %s: hardlink loop", ErrInvalidDump, f.line, f.node.Path())
			}
		}
		if t.Type() == ModeDir {
			return fmt.Errorf("%w: line %d: hardlink %s: target %s is a directory", ErrInvalidDump, f.line, f.node.Path(), t.Path())
		}
	}
	return nil
}

func parseUint(s string, base, bitSize int, field string) (uint64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%s %q: not a number", field, s)
	}
	v, err := strconv.ParseUint(s, base, bitSize)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a number (base %d, %d bits)", field, s, base, bitSize)
	}
	return v, nil
}

// parseMtime parses "SEC.NSEC" where NSEC is a plain integer count of
// nanoseconds ("1.1" is one second and one nanosecond) and SEC may be
// negative.
func parseMtime(s string) (int64, uint32, error) {
	secStr, nsecStr, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, fmt.Errorf("MTIME %q: want SECONDS.NANOSECONDS", s)
	}
	neg := strings.HasPrefix(secStr, "-")
	u, err := parseUint(strings.TrimPrefix(secStr, "-"), 10, 63, "MTIME")
	if err != nil {
		return 0, 0, err
	}
	sec := int64(u)
	if neg {
		sec = -sec
	}
	nsec, err := parseUint(nsecStr, 10, 32, "MTIME nanoseconds")
	if err != nil {
		return 0, 0, err
	}
	if nsec >= 1e9 {
		return 0, 0, fmt.Errorf("MTIME %q: nanoseconds out of range", s)
	}
	return sec, uint32(nsec), nil
}

func parseXattr(s string) (string, []byte, error) {
	if s == "" {
		return "", nil, errors.New("empty xattr field (two spaces in a row?)")
	}
	k, v, _ := strings.Cut(s, "=")
	name, err := unescapeField(k, "xattr name")
	if err != nil {
		return "", nil, err
	}
	if name == "" || len(name) > MaxXattrNameLen || strings.IndexByte(name, 0) >= 0 {
		return "", nil, fmt.Errorf("xattr name %q: must be 1..%d bytes without NUL", name, MaxXattrNameLen)
	}
	value, err := unescape(v)
	if err != nil {
		return "", nil, fmt.Errorf("xattr %s value: %w", name, err)
	}
	if len(value) > MaxXattrValueLen {
		return "", nil, fmt.Errorf("xattr %s: value of %d bytes is longer than %d", name, len(value), MaxXattrValueLen)
	}
	return name, value, nil
}

func unescapeField(s, field string) (string, error) {
	b, err := unescape(s)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return string(b), nil
}

// unescapeOptional returns nil for the "-" of an absent field.
func unescapeOptional(s, field string) ([]byte, error) {
	if s == "-" {
		return nil, nil
	}
	b, err := unescape(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return b, nil
}

// unescape decodes the composefs-dump(5) escapes: \\ \n \r \t and \xHH.
func unescape(s string) ([]byte, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return []byte(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, errors.New("no character after escape '\\'")
		}
		switch s[i] {
		case '\\':
			out = append(out, '\\')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(s) {
				return nil, errors.New("no hex characters after \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("invalid hex escape \\x%s", s[i+1:i+3])
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unsupported escape \\%c", s[i])
		}
	}
	return out, nil
}
