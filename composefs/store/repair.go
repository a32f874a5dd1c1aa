package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ObjectSource offers files that may restore missing or corrupt objects: a
// directory tree, a tar archive, the layers of an OCI image. Repair keeps
// the files whose fs-verity digest is one it needs and ignores the rest.
type ObjectSource interface {
	// String names the source in messages ("tree /srv/rootfs").
	String() string
	// Files calls fn for the regular files of the source whose size
	// want accepts (others may be skipped unread), in any order, possibly
	// from several goroutines at once. It stops at fn's first error and
	// returns it.
	Files(ctx context.Context, want func(size int64) bool, fn func(SourceFile) error) error
}

// SourceFile is one file an ObjectSource offers.
type SourceFile struct {
	Name string // its path in the source, for messages
	Size int64
	// Digest is the file's fs-verity digest when the source knows it
	// (e.g. from an import record); nil: repair computes it. A known
	// digest lets repair skip files it does not need unread; the copy is
	// verified either way.
	Digest []byte
	// Content yields the file's bytes, only during the call of fn. When
	// it is also an io.Seeker, repair hashes the file first and copies it
	// only if it is needed.
	Content io.Reader
}

// ImageBuilder is an ObjectSource that can also write a composefs image of
// its content (a tree: the image mkcomposefs builds with default options),
// so that a missing or corrupt image object can be rebuilt.
type ImageBuilder interface {
	BuildImage(ctx context.Context, w io.Writer) error
}

// HashImageBuilder is an ImageBuilder that can also write the image with
// another fs-verity algorithm (files' digests and all, as import --hash
// builds it), so that a SHA-512 image object can be rebuilt too.
type HashImageBuilder interface {
	BuildImageHash(ctx context.Context, w io.Writer, alg verity.Algorithm) error
}

// Repair errors.
var (
	// ErrUnresolved is returned by Repair when no source had some of the
	// objects it needed.
	ErrUnresolved = errors.New("objects not found in any source")
	// ErrSourceFailed is returned by Repair when a source could not be
	// read to its end (Repair went on with the others).
	ErrSourceFailed = errors.New("source could not be read")
)

// storeError marks a failure to write the store (as opposed to reading a
// source): it ends Repair.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// Restored is one object Repair put back.
type Restored struct {
	Object string `json:"object"`
	Source string `json:"source"` // ObjectSource.String()
	File   string `json:"file"`   // SourceFile.Name
}

// RepairReport is what Repair did.
type RepairReport struct {
	Restored []Restored `json:"restored"`
	// Protected objects had the right content and got fs-verity enabled
	// in place.
	Protected []string `json:"protected"`
	// Unresolved objects were found in no source.
	Unresolved []string `json:"unresolved"`
}

// need is an object Repair must restore.
type need struct {
	size  int64 // -1: unknown (an image object)
	image bool
	done  bool
	busy  bool // being written by a goroutine
}

