package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
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
// from several goroutines at once, after each object (or each segment of
// a big one).
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
// all objects are checked in parallel, biggest first: small ones in
// batches that hash several files at once, big ones in segments that
// every worker takes part in (fsck_work.go).
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

	run := &fsckRun{s: s, c: c, objs: map[string]*fsckObj{}}
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
	digest  []byte // SHA-256 or SHA-512 (by its size)
	size    int64
	state   objState
	problem string
	usedBy  *fsckImage // the last image walked that uses it
}

// fsckUse is one object as one image uses it.
type fsckUse struct {
	o     *fsckObj
	paths []string // found by report, for a damaged object only
}

type fsckImage struct {
	img  *composefs.Image
	uses []*fsckUse // in order of first use
}

type fsckRun struct {
	s    *Store
	c    fsckConfig
	objs map[string]*fsckObj // every object seen (by binary digest), checked once

	queue       fsckQueue
	wg          sync.WaitGroup
	total, done atomic.Int64

	noMeasure   atomic.Bool // the kernel or filesystem has no fs-verity
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
	path, err := run.s.imageObject(digest, want)
	if err != nil {
		return nil, err
	}
	o := &fsckObj{size: -1, digest: want}
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
	img, err := composefs.ParseImage(data)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest, err)
	}
	fi := &fsckImage{img: img}
	// New objects are queued in groups: one wake-up of the workers for
	// each, not for every object (the walk is faster than checking).
	var found []*fsckObj
	// The lean walk: the paths are looked up again (by report) only
	// for the objects that turn out damaged.
	err = img.WalkInodes(func(e *composefs.Entry) error {
		d := e.Inode.Digest
		if d == nil || e.Inode.Type() != composefs.ModeRegular {
			return nil
		}
		o := run.objs[string(d)]
		if o == nil {
			k := string(d)
			o = &fsckObj{digest: []byte(k), size: int64(e.Inode.Size)}
			run.objs[k] = o
			run.total.Add(o.size)
			if found = append(found, o); len(found) == fsckQueueGroup {
				run.queue.push(found)
				found = found[:0]
			}
		}
		if o.usedBy != fi {
			o.usedBy = fi
			fi.uses = append(fi.uses, &fsckUse{o: o})
		}
		return nil
	})
	run.queue.push(found) // also after an error: every object in run.objs is queued
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
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
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
	// Sized by the fstat, so that it is read at once (it may still
	// change size: what is read is what is checked).
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(f); err != nil {
		run.readFailed(o, path, err)
		return nil
	}
	data := buf.Bytes()
	o.size = int64(len(data))
	if !measured || run.c.userspace {
		alg, _ := composefs.DigestAlgorithm(o.digest)
		h, err := verity.NewHasher(verity.WithAlgorithm(alg))
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
	if want, _ := composefs.DigestAlgorithm(o.digest); alg != want {
		o.state, o.problem = objCorrupt, fmt.Sprintf("fs-verity uses %s, not %s", alg, want)
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

// paths finds the paths of the image's objects that are damaged (all
// of them, in image order), by walking the image again: a clean check
// builds no path at all.
func (fi *fsckImage) paths() error {
	damaged := map[string]*fsckUse{}
	for _, u := range fi.uses {
		if s := u.o.state; s != objOK && s != objFailed {
			damaged[string(u.o.digest)] = u
			u.paths = []string{}
		}
	}
	if len(damaged) == 0 {
		return nil
	}
	return fi.img.Walk(func(e *composefs.Entry) error {
		if d := e.Inode.Digest; d != nil && e.Inode.Type() == composefs.ModeRegular {
			if u := damaged[string(d)]; u != nil {
				u.paths = append(u.paths, e.Path)
			}
		}
		return nil
	})
}

// report turns the verdicts of the image's objects into r.
func (fi *fsckImage) report(r *FsckImage) {
	if err := fi.paths(); err != nil {
		r.Status, r.Error = FsckError, err.Error()
		return
	}
	failed := []string{}
	for _, u := range fi.uses {
		o := u.o
		r.Objects++
		r.Bytes += o.size
		if o.state == objOK {
			continue
		}
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
