package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/containerd"
	"github.com/cfs-runtime/cfs-runtime/internal/cstorage"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
)

// containers-storage (CRI-O's and podman's image store) is read from its
// files, as its library lays them out: <root>/<driver>-images/images.json
// lists the images, each image's "big data" (manifests, config) are files
// in <root>/<driver>-images/<id>/. The files are replaced by rename, so a
// reader sees a whole old or a whole new version; every manifest read is
// checked against the digest the image record gives it.

// storageImage is the part of an images.json record read here.
type storageImage struct {
	ID             string            `json:"id"`
	Layer          string            `json:"layer"`
	Digest         string            `json:"digest"`
	Names          []string          `json:"names"`
	BigDataDigests map[string]string `json:"big-data-digests"`
}

func storageManifest(req *engineimage.Request) (*engineimage.Manifest, error) {
	if req.StorageRoot == "" {
		return nil, errors.New("containers-storage: no storage root in the request")
	}
	img, dir, err := findStorageImage(req.StorageRoot, req.Image)
	if err != nil {
		return nil, err
	}
	read := func(d descriptor) ([]byte, error) {
		for key, digest := range img.BigDataDigests {
			if digest != d.Digest || (key != "manifest" && !strings.HasPrefix(key, "manifest-")) {
				continue
			}
			data, err := cstorage.ReadBounded(filepath.Join(dir, img.ID, bigDataFile(key)), maxBlob)
			if err != nil {
				return nil, err
			}
			if err := containerd.CheckDigest(d.Digest, data); err != nil {
				return nil, err
			}
			return data, nil
		}
		return nil, fmt.Errorf("no manifest %s in the image's record", d.Digest)
	}
	m, err := resolveManifest(read, descriptor{Digest: img.Digest})
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: image %s: %w", req.StorageRoot, img.ID, err)
	}
	if m.Config != "sha256:"+img.ID {
		return nil, fmt.Errorf("containers-storage %s: image %s: manifest %s has config %s", req.StorageRoot, img.ID, m.Digest, m.Config)
	}
	return m, nil
}

// findStorageImage finds the image by its id (Ref) if the engine gave
// one, else by name, in every driver's images.json under root.
func findStorageImage(root string, want engineimage.Image) (*storageImage, string, error) {
	lists, err := filepath.Glob(filepath.Join(root, "*-images", "images.json"))
	if err != nil || len(lists) == 0 {
		return nil, "", fmt.Errorf("containers-storage %s: no image store (*-images/images.json)", root)
	}
	id := strings.TrimPrefix(want.Ref, "sha256:")
	for _, list := range lists {
		data, err := cstorage.ReadBounded(list, cstorage.MaxList)
		if err != nil {
			return nil, "", err
		}
		var images []storageImage
		if err := json.Unmarshal(data, &images); err != nil {
			return nil, "", fmt.Errorf("containers-storage %s: %w", list, err)
		}
		for i := range images {
			img := &images[i]
			if (id != "" && img.ID == id) || (id == "" && slices.Contains(img.Names, want.Name)) {
				return img, filepath.Dir(list), nil
			}
		}
	}
	if id != "" {
		return nil, "", fmt.Errorf("containers-storage %s: no image with id %s", root, id)
	}
	return nil, "", fmt.Errorf("containers-storage %s: no image named %s", root, want.Name)
}

// bigDataFile is the file name containers-storage gives a big-data key:
// the key itself when it is made of [.0-9a-z] only, else "=" and its
// base64.
func bigDataFile(key string) string {
	for _, c := range key {
		if c != '.' && (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return "=" + base64.StdEncoding.EncodeToString([]byte(key))
		}
	}
	return key
}
