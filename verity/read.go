package verity

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// readChunk is how much is read per read(2). Big enough that the syscall
// cost vanishes and a parallel round has work for every core, small enough
// to stay in the L2 cache.
const readChunk = 1 << 20

var chunkPool = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// ReadFrom hashes everything r yields, reading in large chunks (io.Copy
// would use 32 KiB reads, too small to hash leaf blocks in parallel).
func (h *Hasher) ReadFrom(r io.Reader) (int64, error) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	var total int64
	for {
		// Fill the whole chunk: short reads (pipes) would otherwise leave
		// the parallel rounds too small to split.
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			total += int64(n)
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return total, nil
		default:
			return total, err
		}
	}
}

// DigestReader returns the fs-verity digest of everything r yields.
func DigestReader(r io.Reader, opts ...Option) ([]byte, error) {
	h, err := NewHasher(opts...)
	if err != nil {
		return nil, err
	}
	if _, err := h.ReadFrom(r); err != nil {
		return nil, err
	}
	return h.Sum(), nil
}

// DigestFile returns the fs-verity digest of the file at path.
func DigestFile(path string, opts ...Option) ([]byte, error) {
	h, err := NewHasher(opts...)
	if err != nil {
		return nil, err
	}
	return h.digestFile(path)
}

// digestFile resets h and digests the file at path with it.
func (h *Hasher) digestFile(path string) ([]byte, error) {
	h.Reset()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	read := h.ReadFrom
	if fi, err := f.Stat(); err == nil && fi.Size() >= pipelineMin && h.workers > 1 {
		read = h.readPipelined
	}
	if _, err := read(f); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return h.Sum(), nil
}

// pipelineMin is the file size from which reading is overlapped with
// hashing: below a few chunks the goroutine hand-off is not worth it.
const pipelineMin = 4 * readChunk

// readPipelined is ReadFrom with the next chunk read by another goroutine
// while this one (and the leaf workers) hash the current one, so that on
// several cores the copy out of the page cache is not a serial step.
func (h *Hasher) readPipelined(r io.Reader) (int64, error) {
	type chunk struct {
		bp  *[]byte
		n   int
		err error
	}
	free := make(chan *[]byte, 2)
	full := make(chan chunk, 1)
	free <- chunkPool.Get().(*[]byte)
	free <- chunkPool.Get().(*[]byte)
	go func() {
		for {
			bp := <-free
			n, err := io.ReadFull(r, *bp)
			full <- chunk{bp, n, err}
			if err != nil {
				return // the reader never touches r or a buffer again
			}
		}
	}()
	var total int64
	for {
		c := <-full
		if c.n > 0 {
			h.Write((*c.bp)[:c.n])
			total += int64(c.n)
		}
		if c.err != nil {
			// The reader has stopped: both buffers are ours again.
			chunkPool.Put(c.bp)
			chunkPool.Put(<-free)
			if c.err == io.EOF || c.err == io.ErrUnexpectedEOF {
				return total, nil
			}
			return total, c.err
		}
		free <- c.bp
	}
}

// FileDigest is the outcome of DigestFiles for one path.
type FileDigest struct {
	Path   string
	Digest []byte // nil when Err is set
	Err    error
}

// DigestFiles computes the fs-verity digests of many files on GOMAXPROCS
// workers and calls fn once for each path, in the order of paths, from the
// calling goroutine. A file that cannot be read is reported to fn in
// FileDigest.Err; fn decides whether that ends the run by returning an error,
// which DigestFiles then returns. Invalid options return ErrInvalidParams
// before any file is read.
func DigestFiles(ctx context.Context, paths []string, fn func(FileDigest) error, opts ...Option) error {
	p, err := NewParams(opts...)
	if err != nil {
		return err
	}
	workers := min(runtime.GOMAXPROCS(0), len(paths))
	if workers == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		i int
		FileDigest
	}
	var next atomic.Int64
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHasher(p)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) || ctx.Err() != nil {
					return
				}
				d, err := h.digestFile(paths[i])
				select {
				case results <- result{i, FileDigest{Path: paths[i], Digest: d, Err: err}}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	// Workers finish out of order; hold early results until their turn.
	pending := make(map[int]FileDigest)
	want := 0
	var ferr error
	for r := range results {
		if ferr != nil {
			continue // drain so the workers can exit
		}
		pending[r.i] = r.FileDigest
		for {
			fd, ok := pending[want]
			if !ok {
				break
			}
			delete(pending, want)
			want++
			if err := fn(fd); err != nil {
				ferr = err
				cancel()
				break
			}
		}
	}
	if ferr != nil {
		return ferr
	}
	if want < len(paths) {
		return ctx.Err()
	}
	return nil
}
