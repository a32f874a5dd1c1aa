package ociimage

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/iotest"
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

// readAhead passes every byte through, in order, whatever the sizes, and
// the source's error.
func TestReadAhead(t *testing.T) {
	for _, n := range []int{0, 1, readAheadChunk - 1, readAheadChunk, readAheadChunk*readAheadChunks*3 + 17} {
		data := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		ra := newReadAhead(iotest.HalfReader(bytes.NewReader(data)))
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 1<<62)))
		ra.stop()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: got %d, %v", n, len(got), err)
		}
	}
	boom := errors.New("boom")
	ra := newReadAhead(io.MultiReader(bytes.NewReader(make([]byte, 1000)), iotest.ErrReader(boom)))
	if _, err := io.ReadAll(ra); !errors.Is(err, boom) {
		t.Errorf("source error: %v", err)
	}
	ra.stop()
}

// After stop, nothing reads the source any more (the caller reads it
// again to check its digest).
func TestReadAheadStop(t *testing.T) {
	src := &countingSrc{r: bytes.NewReader(make([]byte, 100*readAheadChunk))}
	ra := newReadAhead(src)
	buf := make([]byte, 10)
	if _, err := ra.Read(buf); err != nil {
		t.Fatal(err)
	}
	ra.stop()
	ra.stop() // idempotent
	n := src.reads.Load()
	if _, err := io.ReadAll(ra); err != nil && !errors.Is(err, errStopped) {
		t.Fatalf("read after stop: %v", err)
	}
	if src.reads.Load() != n {
		t.Error("the source was read after stop")
	}
}