// Repair restores the missing and corrupt objects of the checked images
// from the sources, in order, and enables fs-verity on objects that lack
// it. An object is only ever replaced by a file with its digest: each is
// written to a temporary file, given fs-verity where the store has it,
// verified (measured by the kernel, else hashed again) and then renamed
// over the damaged object or linked in place of the missing one, so that a
// reader sees the old or the new object, never a partial one. Nothing else
// in the store is written. Repair holds the store lock shared, as an
// import does.
func (s *Store) Repair(ctx context.Context, reports []FsckImage, sources []ObjectSource) (RepairReport, error) {
	rep := RepairReport{Restored: []Restored{}, Protected: []string{}, Unresolved: []string{}}
	needs := map[string]*need{}
	var unprotected []string
	for _, r := range reports {
		if r.ImageObject != nil {
			needs[r.ImageObject.Object] = &need{size: -1, image: true}
		}
		for _, l := range [][]FsckObject{r.Missing, r.Corrupt} {
			for _, o := range l {
				needs[o.Object] = &need{size: o.Size}
			}
		}
		for _, o := range r.Unprotected {
			unprotected = append(unprotected, o.Object)
		}
	}
	if len(needs) == 0 && len(unprotected) == 0 {
		return rep, nil
	}
	se, done, err := s.beginImport()
	if err != nil {
		return rep, err
	}
	defer done()
	rp := &repairer{se: se, needs: needs, rep: &rep}
	for d := range needs {
		rp.sha512 = rp.sha512 || len(d) == 2*composefs.SHA512DigestSize
	}
	for _, d := range sortedSet(unprotected) {
		if _, ok := needs[d]; ok {
			continue
		}
		if err := rp.protect(d); err != nil {
			return rep, err
		}
	}
	var errs []error
	fail := func(src ObjectSource, err error) error {
		var se storeError
		if errors.As(err, &se) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Errorf("%w: %s: %w", ErrSourceFailed, src, err))
		return nil
	}
	for _, src := range sources {
		if rp.remaining(false) == 0 {
			break
		}
		if err := rp.fromSource(ctx, src); err != nil {
			if err := fail(src, err); err != nil {
				return rep, err
			}
		}
	}
	for _, src := range sources {
		b, ok := src.(ImageBuilder)
		if !ok || rp.remaining(true) == 0 {
			continue
		}
		err := rp.fromBuilder(ctx, src, verity.SHA256, b.BuildImage)
		if hb, ok := src.(HashImageBuilder); err == nil && ok && rp.sha512 && rp.remaining(true) > 0 {
			err = rp.fromBuilder(ctx, src, verity.SHA512, func(ctx context.Context, w io.Writer) error {
				return hb.BuildImageHash(ctx, w, verity.SHA512)
			})
		}
		if err != nil {
			if err := fail(src, err); err != nil {
				return rep, err
			}
		}
	}
	if err := rp.sync(); err != nil {
		return rep, err
	}
	sort.Slice(rep.Restored, func(i, j int) bool { return rep.Restored[i].Object < rep.Restored[j].Object })
	for d, n := range needs {
		if !n.done {
			rep.Unresolved = append(rep.Unresolved, d)
		}
	}
	sort.Strings(rep.Unresolved)
	if len(rep.Unresolved) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrUnresolved, strings.Join(rep.Unresolved, ", ")))
	}
	return rep, errors.Join(errs...)
}

func sortedSet(l []string) []string {
	l = append([]string(nil), l...)
	sort.Strings(l)
	out := l[:0]
	for i, d := range l {
		if i == 0 || d != l[i-1] {
			out = append(out, d)
		}
	}
	return out
}

type repairer struct {
	se      *session
	workers sync.Pool // *repairWorker: fn may run on several goroutines

	sha512 bool // some needed objects are SHA-512 ones: hash sources with both

	mu    sync.Mutex
	needs map[string]*need
	sizes map[int64]bool
	rep   *RepairReport
}

// remaining counts the objects still needed (only image objects: images).
func (rp *repairer) remaining(images bool) int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	n := 0
	for _, nd := range rp.needs {
		if !nd.done && (!images || nd.image) {
			n++
		}
	}
	return n
}

func (rp *repairer) worker() *repairWorker {
	if w, ok := rp.workers.Get().(*repairWorker); ok {
		return w
	}
	h, _ := verity.NewHasher() // default parameters cannot fail
	h.SetConcurrency(1)
	w := &repairWorker{h: h, buf: make([]byte, repairBuf)}
	if rp.sha512 {
		w.h512, _ = verity.NewHasher(verity.WithAlgorithm(verity.SHA512))
		w.h512.SetConcurrency(1)
	}
	return w
}

// reset starts new digests in w's hashers.
func (w *repairWorker) reset() {
	w.h.Reset()
	if w.h512 != nil {
		w.h512.Reset()
	}
}

// sum returns the digest of what w hashed that is needed: the SHA-256 one,
// else the SHA-512 one; nil if neither is.
func (rp *repairer) sum(w *repairWorker) []byte {
	if d := w.h.Sum(); rp.needed(d) {
		return d
	}
	if w.h512 != nil {
		if d := w.h512.Sum(); rp.needed(d) {
			return d
		}
	}
	return nil
}

// repairWorker is the hasher and buffer of one goroutine reading a
// source. Sources may run fn on several goroutines at once: each hashes on
// its own core.
type repairWorker struct {
	h    *verity.Hasher
	h512 *verity.Hasher // with SHA-512 needs only
	buf  []byte
}

// repairBuf is the size of the chunks sources are read in, as an import
// reads files.
const repairBuf = 256 << 10

