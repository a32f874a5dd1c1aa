package composefs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const rootLine = "/ 4096 40755 2 0 0 0 1700000000.0 - - -\n"

func TestParseDumpErrors(t *testing.T) {
	long := strings.Repeat("n", 256)
	bigValue := strings.Repeat("v", 65536)
	for _, tc := range []struct {
		name, in string
		line     int // 0: no line number in the message
		want     string
	}{
		{"empty input", "", 0, "no files in dump"},
		{"child before root", "/a 0 100644 1 0 0 0 0.0 - - -\n", 1, "before the root"},
		{"two roots", rootLine + rootLine, 2, "more than one root"},
		{"root not a dir", "/ 0 100644 1 0 0 0 0.0 - - -\n", 1, "root must be a directory"},
		{"bad mode", "/ 4096 4x755 2 0 0 0 0.0 - - -\n", 1, "MODE"},
		{"unknown file type", "/ 4096 755 2 0 0 0 0.0 - - -\n", 1, "unknown file type"},
		{"too few fields", "/ 4096 40755 2 0 0 0\n", 1, "want at least 11"},
		{"relative path", rootLine + "a 0 100644 1 0 0 0 0.0 - - -\n", 2, "not absolute"},
		{"missing parent", rootLine + "/x/y 0 100644 1 0 0 0 0.0 - - -\n", 2, "parent directory missing"},
		{"parent not a dir", rootLine + "/f 0 100644 1 0 0 0 0.0 - - -\n/f/g 0 100644 1 0 0 0 0.0 - - -\n", 3, "parent is not a directory"},
		{"duplicate", rootLine + "/f 0 100644 1 0 0 0 0.0 - - -\n/f 0 100644 1 0 0 0 0.0 - - -\n", 3, "already exists"},
		{"trailing slash", rootLine + "/d 0 40755 2 0 0 0 0.0 - - -\n/d/ 0 100644 1 0 0 0 0.0 - - -\n", 3, "empty file name"},
		{"dot name", rootLine + "/. 0 100644 1 0 0 0 0.0 - - -\n", 2, "reserved"},
		{"NUL in name", rootLine + "/a\\x00b 0 100644 1 0 0 0 0.0 - - -\n", 2, "contains '/' or NUL"},
		{"name too long", rootLine + "/" + long + " 0 100644 1 0 0 0 0.0 - - -\n", 2, "longer than 255"},
		{"unknown escape", rootLine + "/a\\q 0 100644 1 0 0 0 0.0 - - -\n", 2, "unsupported escape"},
		{"escape at end", rootLine + "/a\\ 0 100644 1 0 0 0 0.0 - - -\n", 2, "no character after escape"},
		{"short hex escape", rootLine + "/a 1 100644 1 0 0 0 0.0 - \\x4 -\n", 2, "no hex characters"},
		{"bad hex escape", rootLine + "/a 1 100644 1 0 0 0 0.0 - \\xzz -\n", 2, "invalid hex escape"},
		{"content size", rootLine + "/a 2 100644 1 0 0 0 0.0 - abc -\n", 2, "must match SIZE 2"},
		{"content too big", rootLine + "/a 5001 100644 1 0 0 0 0.0 - " + strings.Repeat("c", 5001) + " -\n", 2, "more than the 5000 bytes"},
		{"content on dir", rootLine + "/d 1 40755 2 0 0 0 0.0 - c -\n", 2, "not a regular file"},
		{"bad digest", rootLine + "/a 100 100644 1 0 0 0 0.0 12/34 - 1234\n", 2, "DIGEST"},
		{"mtime without nsec", rootLine + "/a 0 100644 1 0 0 0 1700000000 - - -\n", 2, "SECONDS.NANOSECONDS"},
		{"nsec out of range", rootLine + "/a 0 100644 1 0 0 0 1.1000000000 - - -\n", 2, "out of range"},
		{"uid too big", rootLine + "/a 0 100644 1 4294967296 0 0 0.0 - - -\n", 2, "UID"},
		{"negative size", rootLine + "/a -1 100644 1 0 0 0 0.0 - - -\n", 2, "SIZE"},
		{"symlink without target", rootLine + "/l 0 120777 1 0 0 0 0.0 - - -\n", 2, "symlink without a target"},
		{"symlink too long", rootLine + "/l 4096 120777 1 0 0 0 0.0 " + strings.Repeat("t", 4096) + " - -\n", 2, "longer than 4095"},
		{"empty xattr name", rootLine + "/a 0 100644 1 0 0 0 0.0 - - - =v\n", 2, "xattr name"},
		{"double space", rootLine + "/a 0 100644 1 0 0 0 0.0 - - - user.a=b  user.c=d\n", 2, "empty xattr"},
		{"xattr value too big", rootLine + "/a 0 100644 1 0 0 0 0.0 - - - user.a=" + bigValue + "\n", 2, "longer than 65535"},
		{"xattrs too big", rootLine + "/a 0 100644 1 0 0 0 0.0 - - - user.a=" + bigValue[:20000] + " user.b=" + bigValue[:20000] + "\n", 2, "larger than 32767"},
		{"empty line", rootLine + "\n/a 0 100644 1 0 0 0 0.0 - - -\n", 2, "empty line"},
		{"hardlinked dir", rootLine + "/d 0 @40755 2 0 0 0 0.0 / - -\n", 2, "can't be hardlinked"},
		{"hardlink without target", rootLine + "/h 0 @100644 1 0 0 0 0.0 - - -\n", 2, "without a target"},
		{"hardlink to missing", rootLine + "/h 0 @100644 1 0 0 0 0.0 /nothere - -\n/x 0 100644 1 0 0 0 0.0 - - -\n", 2, "does not exist"},
		{"hardlink to dir", rootLine + "/d 0 40755 2 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d - -\n", 3, "is a directory"},
		{"hardlink to itself", rootLine + "/h 0 @100644 1 0 0 0 0.0 /h - -\n", 2, "points to itself"},
		{"hardlink loop", rootLine + "/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n", 2, "hardlink loop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseDump(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error; tree %+v", tr)
			}
			if !errors.Is(err, ErrInvalidDump) {
				t.Errorf("error %q does not wrap ErrInvalidDump", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if tc.line > 0 && !strings.Contains(msg, "line "+strconv.Itoa(tc.line)+":") {
				t.Errorf("error %q does not name line %d", msg, tc.line)
			}
		})
	}
}

