package ociimage

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	digest "github.com/opencontainers/go-digest"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/igzip"
	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// countingSrc counts the reads made of it.
type countingSrc struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingSrc) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

// countingHash is a sha256 that counts the writes made into it.
type countingHash struct {
	hash.Hash
	writes atomic.Int64
}

func (h *countingHash) Write(p []byte) (int, error) {
	h.writes.Add(1)
	return h.Hash.Write(p)
}

// newTestReadAhead is a readAhead of src, with a hash stage (and its hash)
// if hashed.
func newTestReadAhead(src io.Reader, hashed bool) (*readAhead, *countingHash) {
	if !hashed {
		return newReadAhead(src, nil), nil
	}
	h := &countingHash{Hash: sha256.New()}
	return newReadAhead(src, h), h
}

// readAhead passes every byte through, in order, whatever the sizes, and
// the source's end; with a hash stage, the hash has had every byte when
// Read returns io.EOF.
func TestReadAhead(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		for _, n := range []int{0, 1, readAheadChunk - 1, readAheadChunk, readAheadChunk*readAheadChunks*3 + 17} {
			data := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
			ra, h := newTestReadAhead(iotest.HalfReader(bytes.NewReader(data)), hashed)
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 1<<62)))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("hash stage %v, %d bytes: got %d, %v", hashed, len(data), len(got), err)
			}
			// The hash is read before stop: complete at io.EOF.
			if sum := sha256.Sum256(data); hashed && !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Errorf("%d bytes: the hash stage missed bytes", n)
			}
			ra.stop()
		}
	}
}

// A source failing mid-stream: Read returns every byte before the failure,
// then the source's error (not io.EOF), through the hash stage too.
func TestReadAheadSourceError(t *testing.T) {
	boom := errors.New("boom")
	for _, hashed := range []bool{false, true} {
		data := bytes.Repeat([]byte{7}, 3*readAheadChunk+1000)
		ra, _ := newTestReadAhead(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), hashed)
		got, err := io.ReadAll(ra)
		if !errors.Is(err, boom) || !bytes.Equal(got, data) {
			t.Errorf("hash stage %v: %d bytes, %v; want %d bytes, %v", hashed, len(got), err, len(data), boom)
		}
		ra.stop()
	}
}

// A source's own io.ErrUnexpectedEOF (a decompressor's truncated stream)
// reaches Read as it is: it is not the source's end.
func TestReadAheadTruncatedSource(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		src := io.MultiReader(bytes.NewReader(make([]byte, 1000)), iotest.ErrReader(io.ErrUnexpectedEOF))
		ra, _ := newTestReadAhead(src, hashed)
		got, err := io.ReadAll(ra)
		if len(got) != 1000 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("hash stage %v: %d bytes, %v; want 1000, %v", hashed, len(got), err, io.ErrUnexpectedEOF)
		}
		ra.stop()
	}
}

// After stop, nothing reads the source or writes the hash any more (the
// caller reads the source again to check its digest), whichever stage
// was waiting, and Read says errStopped.
func TestReadAheadStop(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		for _, readFirst := range []bool{false, true} {
			src := &countingSrc{r: bytes.NewReader(make([]byte, 100*readAheadChunk))}
			ra, h := newTestReadAhead(src, hashed)
			if readFirst {
				if _, err := ra.Read(make([]byte, 10)); err != nil {
					t.Fatal(err)
				}
			}
			ra.stop()
			ra.stop() // idempotent
			writes := func() int64 {
				if h == nil {
					return 0
				}
				return h.writes.Load()
			}
			n, w := src.reads.Load(), writes()
			if _, err := io.ReadAll(ra); err != nil && !errors.Is(err, errStopped) {
				t.Fatalf("read after stop: %v", err)
			}
			if src.reads.Load() != n || writes() != w {
				t.Errorf("hash stage %v, read first %v: the source was read or the hash written after stop", hashed, readFirst)
			}
		}
	}
}

// The chunks are recycled: however long the stream, Read hands out no
// more than the readAheadChunks+2 chunks made at the start, passed
// through the hash stage without a copy (one write per chunk).
func TestReadAheadRecyclesChunks(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		ra, h := newTestReadAhead(bytes.NewReader(make([]byte, 50*readAheadChunk)), hashed)
		seen := map[*byte]bool{}
		buf := make([]byte, readAheadChunk/3)
		for {
			_, err := ra.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen[&ra.last[:1][0]] = true
		}
		ra.stop()
		if len(seen) > readAheadChunks+2 {
			t.Errorf("hash stage %v: %d different chunks handed out, want at most %d", hashed, len(seen), readAheadChunks+2)
		}
		if hashed && h.writes.Load() != 50 {
			t.Errorf("hash stage: %d writes for 50 chunks", h.writes.Load())
		}
	}
}

