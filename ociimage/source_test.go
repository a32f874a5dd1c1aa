package ociimage

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
)

func TestSource(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ls := threeLayers(t)
	ot.WriteImage(t, dir, "v1", ls...)
	img, err := Inspect(ref(t, "oci:"+dir+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	files := func(layers []string, want func(int64) bool) []string {
		t.Helper()
		src, err := NewSource("oci:"+dir+":v1", layers)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = src.Files(context.Background(), want, func(f store.SourceFile) error {
			b, err := io.ReadAll(f.Content)
			if err != nil || int64(len(b)) != f.Size {
				t.Errorf("%s: %d bytes of %d, %v", f.Name, len(b), f.Size, err)
			}
			got = append(got, f.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Only files with content: no whiteouts, no hardlinks, no directories.
	all := files(nil, func(int64) bool { return true })
	if want := []string{"layer 1 /etc/passwd", "layer 1 /etc/small", "layer 1 /usr/bin/tool", "layer 1 /opq/x", "layer 1 /opq/sub/y", "layer 1 /keep/k", "layer 1 /data/a", "layer 1 /run/x",
		"layer 2 /opq/new", "layer 2 /etc/passwd", "layer 3 /usr/bin/new", "layer 3 /late/f"}; !slices.Equal(all, want) {
		t.Errorf("files %q\nwant %q", all, want)
	}
	big := files([]string{img.Config.RootFS.DiffIDs[0].String()}, func(n int64) bool { return n > 64 })
	if strings.Join(big, ",") != "layer 1 /etc/passwd,layer 1 /usr/bin/tool" {
		t.Errorf("layer 1, more than 64 bytes: %q", big)
	}
	if _, err := NewSource("oci:"+dir+":v1", []string{"sha256:" + strings.Repeat("0", 64)}); !errors.Is(err, ErrNoImage) {
		t.Errorf("unknown layer: %v", err)
	}
}
