package ociimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"

	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// OpenBlobs opens an image kept outside an OCI layout, in a store of
// blobs by digest (containerd's content store): open reads the blob of a
// digest ("sha256:HEX"; fs.ErrNotExist when there is none), top is the
// image's manifest or index. ref names it in messages and provenance
// (e.g. Transport "containerd", Path the image's name). Every blob is
// checked against its digest as from a layout.
func OpenBlobs(ref Ref, open func(digest string) (io.ReadCloser, error), top v1.Descriptor) (*Layout, error) {
	idx, err := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{top}})
	if err != nil {
		return nil, err
	}
	return &Layout{ref: ref, src: blobsSource{blob: open, index: idx}}, nil
}

type blobsSource struct {
	blob  func(digest string) (io.ReadCloser, error)
	index []byte
}

func (s blobsSource) close() error { return nil }

func (s blobsSource) open(name string) (io.ReadCloser, error) {
	switch name {
	case v1.ImageLayoutFile:
		return io.NopCloser(strings.NewReader(`{"imageLayoutVersion":"` + v1.ImageLayoutVersion + `"}`)), nil
	case v1.ImageIndexFile:
		return io.NopCloser(bytes.NewReader(s.index)), nil
	}
	alg, hex, ok := strings.Cut(strings.TrimPrefix(name, v1.ImageBlobsDir+"/"), "/")
	if !ok || !strings.HasPrefix(name, v1.ImageBlobsDir+"/") {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return s.blob(alg + ":" + hex)
}
