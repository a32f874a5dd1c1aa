package cstorage

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
)

// fakeLayers lays out two overlay layers of containers-storage under root
// (their tar-split records, unpacked files and layers.json) and returns
// their diff_ids.
func fakeLayers(t *testing.T, root string) (string, string) {
	t.Helper()
	base := writeLayer(t, filepath.Join(root, "overlay-layers", "aaaa.tar-split.gz"), filepath.Join(root, "overlay", "aaaa", "diff"), testFiles)
	top := writeLayer(t, filepath.Join(root, "overlay-layers", "bbbb.tar-split.gz"), filepath.Join(root, "overlay", "bbbb", "diff"), []layerFile{
		{"app/", "", '5'},
		{"app/run", "#!/bin/sh\necho app\n", '0'},
		{"app/other", "other file\n", '0'},
	})
	d1, d2 := digest.FromBytes(base).String(), digest.FromBytes(top).String()
	layers, _ := json.Marshal([]Layer{
		{ID: "aaaa", DiffDigest: d1, DiffSize: int64(len(base))},
		{ID: "bbbb", Parent: "aaaa", DiffDigest: d2, DiffSize: int64(len(top))},
	})
	if err := os.WriteFile(filepath.Join(root, "overlay-layers", "layers.json"), layers, 0o600); err != nil {
		t.Fatal(err)
	}
	return d1, d2
}

// files returns what the source offers: name -> content.
func files(src store.ObjectSource) (map[string]string, error) {
	var mu sync.Mutex
	got := map[string]string{}
	err := src.Files(context.Background(), func(int64) bool { return true }, func(f store.SourceFile) error {
		data, err := io.ReadAll(f.Content)
		mu.Lock()
		got[f.Name] = string(data)
		mu.Unlock()
		return err
	})
	return got, err
}

// The repair source reads only the layers asked for, found by diff_id,
// and offers their regular files.
func TestSourceReadsLayersByDiffID(t *testing.T) {
	root := t.TempDir()
	d1, d2 := fakeLayers(t, root)
	src, err := NewSource(root, "reg/app:1", []string{d2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := src.String(), "containers-storage:reg/app:1 (1 layers)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	got, err := files(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"layer 1 /app/run": "#!/bin/sh\necho app\n", "layer 1 /app/other": "other file\n"}
	if len(got) != len(want) || got["layer 1 /app/run"] != want["layer 1 /app/run"] || got["layer 1 /app/other"] != want["layer 1 /app/other"] {
		t.Errorf("offered %v, want %v", got, want)
	}
	src, err = NewSource(root, "reg/app:1", []string{d1, d2})
	if err != nil {
		t.Fatal(err)
	}
	got, err = files(src)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "layer 1 /data/big,layer 1 /etc/empty,layer 1 /etc/passwd,layer 2 /app/other,layer 2 /app/run" {
		t.Errorf("offered %v", names)
	}

	// A layer containers-storage no longer has.
	const gone = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	if _, err := NewSource(root, "reg/app:1", []string{gone}); err == nil || err.Error() != "containers-storage "+root+": no layer with diff digest "+gone+" (the image reg/app:1 was removed from it?)" {
		t.Errorf("missing layer: %v", err)
	}
}

// Fail closed: a file changed in a layer's unpacked directory makes the
// whole layer refused before any of its files is offered, even the
// unchanged ones, naming the layer and both digests.
func TestSourceRefusesChangedLayer(t *testing.T) {
	root := t.TempDir()
	_, d2 := fakeLayers(t, root)
	if err := os.WriteFile(filepath.Join(root, "overlay", "bbbb", "diff", "app", "other"), []byte("OTHER file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(root, "reg/app:1", []string{d2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := files(src)
	if len(got) != 0 {
		t.Errorf("files offered from a changed layer: %v", got)
	}
	if !errors.Is(err, ociimage.ErrDigestMismatch) {
		t.Fatalf("changed layer: %v, want %v", err, ociimage.ErrDigestMismatch)
	}
	if !strings.Contains(err.Error(), "containers-storage "+root+": layer bbbb: blob does not match its digest: its tar rebuilt from the unpacked files has digest sha256:") ||
		!strings.Contains(err.Error(), ", but its diff_id is "+d2+" (a file of the layer was changed): nothing restored from it") {
		t.Errorf("changed layer: %v", err)
	}
}
