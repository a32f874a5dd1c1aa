package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/cstorage"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The layers' tars are reassembled by package cstorage; the import checks
// each against its diff_id as it reads, so no byte of the unpacked
// directory is taken unchecked.

// storageImport imports the image of the request's container (podman:
// the container's record names its image) or the image CRI-O names, from
// containers-storage, committing it only with the sealed digest.
func storageImport(req *engineimage.Request) (*engineimage.Manifest, error) {
	root := req.StorageRoot
	img, dir, err := storageImageOf(req)
	if err != nil {
		return nil, err
	}
	driver := strings.TrimSuffix(filepath.Base(dir), "-images")
	if driver != "overlay" {
		return nil, fmt.Errorf("containers-storage %s: driver %s: only overlay layers can be read", root, driver)
	}
	layers, err := cstorage.LayerChain(filepath.Join(root, driver+"-layers", "layers.json"), img.Layer)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: image %s: %w", root, img.ID, err)
	}
	config, err := cstorage.ReadBounded(filepath.Join(dir, img.ID, bigDataFile("sha256:"+img.ID)), 16<<20)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: image %s: config: %w", root, img.ID, err)
	}
	// A manifest of the unpacked layers: plain tar, digest = diff_id.
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.Digest("sha256:" + img.ID), Size: int64(len(config))}}
	byDigest := map[string]cstorage.Layer{}
	for _, l := range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.Digest(l.DiffDigest), Size: l.DiffSize})
		byDigest[l.DiffDigest] = l
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	top := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	open := func(d string) (io.ReadCloser, error) {
		switch {
		case d == top.Digest.String():
			return io.NopCloser(bytes.NewReader(manifest)), nil
		case d == m.Config.Digest.String():
			return io.NopCloser(bytes.NewReader(config)), nil
		}
		l, ok := byDigest[d]
		if !ok {
			return nil, fmt.Errorf("%s: %w", d, fs.ErrNotExist)
		}
		return cstorage.ReassembleLayer(root, l.ID)
	}
	name := req.Image.Name
	if name == "" && len(img.Names) > 0 {
		name = img.Names[0]
	}
	if name == "" {
		name = img.ID
	}
	lay, err := ociimage.OpenBlobs(ociimage.Ref{Transport: cstorage.Transport, Path: name}, open, top)
	if err != nil {
		return nil, err
	}
	log, err := importLayout(req, lay)
	if err != nil {
		return nil, err
	}
	return &engineimage.Manifest{Digest: img.Digest, Config: "sha256:" + img.ID, Log: log}, nil
}

// storageImageOf finds the image: by the container's record (podman),
// else as storageManifest does.
func storageImageOf(req *engineimage.Request) (*storageImage, string, error) {
	want := req.Image
	if want.Engine == engineimage.Podman {
		lists, _ := filepath.Glob(filepath.Join(req.StorageRoot, "*-containers", "containers.json"))
		for _, list := range lists {
			data, err := cstorage.ReadBounded(list, cstorage.MaxList)
			if err != nil {
				return nil, "", err
			}
			var ctrs []struct{ ID, Image string }
			if err := json.Unmarshal(data, &ctrs); err != nil {
				return nil, "", fmt.Errorf("containers-storage %s: %w", list, err)
			}
			for _, c := range ctrs {
				if c.ID == req.ContainerID && c.Image != "" {
					want.Ref = c.Image
				}
			}
		}
		if want.Ref == "" {
			return nil, "", fmt.Errorf("containers-storage %s: no container %s with an image", req.StorageRoot, req.ContainerID)
		}
	}
	return findStorageImage(req.StorageRoot, want)
}
