package ociimage

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/igzip"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// entry is one tar entry of a layer in composefs terms.
type entry struct {
	path string          // absolute and clean; "/" for the layer's root entry
	node *composefs.Node // metadata and content (inline, or digest and payload)
	link string          // hardlink target path, "" if not a hardlink
}

// whiteoutPrefix marks OCI whiteouts: ".wh.NAME" deletes NAME from the
// layers below, ".wh..wh..opq" hides everything below in its directory.
const (
	whiteoutPrefix = ".wh."
	opaqueName     = ".wh..wh..opq"
)

// objectSink takes the content of a regular file stored outside the image
// and returns its fs-verity digest: a store (store.StreamImport) or
// just a hasher (hashSink) when only the digest is wanted.
type objectSink interface {
	PutObject(r io.Reader, size int64) ([]byte, error)
}

// hashSink computes object digests without storing anything.
type hashSink struct {
	h   *verity.Hasher
	buf []byte
}

func newHashSink(alg verity.Algorithm) (*hashSink, error) {
	h, err := verity.NewHasher(verity.WithAlgorithm(alg))
	if err != nil {
		return nil, err
	}
	return &hashSink{h: h, buf: make([]byte, 256<<10)}, nil
}

func (s *hashSink) PutObject(r io.Reader, size int64) ([]byte, error) {
	s.h.Reset()
	n, err := io.CopyBuffer(s.h, r, s.buf)
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("%w: %d bytes, the entry says %d", store.ErrShortStream, n, size)
	}
	return s.h.Sum(), nil
}

// compression of a layer media type: "" (plain tar), "gzip" or "zstd".
func compression(mediaType string) (string, error) {
	switch mediaType {
	// (The deprecated non-distributable types are still found in layouts.)
	case v1.MediaTypeImageLayer, "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.docker.image.rootfs.diff.tar":
		return "", nil
	case v1.MediaTypeImageLayerGzip, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return "gzip", nil
	case v1.MediaTypeImageLayerZstd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return "zstd", nil
	}
	return "", fmt.Errorf("%w: layer media type %q", ErrUnsupported, mediaType)
}

