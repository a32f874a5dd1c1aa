package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/schollz/progressbar/v3"
)

// Progress bars are drawn on stderr, and only when it is a terminal: a
// pipe or a log file gets the commands' lines alone.

// terminal reports whether w is a terminal.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// byteBar is a progress bar of bytes on w, as fsck and import draw them;
// size -1 when the total is not known (then it shows bytes and rate).
func byteBar(w io.Writer, size int64, desc string, opts ...progressbar.Option) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size, append([]progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100_000_000), // 0.1 s
	}, opts...)...)
}

// layerBars returns what wraps each layer blob an import reads (from a
// registry or a layout on disk) to draw its progress bar on w, named by
// the blob digest's start; nil when w is not a terminal. An import reads
// several layers at once, but a terminal line holds one bar: the bars are
// drawn one after the other, in the order their blobs were opened, each
// catching up with what was read of its blob while it waited.
func layerBars(w io.Writer) func(v1.Descriptor, io.ReadCloser) io.ReadCloser {
	if !terminal(w) {
		return nil
	}
	q := &barQueue{w: w}
	return func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser {
		b := &barReader{r: r, q: q, desc: desc}
		q.mu.Lock()
		q.open = append(q.open, b)
		q.advance()
		q.mu.Unlock()
		return b
	}
}

// barQueue holds the layer bars not finished, in the order their blobs
// were opened; the first is the one drawn.
type barQueue struct {
	w    io.Writer
	mu   sync.Mutex
	open []*barReader
}

// advance finishes the bars at the head whose blobs are closed and draws
// the next one's. Called with mu held.
func (q *barQueue) advance() {
	for len(q.open) > 0 {
		h := q.open[0]
		if h.bar == nil {
			w := q.w
			h.bar = byteBar(w, h.desc.Size, fmt.Sprintf("%.19s", h.desc.Digest),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
			h.bar.Add64(h.n)
		}
		if !h.closed {
			return
		}
		h.bar.Finish()
		q.open = q.open[1:]
	}
}

type barReader struct {
	r      io.ReadCloser
	q      *barQueue
	desc   v1.Descriptor
	bar    *progressbar.ProgressBar // once it is drawn (under q.mu)
	n      int64                    // bytes read before that
	closed bool
}

func (b *barReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.q.mu.Lock()
	if b.bar != nil {
		b.bar.Add(n)
	} else {
		b.n += int64(n)
	}
	b.q.mu.Unlock()
	return n, err
}

func (b *barReader) Close() error {
	b.q.mu.Lock()
	if !b.closed {
		b.closed = true
		b.q.advance()
	}
	b.q.mu.Unlock()
	return b.r.Close()
}

// treeBar counts the bytes a tree import stores, on w when it is a
// terminal. The scan finds the files while they are stored: the total is
// not known before the end, so the bar shows bytes and rate. The workers
// only add to a counter; the bar is drawn from it ten times a second (a
// bar of unknown length would otherwise be drawn at every file, under its
// lock).
type treeBar struct {
	bar        *progressbar.ProgressBar
	n          atomic.Int64
	stop, done chan struct{}
}

func newTreeBar(w io.Writer) *treeBar {
	if !terminal(w) {
		return &treeBar{}
	}
	b := &treeBar{stop: make(chan struct{}), done: make(chan struct{})}
	b.bar = byteBar(w, -1, "import", progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(),
		progressbar.OptionSetSpinnerChangeInterval(0))
	b.bar.StartWithoutRender() // the rate counts from here
	go func() {
		defer close(b.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.bar.Set64(b.n.Load())
			}
		}
	}()
	return b
}

// stored is the store's import progress (store.WithImportProgress); nil
// without a terminal.
func (b *treeBar) stored() func(int64) {
	if b.bar == nil {
		return nil
	}
	return func(n int64) { b.n.Add(n) }
}

func (b *treeBar) finish() {
	if b.bar != nil {
		close(b.stop)
		<-b.done
		b.bar.Set64(b.n.Load()) // the total, drawn once, then cleared
		b.bar.Finish()
	}
}
