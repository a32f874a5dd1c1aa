package ociimage

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
)

// NewSource opens layers of the image an OCI layout reference names
// ("oci:DIR[:NAME]" or "oci-archive:FILE[:NAME]") as a composefs repair
// source: the regular files of those layers (diff_ids "sha256:HEX", as
// provenance records them; nil: every layer). The layout is read when
// Files is called; each layer's blob is checked against its digest and
// diff_id as it is read.
func NewSource(layout string, layers []string) (store.ObjectSource, error) {
	ref, err := ParseRef(layout)
	if err != nil {
		return nil, err
	}
	return newLayerSource(ref, func() (*Layout, *Image, error) { return openImage(ref) }, layers)
}

// NewBlobsSource is NewSource for an image in a store of blobs by digest
// (OpenBlobs: containerd's content store).
func NewBlobsSource(ref Ref, open func(digest string) (io.ReadCloser, error), top v1.Descriptor, layers []string) (store.ObjectSource, error) {
	return newLayerSource(ref, func() (*Layout, *Image, error) { return resolved(OpenBlobs(ref, open, top)) }, layers)
}

func newLayerSource(ref Ref, open func() (*Layout, *Image, error), layers []string) (store.ObjectSource, error) {
	l, img, err := open()
	if err != nil {
		return nil, err
	}
	l.Close()
	src := &layerSource{ref: ref, open: open}
	for _, want := range layers {
		i := slices.Index(img.Config.RootFS.DiffIDs, digest.Digest(want))
		if i < 0 {
			return nil, fmt.Errorf("%s: %w: the image has no layer %s (its layout changed since the import?)", ref, ErrNoImage, want)
		}
		src.layers = append(src.layers, i)
	}
	if layers == nil {
		for i := range img.Manifest.Layers {
			src.layers = append(src.layers, i)
		}
	}
	return src, nil
}

type layerSource struct {
	ref    Ref
	open   func() (*Layout, *Image, error)
	layers []int // indexes into the image's layers
}

func (s *layerSource) String() string {
	return fmt.Sprintf("%s (%d layers)", s.ref, len(s.layers))
}

// Files offers the layers' regular files, one layer after the other (a
// tar stream is read in order). Whiteout markers and hardlinks carry no
// content and are not offered.
func (s *layerSource) Files(ctx context.Context, want func(int64) bool, fn func(store.SourceFile) error) error {
	l, img, err := s.open()
	if err != nil {
		return err
	}
	defer l.Close()
	for _, i := range s.layers {
		err := l.walkLayer(img, i, func(e entry, content io.Reader) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := e.node
			if e.link != "" || n.Type() != composefs.ModeRegular || strings.HasPrefix(path.Base(e.path), whiteoutPrefix) || !want(int64(n.Size)) {
				return nil
			}
			return fn(store.SourceFile{Name: fmt.Sprintf("layer %d %s", i+1, e.path), Size: int64(n.Size), Content: content})
		})
		if err != nil {
			return err
		}
	}
	return nil
}
