package ociimage

import (
	"errors"
	"fmt"
	"hash"
	"io"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobReader reads a blob and checks it against its descriptor while the
// bytes go by: more bytes than the descriptor's size fail at once, and at
// the end (io.EOF, or Verify) the size and the digest must match. Nothing
// read from a blob is trusted until the end has been checked: callers
// discard what they built from a blob that fails.
type blobReader struct {
	f    io.ReadCloser
	h    hash.Hash
	want digest.Digest
	size int64
	n    int64
	name string // "oci:DIR:TAG: layer 1/2 blob sha256:..." for messages
	err  error  // sticky result once the end was reached
	done bool
}

func newBlobReader(f io.ReadCloser, desc v1.Descriptor, name string) *blobReader {
	return &blobReader{f: f, h: desc.Digest.Algorithm().Hash(), want: desc.Digest, size: desc.Size, name: name}
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.f.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if b.n > b.size {
		b.done = true
		b.err = fmt.Errorf("%s: %w: it has more than the %d bytes its descriptor says", b.name, ErrDigestMismatch, b.size)
		return 0, b.err
	}
	if errors.Is(err, io.EOF) {
		b.done = true
		if b.err = b.check(); b.err != nil {
			return n, b.err
		}
		return n, io.EOF
	}
	return n, err
}

func (b *blobReader) check() error {
	if b.n != b.size {
		return fmt.Errorf("%s: %w: it has %d bytes, its descriptor says %d", b.name, ErrDigestMismatch, b.n, b.size)
	}
	if got := digest.NewDigest(b.want.Algorithm(), b.h); got != b.want {
		return fmt.Errorf("%s: %w: its content has digest %s", b.name, ErrDigestMismatch, got)
	}
	return nil
}

// Verify reads whatever is left and returns the result of the check.
func (b *blobReader) Verify() error {
	if _, err := io.Copy(io.Discard, b); err != nil {
		return err
	}
	return b.err
}

func (b *blobReader) Close() error { return b.f.Close() }
