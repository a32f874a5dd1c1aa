// Package ocitest writes synthetic OCI image layouts for tests: layers
// made of tar entries (plain, gzip or zstd), configs, manifests and the
// index, as skopeo would write them.
package ocitest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Entry is a tar entry of a synthetic layer.
type Entry struct {
	Name   string
	Type   byte // tar.TypeReg if 0
	Mode   int64
	Body   string
	Link   string
	UID    int // also the gid
	Mtime  int64
	Nsec   int64 // sub-second mtime (a PAX record)
	Xattrs map[string]string
}

// Dir is a directory entry.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// File is a regular file, mode 0644.
func File(name, body string) Entry { return Entry{Name: name, Mode: 0o644, Body: body} }

// Whiteout is an empty file, as whiteout markers are.
func Whiteout(name string) Entry { return Entry{Name: name, Mode: 0o644} }

// Hardlink is a hardlink to target.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Mode: 0o644, Link: target}
}

// Symlink is a symbolic link to target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// At sets the mtime.
func (e Entry) At(sec, nsec int64) Entry { e.Mtime, e.Nsec = sec, nsec; return e }

// WithXattr sets one xattr.
func (e Entry) WithXattr(k, v string) Entry { e.Xattrs = map[string]string{k: v}; return e }

// Body is n bytes of a pattern starting at seed.
func Body(seed byte, n int) string {
	return strings.Repeat(string([]byte{seed, seed + 1, seed + 2}), n/3+1)[:n]
}

// Tar writes the entries as a PAX tar archive.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.UID,
			ModTime: time.Unix(e.Mtime, e.Nsec), Linkname: e.Link, Format: tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if e.Xattrs != nil {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer is a layer of a synthetic image: its tar and its compression
// ("", "gzip" or "zstd").
type Layer struct {
	Tar         []byte
	Compression string
}

func compress(t testing.TB, l Layer) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	switch l.Compression {
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(l.Tar)
		w.Close()
		return buf.Bytes(), v1.MediaTypeImageLayerGzip
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(l.Tar)
		w.Close()
		return buf.Bytes(), v1.MediaTypeImageLayerZstd
	}
	return l.Tar, v1.MediaTypeImageLayer
}

// AddBlob writes a blob into the layout at dir and returns its descriptor.
func AddBlob(t testing.TB, dir, mediaType string, data []byte) v1.Descriptor {
	t.Helper()
	d := digest.FromBytes(data)
	p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// JSON marshals v.
func JSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteImage adds an image of these layers to the layout at dir (created
// if needed) under the name (org.opencontainers.image.ref.name), and
// returns its manifest descriptor.
func WriteImage(t testing.TB, dir, name string, layers ...Layer) v1.Descriptor {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, RootFS: v1.RootFS{Type: "layers"}}
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l.Tar))
		data, mt := compress(t, l)
		m.Layers = append(m.Layers, AddBlob(t, dir, mt, data))
	}
	m.Config = AddBlob(t, dir, v1.MediaTypeImageConfig, JSON(t, cfg))
	md := AddBlob(t, dir, v1.MediaTypeImageManifest, JSON(t, m))
	md.Annotations = map[string]string{v1.AnnotationRefName: name}
	var idx v1.Index
	if data, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatal(err)
		}
	}
	idx.SchemaVersion = 2
	idx.MediaType = v1.MediaTypeImageIndex
	idx.Manifests = append(idx.Manifests, md)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), JSON(t, idx), 0o644); err != nil {
		t.Fatal(err)
	}
	return md
}

// VerityHex is the fs-verity digest of content, in hex.
func VerityHex(t testing.TB, content string) string {
	t.Helper()
	h, err := verity.NewHasher()
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte(content))
	return hex.EncodeToString(h.Sum())
}

// VerityPath is the store object path ("XX/YYYY...") of content.
func VerityPath(t testing.TB, content string) string {
	d := VerityHex(t, content)
	return d[:2] + "/" + d[2:]
}
