// Package ociimage reads OCI image layouts (oci:DIR[:TAG], as skopeo,
// podman save --format oci-dir and umoci write them, and oci-archive:FILE,
// their tar form) and turns an image into a composefs image: every blob is
// checked against its digest while it is read, the layers are applied in
// order with OCI whiteout semantics straight from their tar streams (nothing
// is unpacked to disk), file contents go into the composefs object store as
// they stream by, and each layer's entries are recorded in the store so that
// a layer already imported is never read again.
//
// Package oci (the runtime argv table) is unrelated; this package depends
// on composefs, never the reverse.
package ociimage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Errors, matched with errors.Is; messages name the layout and the blob.
var (
	// ErrBadReference: not "oci:DIR[:TAG]", "oci-archive:FILE[:TAG]" or
	// "docker://REF".
	ErrBadReference = errors.New("invalid OCI image reference (want oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REF)")
	// ErrInvalidLayout: the layout's files are not what the OCI image
	// layout specification describes.
	ErrInvalidLayout = errors.New("invalid OCI image layout")
	// ErrDigestMismatch: a blob's content is not what its descriptor says
	// (digest or size): the layout is corrupt or was tampered with.
	ErrDigestMismatch = errors.New("blob does not match its digest")
	// ErrNoImage: the layout has no image of that name (or several, and
	// none was named).
	ErrNoImage = errors.New("no such image in the layout")
	// ErrUnsupported: a media type, layer entry or feature this package
	// does not handle.
	ErrUnsupported = errors.New("unsupported")
)

// Transports of a reference.
const (
	TransportDir     = "oci"
	TransportArchive = "oci-archive"
	// TransportContainerd names images read from containerd's content
	// store (OpenBlobs), "containerd:NAME", in messages and provenance.
	TransportContainerd = "containerd"
	// TransportDocker is a registry (docker://HOST/REPO[:TAG][@DIGEST], as
	// skopeo and podman write it); it is read through the opener
	// RegisterTransport installed (package ociimage/registry), so that
	// this package links no registry client.
	TransportDocker = "docker"
)

// Ref names an image in an OCI layout: Transport:Path[:Tag]. As with
// skopeo, the path ends at the first ':' after the transport; everything
// after it is the tag (the index's org.opencontainers.image.ref.name, which
// podman save sets to the full image name, colons included).
type Ref struct {
	Transport string
	Path      string // absolute
	Tag       string // "" = the layout's only image
}

// IsRef reports whether s names an OCI image rather than a directory
// tree (it starts with "oci:", "oci-archive:" or "docker://").
func IsRef(s string) bool {
	return strings.HasPrefix(s, TransportDir+":") || strings.HasPrefix(s, TransportArchive+":") || IsRegistryRef(s)
}

// IsRegistryRef reports whether s names an image in a registry
// ("docker://REF").
func IsRegistryRef(s string) bool { return strings.HasPrefix(s, TransportDocker+"://") }

// ParseRef parses "oci:DIR[:TAG]" or "oci-archive:FILE[:TAG]" (a relative
// path is made absolute) or "docker://REF" (Path is REF as given: the
// registry opener parses and normalizes it).
func ParseRef(s string) (Ref, error) {
	if name, ok := strings.CutPrefix(s, TransportDocker+"://"); ok {
		if name == "" {
			return Ref{}, fmt.Errorf("%w: %q names no image", ErrBadReference, s)
		}
		return Ref{Transport: TransportDocker, Path: name}, nil
	}
	transport, rest, ok := strings.Cut(s, ":")
	if !ok || (transport != TransportDir && transport != TransportArchive) {
		return Ref{}, fmt.Errorf("%w: %q", ErrBadReference, s)
	}
	p, tag, _ := strings.Cut(rest, ":")
	if p == "" {
		return Ref{}, fmt.Errorf("%w: %q has no path", ErrBadReference, s)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return Ref{}, fmt.Errorf("%w: %q: %w", ErrBadReference, s, err)
	}
	return Ref{Transport: transport, Path: abs, Tag: tag}, nil
}

// String is the reference in its canonical form, with the absolute path.
func (r Ref) String() string {
	if r.Transport == TransportDocker {
		return TransportDocker + "://" + r.Path
	}
	s := r.Transport + ":" + r.Path
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	return s
}

// Limits on the JSON documents read into memory.
const (
	maxIndexSize    = 4 << 20
	maxManifestSize = 4 << 20
	maxConfigSize   = 16 << 20
	maxIndexDepth   = 4
)

// blobSource reads the files of a layout: "oci-layout", "index.json",
// "blobs/ALG/HEX".
type blobSource interface {
	open(name string) (io.ReadCloser, error)
	close() error
}

type dirSource struct{ dir string }

func (d dirSource) open(name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(d.dir, filepath.FromSlash(name)))
}

func (d dirSource) close() error { return nil }

// Layout is an opened OCI image layout.
type Layout struct {
	ref Ref
	src blobSource
	// read counts the layer blob bytes read (for import summaries), by
	// the goroutines reading layers at once.
	read atomic.Int64
	// progress wraps each layer blob read from disk (Options.Progress).
	progress func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser
}