// readLayer streams layer i of img: decompresses it, checks the blob's
// digest and the uncompressed content's diff_id, turns the tar entries
// into entries and gives every external file's content to sink.
func (l *Layout) readLayer(img *Image, i int, sink objectSink) ([]entry, error) {
	var entries []entry
	small := make([]byte, composefs.MaxInlineFromDir)
	err := l.walkLayer(img, i, func(e entry, content io.Reader) error {
		n := e.node
		if e.link == "" && n.Type() == composefs.ModeRegular {
			if strings.HasPrefix(path.Base(e.path), whiteoutPrefix) {
				n.Size = 0 // a marker: its content (if any) means nothing
			} else if err := readContent(content, n, sink, small); err != nil {
				return fmt.Errorf("%s: %w", e.path, err)
			}
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// walkLayer streams layer i of img and calls fn for each tar entry, with
// content positioned at the entry's data. The blob is checked against its
// digest (a mismatch is reported in preference to whatever else failed:
// it explains it) and the uncompressed stream against the diff_id; fn's
// work must be discarded when walkLayer fails.
func (l *Layout) walkLayer(img *Image, i int, fn func(e entry, content io.Reader) error) error {
	desc := img.Manifest.Layers[i]
	comp, err := compression(desc.MediaType)
	if err != nil {
		return fmt.Errorf("%s: layer %d/%d %s: %w", l.ref, i+1, len(img.Manifest.Layers), desc.Digest, err)
	}
	b, err := l.openBlob(desc, fmt.Sprintf("layer %d/%d", i+1, len(img.Manifest.Layers)))
	if err != nil {
		return err
	}
	if _, remote := l.src.(*remoteSource); l.progress != nil && !remote {
		b.f = l.progress(desc, b.f)
	}
	defer b.Close()
	defer func() { l.read.Add(b.n) }()
	if err := walkTar(b, comp, img.Config.RootFS.DiffIDs[i], b.name, fn); err != nil {
		if errors.Is(err, errStopped) {
			return err // not needed any more (readLayers): fetch no more of it
		}
		if verr := b.Verify(); verr != nil {
			return verr
		}
		return err
	}
	return b.Verify()
}

func walkTar(r io.Reader, comp string, diffID digest.Digest, name string, fn func(e entry, content io.Reader) error) error {
	// The stages (see readAhead): r (which computes the blob's digest)
	// is read ahead of the decompression, which runs ahead of the diff_id
	// digest, which runs ahead of fn. All are stopped, and waited for,
	// before walkTar returns (the caller may read r again), and only then
	// is the decompressor closed.
	var (
		stages []*readAhead
		closer func()
	)
	defer func() {
		for _, ra := range stages {
			ra.halt()
		}
		for _, ra := range stages {
			ra.stop()
		}
		if closer != nil {
			closer()
		}
	}()
	dec := r
	if comp != "" {
		blob := newReadAhead(r, nil)
		stages = append(stages, blob)
		// Go's decompressors read through a bufio.Reader, which they use
		// as it is (and flate reads fastest); igzip is handed whole
		// chunks of the blob.
		br := bufio.NewReaderSize(blob, 64<<10)
		switch {
		case comp == "gzip" && igzip.Path() != "":
			// ISA-L's igzip, when installed: 2.5-3x Go's inflate.
			z, err := igzip.NewReader(igzip.Path(), blob)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			closer, dec = func() { z.Close() }, z
		case comp == "gzip":
			gz, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("%s: gzip: %w", name, err)
			}
			closer, dec = func() { gz.Close() }, gz
		case comp == "zstd":
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return fmt.Errorf("%s: zstd: %w", name, err)
			}
			closer, dec = zr.Close, zr
		default:
			return fmt.Errorf("%s: %w: compression %q", name, ErrUnsupported, comp)
		}
	}
	if !diffID.Algorithm().Available() {
		return fmt.Errorf("%s: %w: diff_id algorithm %q", name, ErrUnsupported, diffID.Algorithm())
	}
	dh := diffID.Algorithm().Hash()
	ahead := newReadAhead(dec, dh)
	stages = append(stages, ahead)
	tr := tar.NewReader(ahead)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: reading tar: %w", name, err)
		}
		e, skip, err := convertHeader(h)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if skip {
			continue
		}
		if err := fn(e, tr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	// The end-of-archive blocks and any padding after them are part of the
	// uncompressed stream the diff_id covers.
	if _, err := io.Copy(io.Discard, ahead); err != nil {
		return fmt.Errorf("%s: reading to the end: %w", name, err)
	}
	if got := digest.NewDigest(diffID.Algorithm(), dh); got != diffID {
		return fmt.Errorf("%s: %w: its uncompressed content has digest %s, the config's diff_id is %s", name, ErrDigestMismatch, got, diffID)
	}
	return nil
}

// readContent reads a regular file's content: inline up to 64 bytes (as
// mkcomposefs and composefs-rs inline), else into sink.
func readContent(r io.Reader, n *composefs.Node, sink objectSink, small []byte) error {
	switch {
	case n.Size == 0:
	case n.Size <= uint64(len(small)):
		n.Content = make([]byte, n.Size)
		if _, err := io.ReadFull(r, n.Content); err != nil {
			return err
		}
	default:
		d, err := sink.PutObject(r, int64(n.Size))
		if err != nil {
			return err
		}
		n.Digest, n.Payload = d, composefs.ObjectPath(d)
	}
	return nil
}

// cleanPath turns a tar entry name into an absolute clean path; ".."
// components are refused (they would reach outside the image).
func cleanPath(name string) (string, error) {
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf("%w: entry name %q contains \"..\"", ErrUnsupported, name)
	}
	return path.Clean("/" + name), nil
}

// convertHeader turns a tar header into an entry; skip is set for headers
// that are not files (global PAX headers).
func convertHeader(h *tar.Header) (e entry, skip bool, err error) {
	if e.path, err = cleanPath(h.Name); err != nil {
		return e, false, err
	}
	var typ uint32
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		typ = composefs.ModeRegular
	case tar.TypeLink:
		typ = composefs.ModeRegular
		if e.link, err = cleanPath(h.Linkname); err != nil {
			return e, false, err
		}
		if e.link == "/" {
			return e, false, fmt.Errorf("%w: %s: hardlink to the root directory", ErrUnsupported, e.path)
		}
	case tar.TypeDir:
		typ = composefs.ModeDir
	case tar.TypeSymlink:
		typ = composefs.ModeSymlink
	case tar.TypeChar:
		typ = composefs.ModeChar
	case tar.TypeBlock:
		typ = composefs.ModeBlock
	case tar.TypeFifo:
		typ = composefs.ModeFifo
	case tar.TypeXGlobalHeader:
		return e, true, nil
	default:
		return e, false, fmt.Errorf("%w: %s: tar entry type %q", ErrUnsupported, e.path, h.Typeflag)
	}
	if h.Uid < 0 || h.Uid > math.MaxUint32 || h.Gid < 0 || h.Gid > math.MaxUint32 {
		return e, false, fmt.Errorf("%w: %s: uid %d / gid %d out of range", ErrUnsupported, e.path, h.Uid, h.Gid)
	}
	n := &composefs.Node{
		Mode:      typ | uint32(h.Mode)&0o7777,
		Nlink:     1,
		UID:       uint32(h.Uid),
		GID:       uint32(h.Gid),
		MtimeSec:  h.ModTime.Unix(),
		MtimeNsec: uint32(h.ModTime.Nanosecond()),
	}
	switch typ {
	case composefs.ModeRegular:
		if e.link == "" {
			n.Size = uint64(h.Size)
		}
	case composefs.ModeSymlink:
		if h.Linkname == "" {
			return e, false, fmt.Errorf("%w: %s: symlink without a target", ErrUnsupported, e.path)
		}
		n.Payload, n.Size = h.Linkname, uint64(len(h.Linkname))
	case composefs.ModeChar, composefs.ModeBlock:
		n.Rdev = unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	}
	for k, v := range h.PAXRecords {
		if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && x != "" {
			n.Xattrs = append(n.Xattrs, composefs.Xattr{Name: x, Value: []byte(v)})
		}
	}
	slices.SortFunc(n.Xattrs, func(a, b composefs.Xattr) int { return strings.Compare(a.Name, b.Name) })
	e.node = n
	return e, false, nil
}
