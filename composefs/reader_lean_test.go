package composefs

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// rdLeanAgrees checks that the lean walk (fsck's) of data visits the same
// inodes, with the same file types, sizes and digests, as Walk, and fails
// with the same error: it skips the paths, not any check.
func rdLeanAgrees(t *testing.T, data []byte) {
	t.Helper()
	img, err := ParseImage(data)
	if err != nil {
		return
	}
	visit := func(lean bool) ([]string, error) {
		var seen []string
		err := img.walk(func(e *Entry) error {
			if len(seen) > 100000 {
				return errRdLimit
			}
			if lean && (e.Path != "" || e.Name != "" || e.HardlinkOf != "" || e.Inode.Payload != "") {
				t.Fatalf("lean walk: entry %+v has a path, name or payload", e)
			}
			in := e.Inode
			seen = append(seen, fmt.Sprintf("%d %d %o %d %s", e.Depth, in.Nid, in.Mode, in.Size, hex.EncodeToString(in.Digest)))
			return nil
		}, lean)
		return seen, err
	}
	full, ferr := visit(false)
	lean, lerr := visit(true)
	if fmt.Sprint(ferr) != fmt.Sprint(lerr) {
		t.Fatalf("Walk error %v, lean walk error %v", ferr, lerr)
	}
	if !bytes.Equal([]byte(fmt.Sprint(full)), []byte(fmt.Sprint(lean))) {
		t.Fatalf("lean walk differs from Walk:\n%v\n%v", lean, full)
	}
}

// TestLeanWalkVectors: the lean walk agrees with Walk on every golden image.
func TestLeanWalkVectors(t *testing.T) {
	for _, name := range readerVectors(t) {
		t.Run(name, func(t *testing.T) {
			rdLeanAgrees(t, readerVectorFile(t, name, "image.cfs"))
		})
	}
}

// FuzzLeanWalk: on any image the lean walk agrees with Walk.
func FuzzLeanWalk(f *testing.F) {
	rdSeedVectors(f)
	f.Fuzz(func(t *testing.T, data []byte) { rdLeanAgrees(t, data) })
}

// rdSeedVectors adds every golden image to f's corpus.
func rdSeedVectors(f *testing.F) {
	ents, err := os.ReadDir(readerVectorDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(readerVectorDir, e.Name(), "image.cfs"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
