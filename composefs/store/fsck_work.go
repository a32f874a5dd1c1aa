package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// How the workers split the work (see start).
const (
	// Objects of up to fsckBatchMax bytes are read whole into a worker's
	// batch of up to fsckBatchBytes and fsckBatchFiles objects, and
	// digested together (verity.Batch): most objects of a system image
	// are a block or two, and one file alone cannot use both SHA-256
	// lanes. (Each object's last block is copied and padded to 4 KiB:
	// the count limit keeps a batch of tiny files in the cache.)
	fsckBatchMax   = 64 << 10
	fsckBatchBytes = 512 << 10
	fsckBatchFiles = 64
	// Bigger objects are hashed in segments of fsckSegment bytes, each by
	// whichever worker is free, so that a big file does not leave one
	// core hashing alone at the end. A segment is read into the worker's
	// buffer, in its core's cache when it is hashed. (Hashing a mapping
	// of the page cache instead, without the copy, measured slower: the
	// hashing waits for memory, and unmapping costs TLB shootdowns.)
	fsckSegment = 256 << 10
)

// start starts the workers: they check objects as the images are walked
// (so that walking overlaps with checking), the segments of big objects
// first, then the biggest queued object. wait ends them.
func (run *fsckRun) start(ctx context.Context) error {
	objs := filepath.Join(run.s.dir, "objects")
	for i := range run.fanout {
		fd, err := unix.Open(filepath.Join(objs, hex.EncodeToString([]byte{byte(i)})), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range run.fanout[:i] {
				unix.Close(fd)
			}
			return fmt.Errorf("store: %w", err)
		}
		run.fanout[i] = fd
	}
	run.queue.cond = sync.NewCond(&run.queue.mu)
	for range max(run.c.threads, 1) {
		w, err := newFsckWorker()
		if err != nil {
			return err
		}
		run.wg.Add(1)
		go func() {
			defer run.wg.Done()
			// Before waiting for the walk to find more objects, check
			// the batch held so far.
			idle := func() { run.flush(w) }
			for {
				j, ok := run.queue.pop(idle)
				if !ok {
					return
				}
				switch {
				case ctx.Err() != nil:
					// Drain; a big object's last segment closes it.
					if j.big != nil && j.big.left.Add(-1) == 0 {
						unix.Close(j.big.fd)
					}
				case j.big != nil:
					run.segment(w, j.big, j.seg)
				default:
					if !run.object(w, j.o) {
						run.checked(j.o.size)
					}
				}
				if j.big == nil {
					run.queue.opened()
				}
			}
		}()
	}
	return nil
}

