package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// containers-storage keeps an image's layers unpacked (overlay: the
// directory <root>/overlay/<layer>/diff) with the tar-split record of each
// layer's tar (<root>/overlay-layers/<layer>.tar-split.gz: the tar's
// headers and padding as raw segments, and where each file's content
// goes). Reassembling the tar from both gives back the exact uncompressed
// layer, whose sha256 is the layer's diff_id: the import checks it as it
// reads, so no byte of the unpacked directory is taken unchecked.

// storageLayer is the part of a layers.json record read here.
type storageLayer struct {
	ID         string `json:"id"`
	Parent     string `json:"parent"`
	DiffDigest string `json:"diff-digest"`
	DiffSize   int64  `json:"diff-size"`
}

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
	layers, err := layerChain(filepath.Join(root, driver+"-layers", "layers.json"), img.Layer)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: image %s: %w", root, img.ID, err)
	}
	config, err := readBounded(filepath.Join(dir, img.ID, bigDataFile("sha256:"+img.ID)), 16<<20)
	if err != nil {
		return nil, fmt.Errorf("containers-storage %s: image %s: config: %w", root, img.ID, err)
	}
	// A manifest of the unpacked layers: plain tar, digest = diff_id.
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.Digest("sha256:" + img.ID), Size: int64(len(config))}}
	byDigest := map[string]storageLayer{}
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
		return reassemble(filepath.Join(root, driver+"-layers", l.ID+".tar-split.gz"), filepath.Join(root, driver, l.ID, "diff"))
	}
	name := req.Image.Name
	if name == "" && len(img.Names) > 0 {
		name = img.Names[0]
	}
	if name == "" {
		name = img.ID
	}
	lay, err := ociimage.OpenBlobs(ociimage.Ref{Transport: "containers-storage", Path: name}, open, top)
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
			data, err := readBounded(list, maxImagesJSON)
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

// layerChain returns the layers from the bottom up to top.
func layerChain(list, top string) ([]storageLayer, error) {
	data, err := readBounded(list, maxImagesJSON)
	if err != nil {
		return nil, err
	}
	var all []storageLayer
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", list, err)
	}
	byID := map[string]storageLayer{}
	for _, l := range all {
		byID[l.ID] = l
	}
	var chain []storageLayer
	for id := top; id != ""; {
		l, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("%s: no layer %s", list, id)
		}
		if len(chain) > 1000 {
			return nil, fmt.Errorf("%s: layer chain too long (a loop?)", list)
		}
		chain = append([]storageLayer{l}, chain...)
		id = l.Parent
	}
	return chain, nil
}

// tarSplitEntry is one line of a tar-split record: type 1 a file's
// content (read from the unpacked directory), type 2 raw tar bytes.
type tarSplitEntry struct {
	Type    int    `json:"type"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Payload []byte `json:"payload"`
}

// reassemble streams the layer's tar from its tar-split record and its
// unpacked directory. The caller checks the result against the diff_id.
func reassemble(splitFile, diffDir string) (io.ReadCloser, error) {
	f, err := os.Open(splitFile)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer f.Close()
		pw.CloseWithError(writeTar(pw, f, diffDir))
	}()
	return pr, nil
}

func writeTar(w io.Writer, split io.Reader, diffDir string) error {
	gz, err := gzip.NewReader(split)
	if err != nil {
		return fmt.Errorf("tar-split: %w", err)
	}
	defer gz.Close()
	dec := json.NewDecoder(bufio.NewReader(gz))
	bw := bufio.NewWriterSize(w, 1<<20)
	for {
		var e tarSplitEntry
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("tar-split: %w", err)
		}
		switch e.Type {
		case 2:
			if _, err := bw.Write(e.Payload); err != nil {
				return err
			}
		case 1:
			if e.Size == 0 {
				continue
			}
			if err := copyFile(bw, diffDir, e.Name, e.Size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("tar-split: entry type %d", e.Type)
		}
	}
	return bw.Flush()
}

// copyFile writes exactly size bytes of the file name (a tar entry name)
// below dir, without following symbolic links out of it.
func copyFile(w io.Writer, dir, name string, size int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	rel := strings.TrimPrefix(filepath.Clean("/"+name), "/")
	f, err := root.Open(rel)
	if err != nil {
		return fmt.Errorf("layer file %s: %w", name, err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("layer file %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("layer file %s: %d bytes, the layer's record says %d", name, n, size)
	}
	return nil
}
