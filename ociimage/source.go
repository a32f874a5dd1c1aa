package ociimage

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"

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
	img, err := Inspect(ref)
	if err != nil {
		return nil, err
	}
	src := &layerSource{ref: ref}
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
	layers []int // indexes into the image's layers
}

func (s *layerSource) String() string {
	return fmt.Sprintf("%s (%d layers)", s.ref, len(s.layers))
}

// Files offers the layers' regular files, one layer after the other (a
// tar stream is read in order). Whiteout markers and hardlinks carry no
// content and are not offered.
func (s *layerSource) Files(ctx context.Context, want func(int64) bool, fn func(store.SourceFile) error) error {
	l, img, err := openImage(s.ref)
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