func (run *fsckRun) wait(ctx context.Context) error {
	run.queue.close()
	run.wg.Wait()
	for _, fd := range run.fanout {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return ctx.Err()
}

// checked counts n more bytes as checked for the progress report.
func (run *fsckRun) checked(n int64) {
	done := run.done.Add(n)
	if run.c.progress != nil {
		run.c.progress(done, run.total.Load())
	}
}

// fsckWorker is one checking goroutine's hashers and buffers: nothing is
// allocated per object.
type fsckWorker struct {
	h     *verity.Hasher // segments of big objects
	other *verity.Hasher // objects of another algorithm (hashWhole)
	buf   []byte         // a segment and the byte after it
	batch *verity.Batch  // small objects
	arena []byte         // the batched objects' content
	objs  []*fsckObj     // the batched objects
	conts [][]byte       // and their content in arena
	sums  []byte
}

func newFsckWorker() (*fsckWorker, error) {
	h, err := verity.NewHasher()
	if err != nil {
		return nil, err
	}
	b, err := verity.NewBatch()
	if err != nil {
		return nil, err
	}
	return &fsckWorker{h: h, buf: make([]byte, fsckSegment+1), batch: b, arena: make([]byte, 0, fsckBatchBytes)}, nil
}

// object checks one object and records the verdict in o, unless it is
// left for later: in w's batch (checked by flush) or split into segments
// (checked by the last one). It reports whether it was left.
func (run *fsckRun) object(w *fsckWorker, o *fsckObj) (later bool) {
	// Opened by name in its fan-out directory: one name to look up.
	var name [2*composefs.SHA512DigestSize - 2]byte
	n := hex.Encode(name[:], o.digest[1:])
	fd, err := run.open(run.fanout[o.digest[0]], string(name[:n]))
	if err != nil {
		run.openFailed(o, run.objectPath(o), err)
		return false
	}
	// No fstat: a read of one byte more than the image's size notices a
	// size (or file type) that is wrong, and only then is it looked at.
	measured := run.measureFd(fd, o)
	switch {
	case o.state != objOK && o.state != objUnprotected:
	case measured && !run.c.userspace:
		run.readThrough(w, fd, o)
	case len(o.digest) != composefs.DigestSize:
		// SHA-512: hashed whole by this worker (the batches and
		// segments are SHA-256's).
		run.hashWhole(w, fd, o)
	case o.size <= fsckBatchMax:
		later = run.readSmall(w, fd, o)
	default:
		run.split(fd, o)
		return true // the last segment closes fd
	}
	unix.Close(fd)
	return later
}

// hashWhole hashes the object o, open as fd, with its digest's algorithm,
// reading one byte more than its size: a wrong size is looked at then.
func (run *fsckRun) hashWhole(w *fsckWorker, fd int, o *fsckObj) {
	alg, _ := composefs.DigestAlgorithm(o.digest)
	if w.other == nil || w.other.Params().Algorithm != alg {
		h, err := verity.NewHasher(verity.WithAlgorithm(alg))
		if err != nil {
			o.state, o.problem = objFailed, err.Error()
			return
		}
		w.other = h
	}
	w.other.Reset()
	var off int64
	for {
		n, err := rawfile.PreadFull(fd, w.buf, off)
		if err != nil {
			run.readFailed(o, run.objectPath(o), err)
			return
		}
		if off+int64(n) > o.size {
			run.wrongSize(fd, o, off+int64(n))
			return
		}
		w.other.Write(w.buf[:n])
		off += int64(n)
		if n < len(w.buf) {
			break
		}
	}
	if off != o.size {
		run.wrongSize(fd, o, off)
		return
	}
	if got := w.other.Sum(); !bytes.Equal(got, o.digest) {
		o.state, o.problem = objCorrupt, fmt.Sprintf("content hashes to %x", got)
	}
}

// readThrough reads an object whose digest (and so size) the kernel has
// vouched for, after dropping its cached pages, so that the kernel checks
// every block against the Merkle tree, from the disk.
func (run *fsckRun) readThrough(w *fsckWorker, fd int, o *fsckObj) {
	unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	var off int64
	for off < o.size {
		// (A read stops short before a block that fails the check;
		// the next read returns EIO.)
		n, err := unix.Read(fd, w.buf[:min(int64(len(w.buf)), o.size-off)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			run.readFailed(o, run.objectPath(o), err)
			return
		}
		if n == 0 {
			o.state, o.problem = objCorrupt, fmt.Sprintf("read %d bytes, its size is %d", off, o.size)
			return
		}
		off += int64(n)
	}
}

// readSmall reads the small object o, open as fd, into w's batch (which
// is checked first if o does not fit), with one read of a byte more than
// its size: a short or long read means a wrong size, looked at then.
func (run *fsckRun) readSmall(w *fsckWorker, fd int, o *fsckObj) (batched bool) {
	if want := int(o.size) + 1; cap(w.arena)-len(w.arena) < want || len(w.objs) == fsckBatchFiles {
		run.flush(w)
	}
	start := len(w.arena)
	n, err := rawfile.PreadFull(fd, w.arena[start:start+int(o.size)+1], 0)
	if err != nil {
		run.readFailed(o, run.objectPath(o), err)
		return false
	}
	if int64(n) != o.size {
		run.wrongSize(fd, o, int64(n))
		return false
	}
	w.arena = w.arena[:start+n]
	w.objs = append(w.objs, o)
	w.conts = append(w.conts, w.arena[start:start+n])
	return true
}

// flush checks the objects of w's batch.
func (run *fsckRun) flush(w *fsckWorker) {
	if len(w.objs) == 0 {
		return
	}
	w.sums = w.batch.Digests(w.conts, w.sums[:0])
	for i, o := range w.objs {
		if got := w.sums[i*composefs.DigestSize : (i+1)*composefs.DigestSize]; !bytes.Equal(got, o.digest[:]) {
			o.state, o.problem = objCorrupt, fmt.Sprintf("content hashes to %x", got)
		}
		run.checked(o.size)
	}
	clear(w.objs)
	w.objs, w.conts, w.arena = w.objs[:0], w.conts[:0], w.arena[:0]
}

// fsckBig is a big object being hashed in segments, by any worker.
type fsckBig struct {
	o      *fsckObj
	fd     int
	segs   int
	leaves []byte       // the leaf hashes, each segment writing its own part
	left   atomic.Int32 // segments not hashed yet: the last one finishes
	mu     sync.Mutex
	errAt  int64 // where the first (lowest) failed segment failed
	err    error // its error; errShort for the end of the file
}

// errShort: a segment of a big object found the end of the file before
// the size the image records (or, the last one, data after it).
var errShort = errors.New("wrong size")

// leavesPool recycles the leaf hash buffers of big objects.
var leavesPool sync.Pool

// split queues the segments of the big object o, open as fd.
func (run *fsckRun) split(fd int, o *fsckObj) {
	segs := int((o.size + fsckSegment - 1) / fsckSegment)
	blocks := (o.size + verity.DefaultBlockSize - 1) / verity.DefaultBlockSize
	var leaves []byte
	if p, _ := leavesPool.Get().(*[]byte); p != nil && int64(cap(*p)) >= blocks*composefs.DigestSize {
		leaves = (*p)[:blocks*composefs.DigestSize]
	} else {
		leaves = make([]byte, blocks*composefs.DigestSize)
	}
	b := &fsckBig{o: o, fd: fd, segs: segs, leaves: leaves, errAt: -1}
	b.left.Store(int32(segs))
	run.queue.pushSegs(b)
}

// segment hashes segment i of b; the last segment hashed finishes b.
func (run *fsckRun) segment(w *fsckWorker, b *fsckBig, i int) {
	off := int64(i) * fsckSegment
	n := min(fsckSegment, b.o.size-off)
	want := n
	if i == b.segs-1 {
		want++ // a byte more: a file that grew is noticed
	}
	k, err := rawfile.PreadFull(b.fd, w.buf[:want], off)
	switch {
	case err != nil:
		b.fail(off+int64(k), err)
	case int64(k) != n:
		b.fail(off+int64(k), errShort)
	default:
		lo := off / verity.DefaultBlockSize * composefs.DigestSize
		hi := min(int64(len(b.leaves)), lo+fsckSegment/verity.DefaultBlockSize*composefs.DigestSize)
		w.h.HashLeaves(w.buf[:n], b.leaves[lo:lo:hi])
	}
	run.checked(n)
	if b.left.Add(-1) == 0 {
		run.finish(w, b)
	}
}

func (b *fsckBig) fail(at int64, err error) {
	b.mu.Lock()
	if b.errAt < 0 || at < b.errAt {
		b.errAt, b.err = at, err
	}
	b.mu.Unlock()
}

// finish gives the verdict on b once all its segments are hashed.
func (run *fsckRun) finish(w *fsckWorker, b *fsckBig) {
	defer func() {
		unix.Close(b.fd)
		leavesPool.Put(&b.leaves)
	}()
	o := b.o
	switch {
	case b.err == errShort:
		run.wrongSize(b.fd, o, b.errAt)
	case b.err != nil:
		run.readFailed(o, run.objectPath(o), b.err)
	default:
		if got := w.h.SumLeaves(uint64(o.size), b.leaves); !bytes.Equal(got, o.digest[:]) {
			o.state, o.problem = objCorrupt, fmt.Sprintf("content hashes to %x", got)
		}
	}
}

// wrongSize says why the read of an object found its end at offset at,
// before or after the size the image records: another file type or size,
// or a block that cannot be read.
func (run *fsckRun) wrongSize(fd int, o *fsckObj, at int64) {
	var st unix.Stat_t
	switch err := unix.Fstat(fd, &st); {
	case err != nil:
		o.state, o.problem = objFailed, fmt.Sprintf("object %s: %v", run.objectPath(o), err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		o.state, o.problem = objCorrupt, "not a regular file"
	case st.Size != o.size:
		o.state, o.problem = objCorrupt, fmt.Sprintf("size %d, the image records %d", st.Size, o.size)
	default:
		// The right size, read short: the next read says why.
		var b [1]byte
		if _, err := rawfile.PreadFull(fd, b[:], at); err != nil {
			run.readFailed(o, run.objectPath(o), err)
			return
		}
		o.state, o.problem = objCorrupt, "its size changed while it was read"
	}
}

func (run *fsckRun) objectPath(o *fsckObj) string {
	return filepath.Join(run.s.dir, "objects", composefs.ObjectPath(o.digest[:]))
}

// open opens an object read-only: without following a symlink, without
// blocking on a FIFO (a file that has no business in the store), without
// updating its atime where the process may say so.
func (run *fsckRun) open(dirfd int, name string) (int, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_NONBLOCK
	if !run.noatime.Load() {
		flags |= unix.O_NOATIME
	}
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EPERM && flags&unix.O_NOATIME != 0:
			run.noatime.Store(true) // not the owner, no CAP_FOWNER
			flags &^= unix.O_NOATIME
			continue
		}
		return fd, err
	}
}

func (run *fsckRun) openFailed(o *fsckObj, path string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		o.state = objMissing
	case errors.Is(err, unix.ELOOP):
		o.state, o.problem = objCorrupt, "a symbolic link, not a regular file"
	case errors.Is(err, unix.EIO):
		o.state, o.problem = objCorrupt, "cannot be opened: input/output error"
	default:
		o.state, o.problem = objFailed, fmt.Sprintf("object %s: %v", path, err)
	}
}

