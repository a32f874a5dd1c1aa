package cstorage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
)

// NewSource opens, as a repair source, the layers (diff_ids "sha256:HEX",
// as provenance records them) of the image name that an import read from
// containers-storage under root. A layer is found by its diff_id in
// layers.json (the image's tag may have moved since: its layers are what
// counts). Each layer's tar is rebuilt into an unlinked temporary file
// and checked against its diff_id before any file of it is offered: a
// layer whose unpacked files were changed restores nothing.
func NewSource(root, name string, layers []string) (store.ObjectSource, error) {
	ref := ociimage.Ref{Transport: Transport, Path: name}
	list := filepath.Join(root, "overlay-layers", "layers.json")
	all, err := ReadLayers(list)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: %w", root, err)
	}
	// An image of just the layers needed: plain tars, blob digest =
	// diff_id, as the import's manifest has them.
	var cfg v1.Image
	cfg.RootFS.Type = "layers"
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
	byDigest := map[string]Layer{}
	for _, want := range layers {
		i := -1
		for j, l := range all {
			if l.DiffDigest == want {
				i = j
				break
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("containers-storage %s: no layer with diff digest %s (the image %s was removed from it?)", root, want, name)
		}
		l := all[i]
		byDigest[want] = l
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.Digest(want))
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.Digest(want), Size: l.DiffSize})
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	manifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	top := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	open := func(d string) (io.ReadCloser, error) {
		switch d {
		case top.Digest.String():
			return io.NopCloser(bytes.NewReader(manifest)), nil
		case m.Config.Digest.String():
			return io.NopCloser(bytes.NewReader(config)), nil
		}
		l, ok := byDigest[d]
		if !ok {
			return nil, fmt.Errorf("%s: %w", d, fs.ErrNotExist)
		}
		return checkedLayer(root, l)
	}
	return ociimage.NewBlobsSource(ref, open, top, layers)
}

// checkedLayer rebuilds layer l's tar into an unlinked temporary file and
// returns it only if it has the layer's diff_id: the repair reads files
// of a layer after the whole layer was checked, never before.
func checkedLayer(root string, l Layer) (io.ReadCloser, error) {
	r, err := ReassembleLayer(root, l.ID)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: layer %s (%s): %w", root, l.ID, l.DiffDigest, err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "cfs-runtime-layer-*.tar")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		f.Close()
		return nil, fmt.Errorf("containers-storage %s: layer %s (%s): %w", root, l.ID, l.DiffDigest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffDigest {
		f.Close()
		return nil, fmt.Errorf("containers-storage %s: layer %s: %w: its tar rebuilt from the unpacked files has digest %s, but its diff_id is %s (a file of the layer was changed): nothing restored from it",
			root, l.ID, ociimage.ErrDigestMismatch, got, l.DiffDigest)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