// needed reports whether d is still needed.
func (rp *repairer) needed(d []byte) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	n := rp.needs[hex.EncodeToString(d)]
	return n != nil && !n.done
}

// claim reports whether d is needed and not being restored, and marks it
// busy: the caller then restores it and calls finish.
func (rp *repairer) claim(d []byte) (string, bool) {
	hd := hex.EncodeToString(d)
	rp.mu.Lock()
	defer rp.mu.Unlock()
	n := rp.needs[hd]
	if n == nil || n.done || n.busy {
		return hd, false
	}
	n.busy = true
	return hd, true
}

func (rp *repairer) finish(hd string, restored *Restored) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	n := rp.needs[hd]
	n.busy = false
	if restored != nil {
		n.done = true
		rp.rep.Restored = append(rp.rep.Restored, *restored)
	}
}

// wanted reports whether a needed object (not an image) may have size n.
func (rp *repairer) wanted(n int64) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.sizes == nil {
		rp.sizes = map[int64]bool{}
		for _, nd := range rp.needs {
			if !nd.image {
				rp.sizes[nd.size] = true
			}
		}
	}
	return rp.sizes[n]
}

// errAllFound stops a source once nothing is needed any more.
var errAllFound = errors.New("every needed object restored")

func (rp *repairer) fromSource(ctx context.Context, src ObjectSource) error {
	err := src.Files(ctx, rp.wanted, func(f SourceFile) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rp.file(src, f); err != nil {
			return err
		}
		if rp.remaining(false) == 0 {
			return errAllFound
		}
		return nil
	})
	if errors.Is(err, errAllFound) {
		return nil
	}
	return err
}

// file restores the object of f if it is needed.
func (rp *repairer) file(src ObjectSource, f SourceFile) error {
	if f.Digest != nil && !rp.needed(f.Digest) {
		return nil
	}
	w := rp.worker()
	defer rp.workers.Put(w)
	if sk, ok := f.Content.(io.ReadSeeker); ok {
		// Hash first, copy only what is needed (as a re-import does).
		w.reset()
		if err := hashReader(w, sk, f.Name, f.Size); err != nil {
			return err
		}
		if rp.sum(w) == nil {
			return nil
		}
		if _, err := sk.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	t, err := rp.se.createTemp(rp.se.spreadDir())
	if err != nil {
		return storeError{err}
	}
	defer t.discard()
	w.reset()
	if err := copyReader(w, t, f.Content, f.Name, f.Size); err != nil {
		return err
	}
	d := rp.sum(w)
	if d == nil {
		return nil
	}
	hd, ok := rp.claim(d)
	if !ok {
		return nil
	}
	err = rp.install(w, t, hd, f.Size)
	if err != nil {
		rp.finish(hd, nil)
		return storeError{err}
	}
	rp.finish(hd, &Restored{Object: hd, Source: src.String(), File: f.Name})
	return nil
}

// hashReader hashes size bytes of r with w's hasher.
func hashReader(w *repairWorker, r io.Reader, name string, size int64) error {
	return readChunks(w, r, name, size, nil)
}

// copyReader copies size bytes of r into t, hashing them with w's hasher.
func copyReader(w *repairWorker, t *tempObject, r io.Reader, name string, size int64) error {
	return readChunks(w, r, name, size, func(p []byte) error {
		if err := t.write(p); err != nil {
			return storeError{fmt.Errorf("store: writing the object of %s: %w", name, err)}
		}
		return nil
	})
}

// readChunks reads exactly size bytes of r through w.buf, hashing each
// chunk and passing it to write (if not nil).
func readChunks(w *repairWorker, r io.Reader, name string, size int64, write func([]byte) error) error {
	remaining := size
	for remaining > 0 {
		p := w.buf[:min(int64(len(w.buf)), remaining)]
		n, err := io.ReadFull(r, p)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return composefs.SizeChanged(name, size, size-remaining+int64(n))
			}
			return fmt.Errorf("reading %s: %w", name, err)
		}
		w.h.Write(p)
		if w.h512 != nil {
			w.h512.Write(p)
		}
		if write != nil {
			if err := write(p); err != nil {
				return err
			}
		}
		remaining -= int64(n)
	}
	return nil
}

