package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/containerd"
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

// manifest reads the image of the container's record: by the image id
// the CRI plugin resolved when it created the container (the record's
// ImageRef), so that a tag moved since then cannot change which image is
// checked; by name only for a record without one. It also returns the
// image record's target.
func manifest(c *containerd.Client, req *engineimage.Request) (*engineimage.Manifest, descriptor, error) {
	var none descriptor
	name, imageID, err := c.Container(req.ContainerID)
	if err != nil {
		return nil, none, err
	}
	if name != req.Image.Name {
		return nil, none, fmt.Errorf("containerd: container %s runs image %q, but its annotation %s says %q", req.ContainerID, name, engineimage.ContainerdImageName, req.Image.Name)
	}
	lookup := name
	if imageID != "" {
		lookup = imageID
	}
	t, err := c.Image(lookup)
	if containerd.IsNotFound(err) && lookup != name {
		// Images the CRI plugin did not pull itself (ctr images
		// import) have no record named by their id: the name's record
		// then, held to the id below.
		lookup = name
		t, err = c.Image(lookup)
	}
	if err != nil {
		return nil, none, fmt.Errorf("containerd %s: image %s: %w", c.Addr, lookup, containerd.Describe(err))
	}
	target := descriptor{MediaType: t.MediaType, Digest: t.Digest, Size: t.Size}
	read := func(d descriptor) ([]byte, error) {
		return c.ReadBlob(containerd.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, maxBlob)
	}
	m, err := resolveManifest(read, target)
	if err != nil {
		return nil, none, fmt.Errorf("containerd: image %s: %w", lookup, err)
	}
	if imageID != "" && m.Config != imageID {
		return nil, none, fmt.Errorf("containerd: image %s: manifest %s has config %s", imageID, m.Digest, m.Config)
	}
	return m, target, nil
}