// readFailed classifies a read error: EIO is damage (a block that fails
// fs-verity's check, or a bad disk block), anything else a failed check.
func (run *fsckRun) readFailed(o *fsckObj, path string, err error) {
	switch {
	case errors.Is(err, unix.EIO):
		o.state, o.problem = objCorrupt, "read error: input/output error (a block does not match its fs-verity Merkle tree, or the disk failed)"
	case errors.Is(err, errNotRegular) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ESPIPE):
		// (pread fails with ESPIPE on a FIFO.)
		o.state, o.problem = objCorrupt, "not a regular file"
	default:
		if e := errors.Unwrap(err); e != nil {
			err = e // "reading PATH: ..." (without the path)
		}
		o.state, o.problem = objFailed, fmt.Sprintf("object %s: %v", path, err)
	}
}

// fsckJob is what a worker does next: check an object, or hash segment
// seg of a big one.
type fsckJob struct {
	o   *fsckObj
	big *fsckBig
	seg int
}

// fsckQueue hands the work to the workers: segments of big objects first
// (so that they are done, and their descriptors closed, soon), then the
// biggest queued object (so that a big file found late does not leave one
// core hashing alone at the end).
type fsckQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	segs    []fsckJob // in order
	objs    objHeap
	opening int // objects being looked at, which may add segments
	closed  bool
}