func TestParseDumpFields(t *testing.T) {
	in := rootLine +
		"/a\\x20b 3 100640 5 1000 2000 0 -1000000001.500000000 - x\\ty - user.k\\x3d=v\\x3d\\x00 trusted.t=1 user.k\\x3d=w\n" +
		"/big 100 100644 1 0 0 0 0.1 ab/cdef - " + strings.Repeat("ab", 32) + "\n" +
		"/dev 0 20600 1 0 0 286327664 1.0 - - -\n" +
		"/h 0 @100640 0 0 0 0 0.0 /a\\x20b - -\n" +
		"/l 4 120777 1 0 0 0 0.0 \\x2d\\x2dx - -" // no trailing newline
	tr, err := ParseDump(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	a := tr.Root.Lookup("a b")
	if a == nil {
		t.Fatal("a b missing")
	}
	if a.Mode != 0o100640 || a.Nlink != 5 || a.UID != 1000 || a.GID != 2000 || a.MtimeSec != -1000000001 || a.MtimeNsec != 500000000 {
		t.Errorf("a b: %+v", a)
	}
	if string(a.Content) != "x\ty" || a.Size != 3 {
		t.Errorf("content %q", a.Content)
	}
	// A repeated xattr replaces the earlier value, as lcfs_node_set_xattr does.
	if len(a.Xattrs) != 2 || a.Xattrs[0].Name != "user.k=" || string(a.Xattrs[0].Value) != "w" || a.Xattrs[1].Name != "trusted.t" {
		t.Errorf("xattrs %q", a.Xattrs)
	}
	big := tr.Root.Lookup("big")
	if big.Payload != "ab/cdef" || len(big.Digest) != 32 || big.Digest[0] != 0xab || big.MtimeNsec != 1 {
		t.Errorf("big: %+v", big)
	}
	if d := tr.Root.Lookup("dev"); d.Rdev != 286327664 || d.Type() != ModeChar {
		t.Errorf("dev: %+v", d)
	}
	if h := tr.Root.Lookup("h"); h.LinkTo != a {
		t.Errorf("h links to %v", h.LinkTo)
	}
	if l := tr.Root.Lookup("l"); l.Payload != "--x" {
		t.Errorf("symlink target %q", l.Payload)
	}
	if a.Nlink != 5 {
		t.Errorf("hardlink changed the target's nlink to %d", a.Nlink)
	}
}

// FuzzParseDump: any input is either rejected with ErrInvalidDump or gives
// a tree that the writer either writes or rejects with ErrInvalidTree;
// nothing panics.
func FuzzParseDump(f *testing.F) {
	ents, err := os.ReadDir(filepath.Join(vectorsDir, "out"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(vectorsDir, "out", e.Name(), "dump.txt"))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte(rootLine + "/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 3 100644 1 0 0 0 0.0 - a\\x00b -\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ParseDump(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidDump) {
				t.Fatalf("error %v does not wrap ErrInvalidDump", err)
			}
			return
		}
		if err := tr.WriteImage(io.Discard); err != nil && !errors.Is(err, ErrInvalidTree) {
			t.Fatalf("WriteImage: %v", err)
		}
	})
}
