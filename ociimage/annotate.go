package ociimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
)

// Annotate gives the image ref names a new manifest: the current one with
// the annotations in set added to its top-level annotations, after every
// annotation whose key starts with dropPrefix was removed (so that sealing
// again leaves no stale digest or signature). The new manifest is stored
// as a blob, the indexes leading to it are rewritten as new blobs, and
// index.json is replaced atomically to point at them; the old blobs stay
// (other names may still use them, and `umoci gc` removes the rest). All
// other fields, of the manifest and of the descriptors, are kept as they
// are. Only directory layouts (oci:DIR) can be annotated. With expect set,
// the image's manifest must still be that one (what was sealed is what is
// annotated, even if the layout changes meanwhile).
func Annotate(ref Ref, set map[string]string, dropPrefix string, expect digest.Digest) (old, updated v1.Descriptor, err error) {
	if ref.Transport != TransportDir {
		return old, updated, fmt.Errorf("%s: %w: only oci:DIR layouts can be written (extract an oci-archive with tar first)", ref, ErrUnsupported)
	}
	l, img, err := openImage(ref)
	if err != nil {
		return old, updated, err
	}
	defer l.Close()
	blobs, err := rewrite(l, img, set, dropPrefix, expect)
	if err != nil {
		return old, updated, err
	}
	for _, b := range blobs {
		if _, err := putBlob(ref.Path, b.Desc, b.Data); err != nil {
			return old, updated, err
		}
	}
	top := blobs[len(blobs)-1]
	p := filepath.Join(ref.Path, v1.ImageIndexFile)
	index, err := os.ReadFile(p)
	if err != nil {
		return old, updated, fmt.Errorf("%s: %w", ref, err)
	}
	if index, err = replaceDescriptor(index, top.Old, top.Desc, img.Name); err != nil {
		return old, updated, fmt.Errorf("%s: index.json: %w", ref, err)
	}
	if err := atomicfile.WriteFile(p, index, 0o644); err != nil {
		return old, updated, fmt.Errorf("%s: %w", ref, err)
	}
	return img.ManifestDescriptor(), blobs[0].Desc, nil
}

// A RewrittenBlob is a manifest or index that annotating an image
// replaced: Old is the digest it replaces, Desc and Data the new one.
type RewrittenBlob struct {
	Old  digest.Digest
	Desc v1.Descriptor
	Data []byte
}

// AnnotateRemote computes what Annotate would write for an image that is
// not a layout on disk (a registry's): the new manifest first, then each
// index up the chain to the one the reference names, last. Nothing is
// written; the caller pushes them in that order (children before the
// indexes that name them).
func AnnotateRemote(ref Ref, set map[string]string, dropPrefix string, expect digest.Digest) ([]RewrittenBlob, error) {
	l, img, err := openImage(ref)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return rewrite(l, img, set, dropPrefix, expect)
}

// rewrite annotates img's manifest and rewrites the indexes leading to it
// (all fields but the annotations and the child descriptors' digests and
// sizes kept as they are).
func rewrite(l *Layout, img *Image, set map[string]string, dropPrefix string, expect digest.Digest) ([]RewrittenBlob, error) {
	ref := l.ref
	old := img.ManifestDescriptor()
	if expect != "" && old.Digest != expect {
		what := "layout"
		if ref.Transport == TransportDocker {
			what = "tag"
		}
		return nil, fmt.Errorf("%s: %w: its manifest is %s now, not %s (the %s changed meanwhile)", ref, ErrNoImage, old.Digest, expect, what)
	}
	data, err := annotateManifest(img.ManifestJSON, set, dropPrefix)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", ref, old.Digest, err)
	}
	blobs := []RewrittenBlob{{Old: old.Digest, Desc: withContent(old, data), Data: data}}
	// Up the chain: each index gets a new blob naming the new child.
	child, newChild := old, blobs[0].Desc
	for k := len(img.Chain) - 2; k >= 0; k-- {
		desc := img.Chain[k]
		blob, err := l.readBlob(desc, "index", maxIndexSize)
		if err != nil {
			return nil, err
		}
		blob, err = replaceDescriptor(blob, child.Digest, newChild, "")
		if err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", ref, desc.Digest, err)
		}
		nd := withContent(desc, blob)
		blobs = append(blobs, RewrittenBlob{Old: desc.Digest, Desc: nd, Data: blob})
		child, newChild = desc, nd
	}
	return blobs, nil
}

// withContent is like's descriptor with data's digest and size.
func withContent(like v1.Descriptor, data []byte) v1.Descriptor {
	like.Digest, like.Size = digest.Canonical.FromBytes(data), int64(len(data))
	return like
}

// marshal encodes JSON without HTML escaping (so that "<" in a value
// stays "<").
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func annotateManifest(manifest []byte, set map[string]string, dropPrefix string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, err
	}
	ann := map[string]string{}
	if raw, ok := m["annotations"]; ok {
		if err := json.Unmarshal(raw, &ann); err != nil {
			return nil, fmt.Errorf("annotations: %w", err)
		}
	}
	maps.DeleteFunc(ann, func(k, _ string) bool { return dropPrefix != "" && strings.HasPrefix(k, dropPrefix) })
	maps.Copy(ann, set)
	raw, err := marshal(ann)
	if err != nil {
		return nil, err
	}
	m["annotations"] = raw
	return marshal(m)
}

// replaceDescriptor points the entries of an index's "manifests" that name
// the digest old (and, if name is set, carry that ref.name) at updated's
// digest and size, keeping everything else of them.
func replaceDescriptor(index []byte, old digest.Digest, updated v1.Descriptor, name string) ([]byte, error) {
	var idx map[string]json.RawMessage
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, err
	}
	var ms []map[string]json.RawMessage
	if err := json.Unmarshal(idx["manifests"], &ms); err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	n := 0
	for _, d := range ms {
		var dg digest.Digest
		var ann map[string]string
		json.Unmarshal(d["digest"], &dg)
		json.Unmarshal(d["annotations"], &ann)
		if dg != old || (name != "" && ann[v1.AnnotationRefName] != name) {
			continue
		}
		d["digest"], _ = marshal(updated.Digest)
		d["size"], _ = marshal(updated.Size)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: no entry names %s any more (changed meanwhile?)", ErrNoImage, old)
	}
	raw, err := marshal(ms)
	if err != nil {
		return nil, err
	}
	idx["manifests"] = raw
	return marshal(idx)
}

// putBlob stores data as a blob of the layout and returns like's
// descriptor with data's digest and size.
func putBlob(layout string, like v1.Descriptor, data []byte) (v1.Descriptor, error) {
	d := digest.Canonical.FromBytes(data)
	dir := filepath.Join(layout, "blobs", string(d.Algorithm()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return v1.Descriptor{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, d.Encoded()), data, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	like.Digest, like.Size = d, int64(len(data))
	return like, nil
}
