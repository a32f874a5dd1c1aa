package composefs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

const readerVectorDir = "../testdata/vectors/out"

// readerVectors lists the golden vectors (out/NN-name).
func readerVectors(t testing.TB) []string {
	t.Helper()
	return testutil.Vectors(t, readerVectorDir)
}

func readerVectorFile(t testing.TB, name, file string) []byte {
	t.Helper()
	return testutil.VectorFile(t, readerVectorDir, name, file)
}

// TestReaderVectors: dump, ls and objects of every golden image equal
// composefs-info's output exactly.
func TestReaderVectors(t *testing.T) {
	for _, name := range readerVectors(t) {
		t.Run(name, func(t *testing.T) {
			img, err := ParseImage(readerVectorFile(t, name, "image.cfs"))
			if err != nil {
				t.Fatal(err)
			}
			var dump, ls bytes.Buffer
			if err := img.WriteDump(&dump); err != nil {
				t.Fatal(err)
			}
			if err := img.WriteLs(&ls); err != nil {
				t.Fatal(err)
			}
			objs, err := img.Objects()
			if err != nil {
				t.Fatal(err)
			}
			var objText strings.Builder
			for _, o := range objs {
				objText.WriteString(o + "\n")
			}
			for _, c := range []struct{ file, got string }{
				{"dump.txt", dump.String()},
				{"ls.txt", ls.String()},
				{"objects.txt", objText.String()},
			} {
				want := string(readerVectorFile(t, name, c.file))
				if c.got != want {
					t.Errorf("%s differs: %s", c.file, readerDiff(c.got, want))
				}
			}
		})
	}
}

// readerDiff describes the first differing line of two texts.
func readerDiff(got, want string) string {
	g := strings.SplitAfter(got, "\n")
	w := strings.SplitAfter(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got  %.300q\n want %.300q", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}

func TestReaderHeader(t *testing.T) {
	img, err := ParseImage(readerVectorFile(t, "15-whiteouts", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	h := img.Header()
	if h.ComposefsVersion != 1 || h.RootNid != 36 || h.BuildTimeSec != 1700000000 {
		t.Fatalf("header = %+v", h)
	}
	img, err = ParseImage(readerVectorFile(t, "14-modes-owners-times", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	if h := img.Header(); h.BuildTimeSec != -1000000001 || h.BuildTimeNsec != 500000000 || h.ComposefsVersion != 0 || h.HasACL() {
		t.Fatalf("header = %+v", h)
	}
	img, err = ParseImage(readerVectorFile(t, "13-xattrs", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	if !img.Header().HasACL() {
		t.Fatal("13-xattrs has ACLs but HasACL is false")
	}
}

func TestMissingObjects(t *testing.T) {
	img, err := ParseImage(readerVectorFile(t, "03-small-files", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := img.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 9 {
		t.Fatalf("%d objects, want 9", len(objs))
	}
	base := t.TempDir()
	// Put every other object in place.
	var want []string
	for i, o := range objs {
		if i%2 == 0 {
			want = append(want, o)
			continue
		}
		p := filepath.Join(base, o)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := img.MissingObjects(base)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("missing objects = %q, want %q", got, want)
	}
}

// TestReaderHardlinks: an image with real hardlinks (only possible from a
// dump) lists the first name in depth-first order as the inode and the
// others as "@" hardlinks to it, as composefs-info does, and its dump
// parses back (dumpparse.go) into the same image.
func TestReaderHardlinks(t *testing.T) {
	const digest = "6d36e3dadba01571e3165f972b72e7b4ebe566e02fe27acfcd4b3a5cf61cbb59"
	in := "/ 4096 40755 3 0 0 0 1700000000.0 - - -\n" +
		"/a 100 100644 3 0 0 0 1700000000.0 6d/" + digest[2:] + " - " + digest + " user.x=1\n" +
		"/sub 4096 40755 2 0 0 0 1700000000.0 - - -\n" +
		"/sub/c 0 @100644 - - - - 0.0 /a - -\n" +
		"/z 0 @100644 - - - - 0.0 /a - -\n" +
		"/s 5 100644 2 0 0 0 1700000000.0 - hi\\x20\\x2d\\n -\n" +
		"/t 0 @100644 - - - - 0.0 /s - -\n"
	tree, err := ParseDump(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if err := tree.WriteImage(&img); err != nil {
		t.Fatal(err)
	}
	r, err := ParseImage(img.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var dump, ls bytes.Buffer
	if err := r.WriteDump(&dump); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteLs(&ls); err != nil {
		t.Fatal(err)
	}
	wantDump := "/ 4096 40755 3 0 0 0 1700000000.0 - - -\n" +
		"/a 100 100644 3 0 0 0 1700000000.0 6d/" + digest[2:] + " - " + digest + " user.x=1\n" +
		"/s 5 100644 2 0 0 0 1700000000.0 - hi\\x20-\\n -\n" +
		"/sub 40 40755 2 0 0 0 1700000000.0 - - -\n" +
		"/sub/c 100 @100644 3 0 0 0 1700000000.0 /a - " + digest + " user.x=1\n" +
		"/t 5 @100644 2 0 0 0 1700000000.0 /s hi\\x20-\\n -\n" +
		"/z 100 @100644 3 0 0 0 1700000000.0 /a - " + digest + " user.x=1\n"
	if dump.String() != wantDump {
		t.Errorf("dump: %s", readerDiff(dump.String(), wantDump))
	}
	wantLs := "/a\t@ 6d/" + digest[2:] + "\n/s\n/sub/\t\n/sub/c\n/t\n/z\n"
	if ls.String() != wantLs {
		t.Errorf("ls: %s", readerDiff(ls.String(), wantLs))
	}
	back, err := ParseDump(&dump)
	if err != nil {
		t.Fatal(err)
	}
	var img2 bytes.Buffer
	if err := back.WriteImage(&img2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Bytes(), img2.Bytes()) {
		t.Error("dump of the image does not parse back into the same image")
	}
}
