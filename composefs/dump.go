package composefs

import (
	"bufio"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Escaping modes of composefs-info's print_escaped. The dump parser
// (dumpparse.go) accepts all of them: \\ \n \r \t and \xNN anywhere.
const (
	escStandard = 0
	escNoSpace  = 1 << 0 // leave ' ' alone (ls)
	escEqual    = 1 << 1 // escape '=' (xattr names and values)
	escLoneDash = 1 << 2 // a value of exactly "-" is written \x2d
)

const hexLower = "0123456789abcdef"

// appendEscaped appends s escaped as composefs-info does: backslash, \n,
// \r and \t as C escapes; bytes that are not graphic ASCII (or, with
// escNoSpace, not printable ASCII) and, with escEqual, '=' as \xNN.
func appendEscaped(dst []byte, s []byte, mode int) []byte {
	if mode&escLoneDash != 0 && len(s) == 1 && s[0] == '-' {
		return append(dst, `\x2d`...)
	}
	for _, c := range s {
		switch {
		case c == '\\':
			dst = append(dst, `\\`...)
		case c == '\n':
			dst = append(dst, `\n`...)
		case c == '\r':
			dst = append(dst, `\r`...)
		case c == '\t':
			dst = append(dst, `\t`...)
		case c == '=' && mode&escEqual != 0,
			c == ' ' && mode&escNoSpace == 0,
			c < ' ' || c > '~':
			dst = append(dst, '\\', 'x', hexLower[c>>4], hexLower[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// DumpEntry appends the composefs-dump(5) line of e (with its newline) in
// the exact format of `composefs-info dump`: PATH SIZE [@]MODE NLINK UID
// GID RDEV MTIME PAYLOAD CONTENT DIGEST XATTRS... A hardlink shows the
// fields of its inode, "@" before the mode and the first path as payload.
func DumpEntry(dst []byte, e *Entry) []byte {
	in := e.Inode
	dst = appendEscaped(dst, []byte(e.Path), escStandard)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, in.Size, 10)
	dst = append(dst, ' ')
	if e.HardlinkOf != "" {
		dst = append(dst, '@')
	}
	dst = strconv.AppendUint(dst, uint64(in.Mode), 8)
	for _, v := range []uint32{in.Nlink, in.UID, in.GID, in.Rdev} {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(v), 10)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, in.MtimeSec, 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(in.MtimeNsec), 10)
	dst = append(dst, ' ')
	switch {
	case e.HardlinkOf != "":
		dst = appendEscaped(dst, []byte(e.HardlinkOf), escLoneDash)
	case in.Payload != "":
		dst = appendEscaped(dst, []byte(in.Payload), escLoneDash)
	default:
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	if in.Content != nil {
		dst = appendEscaped(dst, in.Content, escLoneDash)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	if in.Digest != nil {
		dst = hex.AppendEncode(dst, in.Digest)
	} else {
		dst = append(dst, '-')
	}
	for _, x := range in.Xattrs {
		dst = append(dst, ' ')
		dst = appendEscaped(dst, []byte(x.Name), escEqual)
		dst = append(dst, '=')
		dst = appendEscaped(dst, x.Value, escEqual)
	}
	return append(dst, '\n')
}

// WriteDump writes the image as composefs-dump(5) text, byte for byte
// what `composefs-info dump` prints.
func (img *Image) WriteDump(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	err := img.Walk(func(e *Entry) error {
		line = DumpEntry(line[:0], e)
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// WriteLs writes the listing of `composefs-info ls`: every path but the
// root, directories with a trailing "/", symlinks with "-> TARGET",
// regular files stored outside the image with "@ OBJECT".
func (img *Image) WriteLs(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	err := img.Walk(func(e *Entry) error {
		if e.Depth == 0 {
			return nil
		}
		line = appendEscaped(line[:0], []byte(e.Path), escNoSpace)
		// A hardlink entry has no mode or payload of its own in
		// libcomposefs, so composefs-info prints only its path.
		if e.HardlinkOf == "" {
			in := e.Inode
			switch {
			case in.Type() == ModeDir:
				line = append(line, "/\t"...)
			case in.Type() == ModeSymlink:
				line = append(line, "\t-> "...)
				line = appendEscaped(line, []byte(in.Payload), escStandard)
			case in.Type() == ModeRegular && in.Payload != "":
				line = append(line, "\t@ "...)
				line = appendEscaped(line, []byte(in.Payload), escStandard)
			}
		}
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Objects returns the object paths ("XX/YYYY...", as in the redirect
// xattrs) that the image's regular files refer to, each once, sorted
// bytewise: `composefs-info objects`.
func (img *Image) Objects() ([]string, error) {
	seen := map[string]struct{}{}
	err := img.Walk(func(e *Entry) error {
		if e.HardlinkOf == "" && e.Inode.Type() == ModeRegular && e.Inode.Payload != "" {
			seen[e.Inode.Payload] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// MissingObjects returns the objects of the image that do not exist under
// basedir (a store's ObjectsDir, or a mkcomposefs --digest-store), sorted:
// `composefs-info --basedir DIR missing-objects`.
func (img *Image) MissingObjects(basedir string) ([]string, error) {
	objs, err := img.Objects()
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, o := range objs {
		if _, err := os.Stat(filepath.Join(basedir, strings.TrimLeft(o, "/"))); err != nil {
			missing = append(missing, o)
		}
	}
	return missing, nil
}
