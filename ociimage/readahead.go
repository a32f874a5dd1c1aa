package ociimage

import (
	"errors"
	"hash"
	"io"
	"sync"
)

// A layer is read in stages, each in a goroutine of its own, so that on
// two or more CPUs they overlap instead of taking turns (see walkTar): the
// blob is fetched and its digest computed, decompressed, the uncompressed
// stream's digest (the diff_id) computed, and its files stored. The chunks
// bound how far ahead a stage runs; they are handed from stage to stage,
// not copied, and recycled.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 8
)

// readAhead reads src in its own goroutine, up to readAheadChunks chunks
// ahead of Read. With a hash, a second goroutine writes every chunk into
// it on the chunks' way to Read: when Read returns src's end (io.EOF),
// the hash has had every byte. stop ends the goroutines and waits for
// them: nothing reads src (or writes the hash) after stop returns.
type readAhead struct {
	ch   chan []byte // filled chunks, closed after the last one
	free chan []byte // chunks to fill
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	cur  []byte // unread part of the chunk being read
	last []byte // that chunk, to recycle
	err  error  // src's end (io.EOF) or failure; set before ch is closed
}

func newReadAhead(src io.Reader, h hash.Hash) *readAhead {
	ra := &readAhead{
		ch:   make(chan []byte, readAheadChunks),
		free: make(chan []byte, readAheadChunks+2),
		done: make(chan struct{}),
	}
	for range readAheadChunks + 2 {
		ra.free <- make([]byte, readAheadChunk)
	}
	out := ra.ch
	if h != nil {
		// The hash stage sits between fill and Read. (Its channel
		// holds few chunks: the hash keeps up with any source.)
		out = make(chan []byte, 2)
		ra.wg.Add(1)
		go ra.hash(h, out)
	}
	ra.wg.Add(1)
	go ra.fill(src, out)
	return ra
}

// fill reads src into free chunks and sends them to out; it sets err
// before it closes out.
func (ra *readAhead) fill(src io.Reader, out chan<- []byte) {
	defer ra.wg.Done()
	defer close(out)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			ra.err = errStopped
			return
		}
		n, err := fillChunk(src, buf)
		if n > 0 {
			select {
			case out <- buf[:n]:
			case <-ra.done:
				ra.err = errStopped
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// fillChunk reads src into buf until buf is full or src ends or fails.
// Unlike io.ReadFull it returns src's error as it is: io.EOF at src's end,
// and a decompressor's own io.ErrUnexpectedEOF (a truncated stream) is not
// taken for the end of a short last chunk.
func fillChunk(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// hash writes the chunks from in into h and passes them on to Read; once
// in is closed (fill has set err), it closes ch. When stopped, it stops
// passing chunks on: Read then returns errStopped.
func (ra *readAhead) hash(h hash.Hash, in <-chan []byte) {
	defer ra.wg.Done()
	defer close(ra.ch)
	for buf := range in {
		h.Write(buf)
		select {
		case ra.ch <- buf:
		case <-ra.done:
			// Let fill see done (it may be waiting to send) and end.
			for range in {
			}
			ra.err = errStopped
			return
		}
	}
}

// errStopped is what Read returns after stop.
var errStopped = errors.New("read-ahead stopped")

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.last != nil {
			ra.free <- ra.last[:cap(ra.last)]
			ra.last = nil
		}
		buf, ok := <-ra.ch
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.last = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// halt tells the goroutines to end, without waiting for them.
func (ra *readAhead) halt() { ra.once.Do(func() { close(ra.done) }) }

func (ra *readAhead) stop() {
	ra.halt()
	ra.wg.Wait()
}
