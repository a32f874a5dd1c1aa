// Package cstorage reads image layers out of containers-storage (the image
// store of podman and CRI-O) from its files, without its library: an
// overlay layer is kept unpacked (<root>/overlay/<layer>/diff) with the
// tar-split record of its tar (<root>/overlay-layers/<layer>.tar-split.gz:
// the tar's headers and padding as raw segments, and where each file's
// content goes). Reassembling the tar from both gives back the exact
// uncompressed layer, whose sha256 is the layer's diff_id: readers check
// it, so no byte of the unpacked directory is taken unchecked.
//
// cfs-runtime-engine imports images with it at create; the tools' fsck
// --repair reads the layers an import recorded (NewSource).
package cstorage

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Transport names images read from containers-storage in messages and
// provenance: "containers-storage:NAME".
const Transport = "containers-storage"

// MaxList bounds a JSON list read from the store (images.json,
// layers.json, containers.json).
const MaxList = 64 << 20

// Layer is the part of a layers.json record read here.
type Layer struct {
	ID         string `json:"id"`
	Parent     string `json:"parent"`
	DiffDigest string `json:"diff-digest"`
	DiffSize   int64  `json:"diff-size"`
}

// ReadLayers reads a layers.json.
func ReadLayers(list string) ([]Layer, error) {
	data, err := ReadBounded(list, MaxList)
	if err != nil {
		return nil, err
	}
	var all []Layer
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", list, err)
	}
	return all, nil
}

// LayerChain returns the layers from the bottom up to top.
func LayerChain(list, top string) ([]Layer, error) {
	all, err := ReadLayers(list)
	if err != nil {
		return nil, err
	}
	byID := map[string]Layer{}
	for _, l := range all {
		byID[l.ID] = l
	}
	var chain []Layer
	for id := top; id != ""; {
		l, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("%s: no layer %s", list, id)
		}
		if len(chain) > 1000 {
			return nil, fmt.Errorf("%s: layer chain too long (a loop?)", list)
		}
		chain = append([]Layer{l}, chain...)
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

// Reassemble streams the layer's tar from its tar-split record and its
// unpacked directory. The caller checks the result against the diff_id.
func Reassemble(splitFile, diffDir string) (io.ReadCloser, error) {
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

// ReassembleLayer is Reassemble for layer id of the overlay driver under
// root.
func ReassembleLayer(root, id string) (io.ReadCloser, error) {
	return Reassemble(filepath.Join(root, "overlay-layers", id+".tar-split.gz"), filepath.Join(root, "overlay", id, "diff"))
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

// ReadBounded reads a regular file of at most limit bytes.
func ReadBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > limit {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, limit)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, err
	}
	return data, nil
}
