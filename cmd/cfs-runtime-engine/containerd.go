package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/containerd"
	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// maxBlob bounds a manifest or index read from the content store.
	maxBlob = 4 << 20
	timeout = 30 * time.Second
)

func containerdManifest(req *engineimage.Request) (*engineimage.Manifest, error) {
	if req.ContainerdAddress == "" || req.ContainerdNamespace == "" {
		return nil, errors.New("containerd: no address or namespace in the request")
	}
	// An import reads whole layers: its caller bounds it.
	limit := timeout
	if req.Op == engineimage.OpImport {
		limit = 0
	}
	c, err := containerd.Dial(req.ContainerdAddress, req.ContainerdNamespace, limit)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m, target, err := manifest(c, req)
	if err != nil || req.Op != engineimage.OpImport {
		return m, err
	}
	ref := ociimage.Ref{Transport: ociimage.TransportContainerd, Path: req.Image.Name}
	l, err := ociimage.OpenBlobs(ref, c.OpenBlob, v1.Descriptor{MediaType: target.MediaType, Digest: digest.Digest(target.Digest), Size: target.Size})
	if err != nil {
		return nil, err
	}
	if m.Log, err = importLayout(req, l); err != nil {
		return nil, err
	}
	return m, nil
}

// manifest reads the image of the container's record (ctrdapi.ImageOf:
// by the image id the CRI plugin resolved, so that a tag moved since then
// cannot change which image is checked). It also returns the image
// record's target.
func manifest(c *containerd.Client, req *engineimage.Request) (*engineimage.Manifest, descriptor, error) {
	var none descriptor
	ci, err := ctrdapi.ImageOf(c, c.Addr, req.ContainerID, req.Image.Name)
	if err != nil {
		return nil, none, err
	}
	t := ci.Target
	target := descriptor{MediaType: t.MediaType, Digest: t.Digest, Size: t.Size}
	read := func(d descriptor) ([]byte, error) {
		return c.ReadBlob(containerd.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, maxBlob)
	}
	m, err := resolveManifest(read, target)
	if err != nil {
		return nil, none, fmt.Errorf("containerd: image %s: %w", ci.Lookup, err)
	}
	if ci.ImageID != "" && m.Config != ci.ImageID {
		return nil, none, fmt.Errorf("containerd: image %s: manifest %s has config %s", ci.ImageID, m.Digest, m.Config)
	}
	// The seal cache of create is keyed by the target: what containerd's
	// records state without reading a blob.
	m.Target = target.Digest
	return m, target, nil
}
