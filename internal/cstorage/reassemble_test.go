package cstorage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type layerFile struct {
	name, body string
	typ        byte
}

var testFiles = []layerFile{
	{"etc/", "", tar.TypeDir},
	{"etc/passwd", "root:x:0:0::/root:/bin/sh\n", tar.TypeReg},
	{"etc/empty", "", tar.TypeReg},
	{"bin/.wh.gone", "", tar.TypeReg},
	{"data/big", strings.Repeat("x", 5000), tar.TypeReg},
}

// writeLayer writes the tar of files, its tar-split record (as tar-split
// writes it: a segment for everything tar writes around a file's content,
// a file entry for the content) to splitFile and the unpacked files below
// diff. It returns the tar.
func writeLayer(t *testing.T, splitFile, diff string, files []layerFile) []byte {
	t.Helper()
	var orig bytes.Buffer
	tw := tar.NewWriter(&orig)
	var split bytes.Buffer
	gz := gzip.NewWriter(&split)
	enc := json.NewEncoder(gz)
	seg := func(from int) {
		if orig.Len() > from {
			if err := enc.Encode(tarSplitEntry{Type: 2, Payload: append([]byte(nil), orig.Bytes()[from:]...)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range files {
		mark := orig.Len()
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: f.typ, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
		seg(mark)
		p := filepath.Join(diff, f.name)
		if f.typ == tar.TypeReg {
			if err := enc.Encode(tarSplitEntry{Type: 1, Name: f.name, Size: int64(len(f.body))}); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			os.MkdirAll(p, 0o755)
		}
		mark = orig.Len()
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
		tw.Flush() // the padding, in the next segment
		if orig.Len()-mark > len(f.body) {
			enc.Encode(tarSplitEntry{Type: 2, Payload: append([]byte(nil), orig.Bytes()[mark+len(f.body):]...)})
		}
	}
	mark := orig.Len()
	tw.Close()
	seg(mark)
	gz.Close()
	if err := os.MkdirAll(filepath.Dir(splitFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(splitFile, split.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return orig.Bytes()
}

// A layer's tar rebuilt from a tar-split record and the unpacked files
// is byte for byte the tar the record was made from (the record written
// here as tar-split writes it: raw segments for headers and padding, a
// file entry for each file's content). A file changed on disk changes the
// result, which the import then refuses by the diff_id.
func TestReassembleTarSplit(t *testing.T) {
	diff := t.TempDir()
	splitFile := filepath.Join(t.TempDir(), "layer.tar-split.gz")
	orig := writeLayer(t, splitFile, diff, testFiles)
	rebuilt := func() []byte {
		t.Helper()
		var out bytes.Buffer
		f, err := os.Open(splitFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := writeTar(&out, f, diff); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	if got := rebuilt(); !bytes.Equal(got, orig) {
		t.Fatalf("rebuilt tar differs: %d bytes, want %d", len(got), len(orig))
	}
	if err := os.WriteFile(filepath.Join(diff, "etc/passwd"), []byte("root:x:0:0::/root:/bin/SH\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rebuilt(), orig) {
		t.Fatal("a changed file gives the same tar")
	}
	// A file shorter than its record says is an error, not a short tar.
	if err := os.WriteFile(filepath.Join(diff, "data/big"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(splitFile)
	defer f.Close()
	if err := writeTar(&bytes.Buffer{}, f, diff); err == nil || !strings.Contains(err.Error(), "layer file data/big: 1 bytes, the layer's record says 5000") {
		t.Fatalf("short file: %v", err)
	}
}
