package composefs

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Fsck statuses of an image.
const (
	FsckClean   = "clean"   // the image and every object it uses are correct
	FsckDamaged = "damaged" // something is missing or corrupt (see the lists)
	FsckError   = "error"   // could not be checked completely (see Error)
)

// FsckObject is one object that failed its check: what is wrong with it
// and every path inside the image that uses it.
type FsckObject struct {
	Object  string   `json:"object"`            // fs-verity digest, hex
	Size    int64    `json:"size"`              // the size the image records
	Problem string   `json:"problem,omitempty"` // what is wrong (not for a missing object)
	Paths   []string `json:"paths"`             // in image order; hardlinks included
}

// FsckImage is the result of checking one image.
type FsckImage struct {
	Image  string `json:"image"`
	Status string `json:"status"` // FsckClean, FsckDamaged or FsckError
	// Objects and Bytes count the distinct objects the image uses and
	// their sizes (as the image records them).
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// ImageObject is set when the image's own object is missing or
	// corrupt; then nothing else could be checked.
	ImageObject *FsckObject  `json:"imageObject,omitempty"`
	Missing     []FsckObject `json:"missing"`
	Corrupt     []FsckObject `json:"corrupt"`
	// Unprotected objects have the right content but no fs-verity on a
	// filesystem that supports it: a mount with verity=require refuses them.
	Unprotected []FsckObject `json:"unprotected"`
	Error       string       `json:"error,omitempty"`
}

// Damaged returns the digests of the image's missing and corrupt objects,
// the image's own object first when it is one of them.
func (r *FsckImage) Damaged() []string {
	var ds []string
	if r.ImageObject != nil {
		ds = append(ds, r.ImageObject.Object)
	}
	for _, l := range [][]FsckObject{r.Missing, r.Corrupt} {
		for _, o := range l {
			ds = append(ds, o.Object)
		}
	}
	return ds
}

// FsckOption configures Store.Fsck.
type FsckOption func(*fsckConfig)

type fsckConfig struct {
	threads   int
	userspace bool
	progress  func(done, total int64)
}

// WithFsckThreads sets how many objects are checked in parallel (default:
// the store's threads, GOMAXPROCS).
func WithFsckThreads(n int) FsckOption {
	return func(c *fsckConfig) {
		if n > 0 {
			c.threads = n
		}
	}
}

// WithUserspace hashes every object in userspace, also where the kernel
// could measure it (FS_IOC_MEASURE_VERITY).
func WithUserspace() FsckOption { return func(c *fsckConfig) { c.userspace = true } }

// WithFsckProgress has Fsck report the bytes checked so far and the total,
// from several goroutines at once, after each object.
func WithFsckProgress(fn func(done, total int64)) FsckOption {
	return func(c *fsckConfig) { c.progress = fn }
}

// ImageDigests returns the digests of every image in the store, sorted.
func (s *Store) ImageDigests() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var ds []string
	for _, e := range ents {
		if _, err := parseDigest(e.Name()); err == nil {
			ds = append(ds, e.Name())
		}
	}
	return ds, nil
}