// walkTar over a gzip layer whose blob fails mid-stream (a connection
// reset): the failure is returned, named, and walkTar returns only after
// every stage ended (the caller reads the blob again: it must be alone).
func TestWalkTarSourceFailsMidStream(t *testing.T) {
	tarball := ot.Tar(t, ot.Dir("./", 0o755), ot.File("big", ot.Body('b', 3<<20)), ot.File("small", "s\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball)
	zw.Close()
	boom := errors.New("connection reset")
	src := &countingSrc{r: io.MultiReader(bytes.NewReader(gz.Bytes()[:gz.Len()/2]), iotest.ErrReader(boom))}
	sink, err := newHashSink(verity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	small := make([]byte, composefs.MaxInlineFromDir)
	err = walkTar(src, "gzip", digest.FromBytes(tarball), "layer 1/1", func(e entry, content io.Reader) error {
		return readContent(content, e.node, sink, small)
	})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "layer 1/1: ") {
		t.Fatalf("error %v, want %v named", err, boom)
	}
	n := src.reads.Load()
	if _, err := src.Read(make([]byte, 1)); !errors.Is(err, boom) || src.reads.Load() != n+1 {
		t.Fatal("the source is still being read after walkTar returned")
	}
}

// A gzip layer cut short after a complete tar entry, without its last
// block and trailer, whose diff_id is that of what it holds: the
// decompressor's io.ErrUnexpectedEOF is an error, not the end of the
// layer (it used to read as a clean end, the tar reader found its entries
// complete, the diff_id matched, and the layer was accepted).
func TestWalkTarTruncatedGzip(t *testing.T) {
	whole := ot.Tar(t, ot.Dir("./", 0o755), ot.File("a", ot.Body('a', 5000)))
	held := whole[:len(whole)-1024] // without the end-of-archive blocks
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(held)
	zw.Flush() // a complete, but not the last, deflate block: no trailer
	sink, err := newHashSink(verity.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	small := make([]byte, composefs.MaxInlineFromDir)
	err = walkTar(bytes.NewReader(gz.Bytes()), "gzip", digest.FromBytes(held), "layer 1/1", func(e entry, content io.Reader) error {
		return readContent(content, e.node, sink, small)
	})
	// Go's inflate finds the stream cut short; igzip, when installed,
	// refuses it as corrupt.
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, igzip.ErrCorrupt) {
		t.Fatalf("error %v, want %v or %v", err, io.ErrUnexpectedEOF, igzip.ErrCorrupt)
	}
	t.Log(err)
}

// benchLayer is a gzip layer of about 48 MiB of files of text-like
// content (compressing about 3:1, as system files do) and its diff_id.
func benchLayer(b *testing.B) ([]byte, digest.Digest) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the of and to in is for on that with by this be are from at as or an it not usr lib share bin etc var doc include")
	var entries []ot.Entry
	for i := range 400 {
		var body strings.Builder
		for body.Len() < 120<<10 {
			body.WriteString(words[rng.IntN(len(words))])
			body.WriteByte(" \n"[rng.IntN(2)])
			fmt.Fprintf(&body, "%x", rng.Uint32()&0xff)
		}
		entries = append(entries, ot.File(fmt.Sprintf("f%03d", i), body.String()))
	}
	tarball := ot.Tar(b, entries...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball)
	zw.Close()
	return gz.Bytes(), digest.FromBytes(tarball)
}

// BenchmarkWalkLayer reads one big gzip layer (files only hashed): the
// stages of walkTar on as many CPUs as GOMAXPROCS gives (-cpu 1,2).
func BenchmarkWalkLayer(b *testing.B) {
	blob, diffID := benchLayer(b)
	sink, err := newHashSink(verity.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	small := make([]byte, composefs.MaxInlineFromDir)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		h := digest.SHA256.Digester()
		err := walkTar(io.TeeReader(bytes.NewReader(blob), h.Hash()), "gzip", diffID, "bench", func(e entry, content io.Reader) error {
			return readContent(content, e.node, sink, small)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
