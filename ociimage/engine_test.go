package ociimage

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
)

// An image read from a store of blobs by digest (OpenBlobs: containerd's
// content store) imports as the same image from its layout; with Expect,
// only the sealed digest is committed, and a corrupted blob is named.
func TestOpenBlobsImportExpect(t *testing.T) {
	dir := t.TempDir()
	md := ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	want, _, err := Digest(ref(t, "oci:"+dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var corrupt string // a blob whose bytes are changed on read
	open := func(d string) (io.ReadCloser, error) {
		alg, hex, _ := strings.Cut(d, ":")
		data, err := os.ReadFile(filepath.Join(dir, "blobs", alg, hex))
		if err != nil {
			return nil, err
		}
		if d == corrupt {
			data[len(data)-1] ^= 1
		}
		return io.NopCloser(strings.NewReader(string(data))), nil
	}
	top := md
	top.Annotations = nil
	blobs := func() *Layout {
		l, err := OpenBlobs(Ref{Transport: "containerd", Path: "reg/app:1"}, open, top)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	st := openStore(t)
	other := strings.Repeat("0", 64)
	_, err = ImportLayout(st, blobs(), Options{Expect: other})
	if !errors.Is(err, store.ErrUnexpectedDigest) || err.Error() != "containerd:reg/app:1: the image has another digest than expected: it has composefs digest "+want+", but the sealed digest is "+other {
		t.Fatalf("Expect %s: %v", other, err)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), "images", want)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an image of another digest than expected was committed: %v", err)
	}

	img, err := Inspect(ref(t, "oci:"+dir))
	if err != nil {
		t.Fatal(err)
	}
	corrupt = img.Manifest.Layers[2].Digest.String()
	st2 := openStore(t)
	_, err = ImportLayout(st2, blobs(), Options{Expect: want})
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "containerd:reg/app:1: layer 3/3 blob "+corrupt+": ") {
		t.Fatalf("corrupted blob: %v", err)
	}
	if _, err := os.Stat(filepath.Join(st2.Dir(), "images", want)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an image with a corrupted layer was committed: %v", err)
	}

	corrupt = ""
	res, err := ImportLayout(st, blobs(), Options{Expect: want})
	if err != nil || res.Digest != want {
		t.Fatalf("import: %v, %+v", err, res)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), "images", want)); err != nil {
		t.Fatal(err)
	}
}