// Fsck checks images completely: the image object against its digest,
// then every object it uses: present, of the size the image records, of
// the fs-verity digest its metacopy xattr records, and with fs-verity
// enabled where the filesystem supports it.
//
// An object with fs-verity enabled is measured by the kernel and then read
// in full, after dropping its cached pages, so that the kernel checks every
// block on the disk against its Merkle tree (a corrupted block reads as
// EIO; measuring alone only proves the tree's root). Other objects are
// hashed in userspace. Objects shared by several images are checked once;
// all objects are checked in parallel, biggest first.
//
// Problems with the store's content are reported in the FsckImage of each
// image (in the order of images); the error is for failures that end the
// whole check. Fsck holds the store lock shared: gc waits for it.
func (s *Store) Fsck(ctx context.Context, images []string, opts ...FsckOption) ([]FsckImage, error) {
	c := fsckConfig{threads: s.threads}
	for _, o := range opts {
		o(&c)
	}
	lock, err := s.lockStore(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer lock.Close()

	run := &fsckRun{s: s, c: c, objs: map[[DigestSize]byte]*fsckObj{}}
	if err := run.start(ctx); err != nil {
		return nil, err
	}
	reports := make([]FsckImage, len(images))
	imgs := make([]*fsckImage, len(images))
	for i, digest := range images {
		reports[i] = FsckImage{Image: digest, Missing: []FsckObject{}, Corrupt: []FsckObject{}, Unprotected: []FsckObject{}}
		img, err := run.image(digest, &reports[i])
		if err != nil {
			reports[i].Status, reports[i].Error = FsckError, err.Error()
			continue
		}
		imgs[i] = img
	}
	if err := run.wait(ctx); err != nil {
		return nil, err
	}
	for i, img := range imgs {
		if img != nil {
			img.report(&reports[i])
		}
	}
	return reports, nil
}

// objState is what the check of one object found.
type objState uint8

const (
	objOK objState = iota
	objMissing
	objCorrupt
	objUnprotected
	objFailed // could not be checked
)

type fsckObj struct {
	digest  [DigestSize]byte
	size    int64
	state   objState
	problem string
}

// fsckUse is one object as one image uses it.
type fsckUse struct {
	o     *fsckObj
	paths []string
}

type fsckImage struct {
	uses []*fsckUse // in order of first use
}

type fsckRun struct {
	s    *Store
	c    fsckConfig
	objs map[[DigestSize]byte]*fsckObj // every object seen, checked once

	queue       fsckQueue
	wg          sync.WaitGroup
	total, done atomic.Int64

	noMeasure   atomic.Bool // the kernel or filesystem has no fs-verity
	sc          *scanner    // for spareCores
	noatime     atomic.Bool // O_NOATIME refused
	fanout      [256]int    // objects/XX opened, so that opening an object looks up one name
	verityOnce  sync.Once
	verityCanDo bool // fs-verity can be enabled in the store (probed when needed)
}

// image checks the image object of digest and collects the objects it
// uses. A damaged image object is recorded in r; an error means the image
// could not be checked.
func (run *fsckRun) image(digest string, r *FsckImage) (*fsckImage, error) {
	want, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	// The images/ link decides whether the store has the image; its
	// object may be missing (damage, not "not in the store").
	link := filepath.Join(run.s.dir, "images", digest)
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	if want := filepath.Join("..", "objects", ObjectPath(want)); target != want {
		return nil, fmt.Errorf("image %s: images/%s links to %s, not to its object %s", digest, digest, target, want)
	}
	path := filepath.Join(run.s.dir, "objects", ObjectPath(want))
	o := &fsckObj{size: -1}
	copy(o.digest[:], want)
	data := run.checkImageObject(path, o)
	switch o.state {
	case objFailed:
		return nil, errors.New(o.problem)
	case objMissing, objCorrupt:
		r.Status = FsckDamaged
		r.ImageObject = &FsckObject{Object: digest, Size: max(o.size, 0), Problem: o.problem, Paths: []string{}}
		if o.state == objMissing {
			r.ImageObject.Problem = "missing"
		}
		return nil, nil
	}
	img, err := ParseImage(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	fi := &fsckImage{}
	uses := map[*fsckObj]*fsckUse{}
	err = img.Walk(func(e *Entry) error {
		d := e.Inode.Digest
		if d == nil || e.Inode.Type() != ModeRegular {
			return nil
		}
		k := [DigestSize]byte(d)
		o := run.objs[k]
		if o == nil {
			o = &fsckObj{digest: k, size: int64(e.Inode.Size)}
			run.objs[k] = o
			run.total.Add(o.size)
			run.queue.push(o)
		}
		u := uses[o]
		if u == nil {
			u = &fsckUse{o: o}
			uses[o] = u
			fi.uses = append(fi.uses, u)
		}
		u.paths = append(u.paths, e.Path)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	if o.state == objUnprotected {
		r.Unprotected = append(r.Unprotected, FsckObject{Object: digest, Size: o.size, Problem: o.problem, Paths: []string{}})
	}
	return fi, nil
}

// checkImageObject checks the image object and returns its bytes when it
// is correct.
func (run *fsckRun) checkImageObject(path string, o *fsckObj) []byte {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		run.openFailed(o, path, err)
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		run.readFailed(o, path, cmp.Or(err, errNotRegular))
		return nil
	}
	measured := run.measure(f, o)
	if o.state != objOK && o.state != objUnprotected {
		return nil
	}
	if measured {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		run.readFailed(o, path, err)
		return nil
	}
	o.size = int64(len(data))
	if !measured || run.c.userspace {
		h, err := verity.NewHasher()
		if err != nil {
			o.state, o.problem = objFailed, err.Error()
			return nil
		}
		h.Write(data)
		if got := h.Sum(); !bytes.Equal(got, o.digest[:]) {
			o.state, o.problem = objCorrupt, fmt.Sprintf("content hashes to %x", got)
			return nil
		}
	}
	return data
}

var errNotRegular = errors.New("not a regular file")

// start starts the workers: they check objects as the images are walked
// (so that walking overlaps with checking), the biggest queued object
// first (so that a big file found late does not leave one core hashing
// alone at the end). wait ends them.
func (run *fsckRun) start(ctx context.Context) error {
	// Each worker hashes its own object on one core while objects are
	// queued; once the queue is empty the big last ones get every idle
	// core (scanWorker.spareCores).
	run.sc = &scanner{}
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
	workers := max(run.c.threads, 1)
	run.queue.cond = sync.NewCond(&run.queue.mu)
	for range workers {
		h, err := verity.NewHasher()
		if err != nil {
			return err
		}
		w := &scanWorker{s: run.sc, h: h, buf: make([]byte, workerBuf)}
		run.wg.Add(1)
		go func() {
			defer run.wg.Done()
			for {
				o, last := run.queue.pop()
				if o == nil {
					return
				}
				if ctx.Err() != nil {
					continue // drain
				}
				if last {
					run.sc.scanned.Store(true)
				}
				run.object(w, o)
				n := run.done.Add(o.size)
				if run.c.progress != nil {
					run.c.progress(n, run.total.Load())
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

// object checks one object and records the verdict in o.
func (run *fsckRun) object(w *scanWorker, o *fsckObj) {
	// Opened by name in its fan-out directory: one name to look up.
	var name [2*DigestSize - 2]byte
	hex.Encode(name[:], o.digest[1:])
	fd, err := run.open(run.fanout[o.digest[0]], string(name[:]))
	if err != nil {
		run.openFailed(o, run.objectPath(o), err)
		return
	}
	defer unix.Close(fd)
	// No fstat: a read of one byte more than the image's size notices a
	// size (or file type) that is wrong, and only then is it looked at.
	measured := run.measureFd(fd, o)
	if o.state != objOK && o.state != objUnprotected {
		return
	}
	if measured && !run.c.userspace {
		// The digest (and so the size) is right; now have the kernel
		// check every block against the Merkle tree, from the disk.
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
		return
	}
	got, err := digestContent(w, fd, "", o.size)
	if errors.Is(err, ErrSourceChanged) {
		run.wrongSize(w, fd, o)
		return
	}
	if err != nil {
		run.readFailed(o, run.objectPath(o), err)
		return
	}
	if !bytes.Equal(got, o.digest[:]) {
		o.state, o.problem = objCorrupt, fmt.Sprintf("content hashes to %x", got)
	}
}

// wrongSize says why fewer or more bytes than the image's size were read:
// another file type or size, or a block that cannot be read.
func (run *fsckRun) wrongSize(w *scanWorker, fd int, o *fsckObj) {
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
		if _, err := unix.Read(fd, w.buf[:1]); err != nil {
			run.readFailed(o, run.objectPath(o), err)
			return
		}
		o.state, o.problem = objCorrupt, "its size changed while it was read"
	}
}

func (run *fsckRun) objectPath(o *fsckObj) string {
	return filepath.Join(run.s.dir, "objects", ObjectPath(o.digest[:]))
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
	case errors.Is(err, errNotRegular) || errors.Is(err, unix.EISDIR):
		o.state, o.problem = objCorrupt, "not a regular file"
	default:
		if e := errors.Unwrap(err); e != nil {
			err = e // digestContent's "reading PATH: ..." (without the path)
		}
		o.state, o.problem = objFailed, fmt.Sprintf("object %s: %v", path, err)
	}
}

// measure asks the kernel for the file's fs-verity digest. It reports
// whether the kernel vouches for the file's digest (then the content need
// not be hashed); a wrong digest is recorded in o, and so is a file
// without fs-verity in a store whose filesystem supports it (objUnprotected,
// still to be hashed).
func (run *fsckRun) measure(f *os.File, o *fsckObj) bool {
	if run.noMeasure.Load() {
		return false
	}
	alg, d, err := verity.MeasureFile(f)
	switch {
	case err == nil:
	case errors.Is(err, verity.ErrNotEnabled):
		if run.verityPossible() {
			o.state, o.problem = objUnprotected, "fs-verity is not enabled"
		}
		return false
	case errors.Is(err, verity.ErrNotSupported):
		// No fs-verity in this kernel or filesystem: not worth asking
		// again for every object.
		run.noMeasure.Store(true)
		return false
	default:
		return false // hash it instead
	}
	if alg != verity.SHA256 {
		o.state, o.problem = objCorrupt, fmt.Sprintf("fs-verity uses %s, not sha256", alg)
		return true
	}
	if !bytes.Equal(d, o.digest[:]) {
		o.state, o.problem = objCorrupt, fmt.Sprintf("fs-verity digest is %x", d)
	}
	return true
}

// measureFd is measure on a bare descriptor (which stays open).
func (run *fsckRun) measureFd(fd int, o *fsckObj) bool {
	if run.noMeasure.Load() {
		return false
	}
	dup, err := unix.Dup(fd)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(dup), "")
	defer f.Close()
	return run.measure(f, o)
}

// verityPossible reports whether fs-verity can be enabled on files in the
// store, probed once (it creates a file: a read-only store says no).
func (run *fsckRun) verityPossible() bool {
	run.verityOnce.Do(func() {
		run.verityCanDo = verity.Probe(filepath.Join(run.s.dir, "tmp")) == nil
	})
	return run.verityCanDo
}

// report turns the verdicts of the image's objects into r.
func (fi *fsckImage) report(r *FsckImage) {
	failed := []string{}
	for _, u := range fi.uses {
		o := u.o
		r.Objects++
		r.Bytes += o.size
		fo := FsckObject{Object: hex.EncodeToString(o.digest[:]), Size: o.size, Problem: o.problem, Paths: u.paths}
		switch o.state {
		case objMissing:
			r.Missing = append(r.Missing, fo)
		case objCorrupt:
			r.Corrupt = append(r.Corrupt, fo)
		case objUnprotected:
			r.Unprotected = append(r.Unprotected, fo)
		case objFailed:
			failed = append(failed, o.problem)
		}
	}
	switch {
	case len(failed) > 0:
		r.Status = FsckError
		r.Error = fmt.Sprintf("%d objects could not be checked: %s", len(failed), strings.Join(failed[:min(len(failed), 3)], "; "))
	case r.ImageObject != nil || len(r.Missing)+len(r.Corrupt)+len(r.Unprotected) > 0:
		r.Status = FsckDamaged
	default:
		r.Status = FsckClean
	}
}

// fsckQueue hands the objects to the workers, biggest first.
type fsckQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	objs   objHeap
	closed bool
}

func (q *fsckQueue) push(o *fsckObj) {
	q.mu.Lock()
	heap.Push(&q.objs, o)
	q.mu.Unlock()
	q.cond.Signal()
}

// close says that nothing more will be pushed.
func (q *fsckQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pop waits for the biggest queued object; nil once the queue is closed
// and empty. last reports that the queue is closed and now empty.
func (q *fsckQueue) pop() (o *fsckObj, last bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.objs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.objs) == 0 {
		return nil, true
	}
	o = heap.Pop(&q.objs).(*fsckObj)
	return o, q.closed && len(q.objs) == 0
}

// objHeap is a max-heap of objects by size (container/heap).
type objHeap []*fsckObj

func (h objHeap) Len() int           { return len(h) }
func (h objHeap) Less(i, j int) bool { return h[i].size > h[j].size }
func (h objHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *objHeap) Push(x any)        { *h = append(*h, x.(*fsckObj)) }
func (h *objHeap) Pop() any {
	old := *h
	o := old[len(old)-1]
	*h = old[:len(old)-1]
	return o
}