// location is where the layout's layers are read again: the reference,
// or for a registry the reference pinned to the manifest's digest (a tag
// may move on).
func (l *Layout) location() string {
	if r, ok := l.src.(*remoteSource); ok {
		return r.pinned()
	}
	return l.ref.String()
}

// Open opens the layout ref names and checks its oci-layout file.
func Open(ref Ref) (*Layout, error) {
	l := &Layout{ref: ref}
	switch ref.Transport {
	case TransportDir:
		fi, err := os.Stat(ref.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s: %w: %s is not a directory (an archive is oci-archive:FILE)", ref, ErrInvalidLayout, ref.Path)
		}
		l.src = dirSource{ref.Path}
	case TransportArchive:
		src, err := openArchive(ref.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		l.src = src
	case TransportDocker:
		src, err := openRemote(ref)
		if err != nil {
			return nil, err
		}
		l.src = src
	default:
		return nil, fmt.Errorf("%w: transport %q", ErrBadReference, ref.Transport)
	}
	var hdr v1.ImageLayout
	if err := l.readJSON(v1.ImageLayoutFile, 64<<10, &hdr); err != nil {
		l.Close()
		return nil, err
	}
	if hdr.Version != v1.ImageLayoutVersion {
		l.Close()
		return nil, fmt.Errorf("%s: %w: imageLayoutVersion %q (want %q)", ref, ErrInvalidLayout, hdr.Version, v1.ImageLayoutVersion)
	}
	return l, nil
}

// Ref returns the reference the layout was opened with.
func (l *Layout) Ref() Ref { return l.ref }

// Close releases the layout (the archive file of an oci-archive).
func (l *Layout) Close() error { return l.src.close() }

// readJSON decodes a layout file that is not a blob (oci-layout,
// index.json).
func (l *Layout) readJSON(name string, limit int64, v any) error {
	f, err := l.src.open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: no %s", l.ref, ErrInvalidLayout, name)
		}
		return fmt.Errorf("%s: %w", l.ref, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return fmt.Errorf("%s: %s: %w", l.ref, name, err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%s: %w: %s is larger than %d bytes", l.ref, ErrInvalidLayout, name, limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w: %s: %w", l.ref, ErrInvalidLayout, name, err)
	}
	return nil
}

// blobName is the path of a blob in the layout; the digest is validated
// first, so that it cannot name anything outside blobs/.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded(), nil
}

// openBlob opens the blob desc describes for reading; the reader checks
// the content against the digest and size (see blobReader). what names the
// blob in messages ("manifest", "layer 2/3", ...).
func (l *Layout) openBlob(desc v1.Descriptor, what string) (*blobReader, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s digest %q: %w", l.ref, ErrInvalidLayout, what, desc.Digest, err)
	}
	if !desc.Digest.Algorithm().Available() {
		return nil, fmt.Errorf("%s: %w: %s %s: digest algorithm %q", l.ref, ErrUnsupported, what, desc.Digest, desc.Digest.Algorithm())
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("%s: %w: %s %s: negative size %d", l.ref, ErrInvalidLayout, what, desc.Digest, desc.Size)
	}
	var f io.ReadCloser
	if r, ok := l.src.(*remoteSource); ok {
		f, err = r.openBlob(desc)
	} else {
		f, err = l.src.open(name)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: %s blob %s is missing", l.ref, ErrInvalidLayout, what, desc.Digest)
		}
		return nil, fmt.Errorf("%s: %s blob %s: %w", l.ref, what, desc.Digest, err)
	}
	return newBlobReader(f, desc, fmt.Sprintf("%s: %s blob %s", l.ref, what, desc.Digest)), nil
}

// readBlob reads a whole (small, JSON) blob and checks it.
func (l *Layout) readBlob(desc v1.Descriptor, what string, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%s: %w: %s %s of %d bytes is larger than %d", l.ref, ErrUnsupported, what, desc.Digest, desc.Size, limit)
	}
	b, err := l.openBlob(desc, what)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Image is a resolved image: its manifest and config, read and checked.
type Image struct {
	// Chain is the descriptors from index.json down to the manifest:
	// Chain[0] is index.json's entry, the last one the manifest's.
	Chain        []v1.Descriptor
	Manifest     v1.Manifest
	ManifestJSON []byte
	Config       v1.Image
	// Name is the index entry's org.opencontainers.image.ref.name ("" if
	// it has none).
	Name string
}

// ManifestDescriptor is the descriptor of the image manifest.
func (img *Image) ManifestDescriptor() v1.Descriptor { return img.Chain[len(img.Chain)-1] }

