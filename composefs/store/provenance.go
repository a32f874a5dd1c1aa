package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
)

// Store metadata besides objects and images:
//
//	provenance/DIGEST.json  where an image's objects came from (Provenance)
//	refs/NAME               an image kept by name: the file holds its digest
//	layers/HEX...           per-OCI-layer records (owned by the OCI importer);
//	                        gc removes those no kept image's provenance names
//
// Provenance lets fsck --repair say which sources it needs and read only
// those; refs are gc's roots besides running containers.

// Source kinds of a provenance record.
const (
	SourceTree     = "tree"      // Ref: absolute path of a directory tree
	SourceOCILayer = "oci-layer" // Ref: "sha256:HEX" layer (diff) digest; Layout: where it was read; Blob: its blob's digest
	SourceImage    = "image"     // Ref: path of an imported composefs image file
)

// ErrNoProvenance is returned for an image imported without a record of
// its sources.
var ErrNoProvenance = errors.New("no provenance recorded")

// Source is one place an image's objects were read from.
type Source struct {
	Kind string `json:"kind"`
	Ref  string `json:"ref"`
	// Layout is the OCI layout a layer was read from ("oci:DIR[:TAG]" or
	// "oci-archive:FILE"), or its registry repository pinned to the
	// image's manifest ("docker://HOST/REPO@sha256:..."); empty for other
	// kinds.
	Layout string `json:"layout,omitempty"`
	// Blob is the digest of the (compressed) layer blob, the one a
	// registry serves it by; empty for other kinds.
	Blob string `json:"blob,omitempty"`
	// Canonical names the rules that made the image from OCI layers when
	// they are not the default ones ("composefs-rs/v1"); empty otherwise.
	Canonical string `json:"canonical,omitempty"`
	// Objects are the hex fs-verity digests of the objects this source
	// provided, sorted. An object may be listed by several sources.
	Objects []string `json:"objects"`
}

// provenanceRecord is the JSON document in provenance/DIGEST.json.
type provenanceRecord struct {
	Image   string   `json:"image"`
	Sources []Source `json:"sources"`
}

// SetProvenance records (replacing any earlier record) where the objects
// of the image with that digest came from. Written atomically.
func (s *Store) SetProvenance(image string, sources []Source) error {
	if _, err := parseDigest(image); err != nil {
		return err
	}
	for i := range sources {
		sort.Strings(sources[i].Objects)
	}
	data, err := json.MarshalIndent(provenanceRecord{Image: image, Sources: sources}, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "provenance")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("provenance: %w", err)
	}
	data = append(data, '\n')
	p := filepath.Join(dir, image+".json")
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil // a re-import from the same source rewrites nothing
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// Provenance returns the recorded sources of an image, or an error
// matching ErrNoProvenance.
func (s *Store) Provenance(image string) ([]Source, error) {
	if _, err := parseDigest(image); err != nil {
		return nil, err
	}
	p := filepath.Join(s.dir, "provenance", image+".json")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", image, ErrNoProvenance)
	}
	if err != nil {
		return nil, err
	}
	var rec provenanceRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if rec.Image != image {
		return nil, fmt.Errorf("%s: record is for image %q", p, rec.Image)
	}
	return rec.Sources, nil
}

// ErrBadRefName is returned for a ref name that is empty, too long or
// starts with a dot.
var ErrBadRefName = errors.New("invalid image ref name")

// refFile maps a ref name (e.g. "oci:/srv/img:latest" or "busybox") to a
// file name: path-escaped so that any name is one file under refs/.
func refFile(name string) (string, error) {
	if name == "" || len(name) > 200 || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("%w: %q", ErrBadRefName, name)
	}
	return url.PathEscape(name), nil
}

// SetRef makes name refer to the image digest (replacing what it named):
// gc keeps the image while a ref names it.
func (s *Store) SetRef(name, digest string) error {
	if _, err := parseDigest(digest); err != nil {
		return err
	}
	f, err := refFile(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "refs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("refs: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, f), []byte(digest+"\n"), 0o600)
}

// DeleteRef removes a ref; removing one that does not exist is not an error.
func (s *Store) DeleteRef(name string) error {
	f, err := refFile(name)
	if err != nil {
		return err
	}
	err = os.Remove(filepath.Join(s.dir, "refs", f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Refs returns every ref: name → image digest.
func (s *Store) Refs() (map[string]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	refs := make(map[string]string, len(ents))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") { // atomicfile temporaries
			continue
		}
		name, err := url.PathUnescape(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, "refs", e.Name()))
		if err != nil {
			return nil, err
		}
		d := strings.TrimSpace(string(data))
		if _, err := parseDigest(d); err != nil {
			return nil, fmt.Errorf("ref %q: %w", name, err)
		}
		refs[name] = d
	}
	return refs, nil
}

// recordSource records, before the import's commit, that every object of
// this import and the image itself came from one source: the tree or
// image file at path (made absolute, so that a repair finds it again from
// any directory), first among the sources recorded before. Written before the images/ link, under the import's
// shared lock: gc never sees the image without its record.
func (se *session) recordSource(image, kind, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("provenance: %w", err)
	}
	se.mu.Lock()
	objs := make([]string, 0, len(se.claimed)+1)
	for d := range se.claimed {
		objs = append(objs, hex.EncodeToString(d[:]))
	}
	se.mu.Unlock()
	objs = append(objs, image)
	sources := []Source{{Kind: kind, Ref: abs, Objects: objs}}
	// Sources recorded before (the same image from another tree, or
	// from OCI layers) stay known: each can still provide its objects.
	old, _ := se.s.Provenance(image)
	for _, o := range old {
		if o.Kind != kind || o.Ref != abs || o.Layout != "" {
			sources = append(sources, o)
		}
	}
	return se.s.SetProvenance(image, sources)
}