// fsckQueueGroup is how many objects the walk queues at once.
const fsckQueueGroup = 64

// push queues objs.
func (q *fsckQueue) push(objs []*fsckObj) {
	if len(objs) == 0 {
		return
	}
	q.mu.Lock()
	for _, o := range objs {
		q.objs.push(o)
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pushSegs queues every segment of b.
func (q *fsckQueue) pushSegs(b *fsckBig) {
	q.mu.Lock()
	for i := range b.segs {
		q.segs = append(q.segs, fsckJob{big: b, seg: i})
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

// opened says that an object popped has been looked at: it will add no
// segments.
func (q *fsckQueue) opened() {
	q.mu.Lock()
	q.opening--
	done := q.closed && q.opening == 0
	q.mu.Unlock()
	if done {
		q.cond.Broadcast()
	}
}

// close says that no more objects will be pushed.
func (q *fsckQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pop waits for the next job; false once there is none and will be none.
// idle is called (without the lock) before waiting, and before returning
// false.
func (q *fsckQueue) pop(idle func()) (fsckJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	empty := func() bool { return len(q.segs) == 0 && len(q.objs) == 0 }
	if empty() {
		q.mu.Unlock()
		idle()
		q.mu.Lock()
	}
	for empty() && (!q.closed || q.opening > 0) {
		q.cond.Wait()
	}
	switch {
	case len(q.segs) > 0:
		j := q.segs[0]
		q.segs[0] = fsckJob{}
		q.segs = q.segs[1:]
		return j, true
	case len(q.objs) > 0:
		q.opening++
		return fsckJob{o: q.objs.pop()}, true
	}
	return fsckJob{}, false
}

// objHeap is a max-heap of objects by size, the size kept next to the
// pointer so that sifting does not chase it.
type objHeap []heapObj

type heapObj struct {
	size int64
	o    *fsckObj
}

func (h *objHeap) push(o *fsckObj) {
	*h = append(*h, heapObj{o.size, o})
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p].size >= a[i].size {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *objHeap) pop() *fsckObj {
	a := *h
	o := a[0].o
	n := len(a) - 1
	a[0] = a[n]
	a[n] = heapObj{}
	a = a[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && a[c+1].size > a[c].size {
			c++
		}
		if a[i].size >= a[c].size {
			break
		}
		a[i], a[c] = a[c], a[i]
		i = c
	}
	*h = a
	return o
}