// Resolve finds the image the reference names (its tag, or the only
// image), following nested indexes to the manifest for this machine's
// platform, and reads and checks the manifest and the config.
func (l *Layout) Resolve() (*Image, error) {
	var idx v1.Index
	if err := l.readJSON(v1.ImageIndexFile, maxIndexSize, &idx); err != nil {
		return nil, err
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: %w: index.json schemaVersion %d (want 2)", l.ref, ErrInvalidLayout, idx.SchemaVersion)
	}
	var cands []v1.Descriptor
	var names []string
	for _, d := range idx.Manifests {
		n := d.Annotations[v1.AnnotationRefName]
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
		if l.ref.Tag == "" || n == l.ref.Tag {
			cands = append(cands, d)
		}
	}
	switch {
	case len(cands) == 0 && l.ref.Tag != "":
		return nil, fmt.Errorf("%s: %w: no image named %q (names: %s)", l.ref, ErrNoImage, l.ref.Tag, listNames(names))
	case len(cands) == 0:
		return nil, fmt.Errorf("%s: %w: index.json lists no images", l.ref, ErrNoImage)
	case len(cands) > 1 && l.ref.Tag == "" && len(names) > 1:
		return nil, fmt.Errorf("%s: %w: the layout has %d images; name one as %s:NAME (names: %s)", l.ref, ErrNoImage, len(cands), l.ref, listNames(names))
	}
	d, err := pickPlatform(cands)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.ref, err)
	}
	img := &Image{Name: d.Annotations[v1.AnnotationRefName]}
	for depth := 0; ; depth++ {
		img.Chain = append(img.Chain, d)
		if !isIndex(d.MediaType) {
			break
		}
		if depth == maxIndexDepth {
			return nil, fmt.Errorf("%s: %w: indexes nested deeper than %d", l.ref, ErrUnsupported, maxIndexDepth)
		}
		data, err := l.readBlob(d, "index", maxIndexSize)
		if err != nil {
			return nil, err
		}
		var sub v1.Index
		if err := json.Unmarshal(data, &sub); err != nil {
			return nil, fmt.Errorf("%s: %w: index %s: %w", l.ref, ErrInvalidLayout, d.Digest, err)
		}
		if d, err = pickPlatform(sub.Manifests); err != nil {
			return nil, fmt.Errorf("%s: index %s: %w", l.ref, img.Chain[len(img.Chain)-1].Digest, err)
		}
	}
	md := img.ManifestDescriptor()
	if !isManifest(md.MediaType) {
		return nil, fmt.Errorf("%s: %w: %s has media type %q, not an image manifest", l.ref, ErrUnsupported, md.Digest, md.MediaType)
	}
	if img.ManifestJSON, err = l.readBlob(md, "manifest", maxManifestSize); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(img.ManifestJSON, &img.Manifest); err != nil {
		return nil, fmt.Errorf("%s: %w: manifest %s: %w", l.ref, ErrInvalidLayout, md.Digest, err)
	}
	if img.Manifest.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: %w: manifest %s: schemaVersion %d (want 2)", l.ref, ErrInvalidLayout, md.Digest, img.Manifest.SchemaVersion)
	}
	data, err := l.readBlob(img.Manifest.Config, "config", maxConfigSize)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &img.Config); err != nil {
		return nil, fmt.Errorf("%s: %w: config %s: %w", l.ref, ErrInvalidLayout, img.Manifest.Config.Digest, err)
	}
	if n, m := len(img.Config.RootFS.DiffIDs), len(img.Manifest.Layers); n != m {
		return nil, fmt.Errorf("%s: %w: config %s lists %d diff_ids for the manifest's %d layers", l.ref, ErrInvalidLayout, img.Manifest.Config.Digest, n, m)
	}
	for i, d := range img.Config.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w: config %s: diff_id %d %q: %w", l.ref, ErrInvalidLayout, img.Manifest.Config.Digest, i+1, d, err)
		}
	}
	return img, nil
}

// openImage opens the layout and resolves the image ref names; the
// caller closes the layout.
func openImage(ref Ref) (*Layout, *Image, error) {
	return resolved(Open(ref))
}

// resolved resolves the image of a layout just opened (closing it on an
// error).
func resolved(l *Layout, err error) (*Layout, *Image, error) {
	if err != nil {
		return nil, nil, err
	}
	img, err := l.Resolve()
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, img, nil
}

// Inspect resolves the image ref names: its manifest and config, read and
// checked against their digests (the layers are not read).
func Inspect(ref Ref) (*Image, error) {
	l, img, err := openImage(ref)
	if err != nil {
		return nil, err
	}
	l.Close()
	return img, nil
}

func listNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func isIndex(mt string) bool {
	return mt == v1.MediaTypeImageIndex || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func isManifest(mt string) bool {
	return mt == v1.MediaTypeImageManifest || mt == "application/vnd.docker.distribution.manifest.v2+json"
}

// pickPlatform chooses among the descriptors of an index: the only one, or
// the only one for linux on this machine's architecture.
func pickPlatform(ds []v1.Descriptor) (v1.Descriptor, error) {
	if len(ds) == 1 {
		return ds[0], nil
	}
	var match []v1.Descriptor
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			match = append(match, d)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return v1.Descriptor{}, fmt.Errorf("%w: none of the index's %d manifests is for linux/%s", ErrNoImage, len(ds), runtime.GOARCH)
	}
	return v1.Descriptor{}, fmt.Errorf("%w: %d of the index's manifests are for linux/%s", ErrNoImage, len(match), runtime.GOARCH)
}