// install seals the temporary object t, of digest hd, verifies it and
// puts it in place of the damaged or missing object.
func (rp *repairer) install(w *repairWorker, t *tempObject, hd string, size int64) error {
	d, _ := hex.DecodeString(hd)
	final := filepath.Join(rp.se.s.dir, "objects", composefs.ObjectPath(d))
	se := rp.se
	alg, _ := composefs.DigestAlgorithm(d)
	if err := se.seal(t, alg); err != nil {
		return err
	}
	if err := verifyTemp(w, t, d, size); err != nil {
		return fmt.Errorf("object %s: %w", hd, err)
	}
	err := t.link(final)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("store: %s: %w", final, err)
	}
	// The damaged object is there: replace it in one rename. (It is not
	// checked again: with fs-verity, measuring it would vouch for a file
	// whose blocks fail to read. Should another process have restored it
	// meanwhile, the same bytes replace the same bytes.)
	tmp := filepath.Join(filepath.Dir(final), ".repair-"+filepath.Base(se.dir)+"-"+hd)
	if t.name != "" {
		tmp = t.name
	} else if err := t.link(tmp); err != nil {
		return fmt.Errorf("store: %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: %w", err)
	}
	t.name = ""
	return nil
}

// verifyTemp checks that the sealed temporary object has digest d: the
// kernel's measurement where fs-verity is on, else its bytes hashed again.
func verifyTemp(w *repairWorker, t *tempObject, d []byte, size int64) error {
	if t.ro != nil {
		alg, got, err := verity.MeasureFile(t.ro)
		if err != nil {
			return err
		}
		if want, _ := composefs.DigestAlgorithm(d); alg != want || !bytes.Equal(got, d) {
			return fmt.Errorf("%w: the copy measures %s:%x", ErrCorrupt, alg, got)
		}
		return nil
	}
	w.reset()
	if err := readChunks(w, io.NewSectionReader(fdReaderAt(t.fd), 0, size), "copy", size, nil); err != nil {
		return err
	}
	h := w.h
	if len(d) == composefs.SHA512DigestSize {
		h = w.h512
	}
	if got := h.Sum(); !bytes.Equal(got, d) {
		return fmt.Errorf("%w: the copy hashes to %x", ErrCorrupt, got)
	}
	return nil
}

// fdReaderAt reads a descriptor with pread.
type fdReaderAt int

func (fd fdReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(int(fd), p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}

// fromBuilder rebuilds image objects from a source that can write images
// (build), hashing them with alg.
func (rp *repairer) fromBuilder(ctx context.Context, src ObjectSource, alg verity.Algorithm, build func(context.Context, io.Writer) error) error {
	t, err := rp.se.createTemp(rp.se.spreadDir())
	if err != nil {
		return storeError{err}
	}
	defer t.discard()
	w := rp.worker()
	defer rp.workers.Put(w)
	h := w.h
	if alg == verity.SHA512 {
		h = w.h512
	}
	h.Reset()
	var n countingWriter
	if err := build(ctx, io.MultiWriter(t, h, &n)); err != nil {
		return err
	}
	hd, ok := rp.claim(h.Sum())
	if !ok {
		return nil // not the image that is needed (other build options?)
	}
	if err := rp.install(w, t, hd, int64(n)); err != nil {
		rp.finish(hd, nil)
		return storeError{err}
	}
	rp.finish(hd, &Restored{Object: hd, Source: src.String(), File: "the composefs image built from it"})
	return nil
}

// protect enables fs-verity on an object with the right content.
func (rp *repairer) protect(hd string) error {
	d, err := parseDigest(hd)
	if err != nil {
		return err
	}
	p := filepath.Join(rp.se.s.dir, "objects", composefs.ObjectPath(d))
	alg, _ := composefs.DigestAlgorithm(d)
	if err := verity.Enable(p, verity.WithAlgorithm(alg)); err != nil && !errors.Is(err, verity.ErrAlreadyEnabled) {
		return fmt.Errorf("store: %w", err)
	}
	rp.rep.Protected = append(rp.rep.Protected, hd)
	return nil
}

// sync makes the restored objects durable.
func (rp *repairer) sync() error {
	root, err := os.Open(rp.se.s.dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer root.Close()
	if err := unix.Syncfs(int(root.Fd())); err != nil {
		return fmt.Errorf("store: syncfs: %w", err)
	}
	return nil
}
