package ociimage

import (
	"errors"
	"io"
	"sync"
)

// A layer's decompression and digests run ahead of the storing of its
// files in a goroutine of their own (readAhead): on two or more CPUs they
// overlap instead of taking turns. The chunks bound how far ahead it runs.
const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 8
)

// readAhead reads src in its own goroutine, up to readAheadChunks chunks
// ahead of Read. stop ends the goroutine and waits for it: nothing reads
// src after stop returns.
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

func newReadAhead(src io.Reader) *readAhead {
	ra := &readAhead{
		ch:   make(chan []byte, readAheadChunks),
		free: make(chan []byte, readAheadChunks+2),
		done: make(chan struct{}),
	}
	for range readAheadChunks + 2 {
		ra.free <- make([]byte, readAheadChunk)
	}
	ra.wg.Add(1)
	go ra.fill(src)
	return ra
}

func (ra *readAhead) fill(src io.Reader) {
	defer ra.wg.Done()
	defer close(ra.ch)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			ra.err = errStopped
			return
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			select {
			case ra.ch <- buf[:n]:
			case <-ra.done:
				ra.err = errStopped
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			ra.err = err
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

func (ra *readAhead) stop() {
	ra.once.Do(func() { close(ra.done) })
	ra.wg.Wait()
}
