package composefs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// DefaultStoreDir is where cfs-runtime keeps images and objects.
const DefaultStoreDir = "/var/lib/cfs-runtime"

// Store errors.
var (
	// ErrNotFound is returned for an image the store lacks.
	ErrNotFound = errors.New("not in the store")
	// ErrBadDigest is returned for a string that is not a SHA-256 digest
	// in lower-case hex.
	ErrBadDigest = errors.New("not a SHA-256 digest in lower-case hex")
	// ErrSourceChanged is returned when a file's content no longer
	// matches the digest computed for the image: it changed during the
	// import.
	ErrSourceChanged = errors.New("file changed during import")
)

// Store is a content-addressed composefs object store:
//
//	objects/XX/YYYY...  file contents and images, named by fs-verity digest
//	images/DIGEST       symlink to ../objects/XX/YYYY...: an imported image
//	tmp/ID/, tmp/ID.lock  a running import's named temporary files
//	lock                flock: shared while importing (exclusive: future gc)
//
// Objects only ever appear under their final name complete: each is
// written to a nameless O_TMPFILE in its directory (or a named file in
// tmp/ID/ where the filesystem has none), checked against its digest and
// then linked into place without replacing an existing object. A killed
// import leaves nothing under a final name; its named leftovers are removed
// by the next import. An images/ link only appears once everything it
// needs is durable (one syncfs per import, no fsync per object). Imports
// may run concurrently, also from different processes.
type Store struct {
	dir     string
	threads int

	verityOnce sync.Once
	verityOK   bool
	noTmpfile  bool // tests: use named temporary files as without O_TMPFILE
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithStoreThreads sets how many files an import copies and verifies in
// parallel (default GOMAXPROCS).
func WithStoreThreads(n int) StoreOption {
	return func(s *Store) {
		if n > 0 {
			s.threads = n
		}
	}
}

// OpenStore opens the store at dir, creating its layout if needed.
func OpenStore(dir string, opts ...StoreOption) (*Store, error) {
	s := &Store{dir: dir, threads: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{"", "objects", "images", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// Let ext4's Orlov allocator spread the fan-out directories, and so
	// the objects, over the block groups (chattr +T) instead of crowding
	// one group. Best effort: other filesystems ignore or refuse it.
	setTopdir(filepath.Join(dir, "objects"))
	// All 256 fan-out directories up front: no MkdirAll per object and no
	// directory creation racing between concurrent imports.
	objs := filepath.Join(dir, "objects")
	for i := range 256 {
		d := filepath.Join(objs, hex.EncodeToString([]byte{byte(i)}))
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return s, nil
}

// fsTopdirFL is FS_TOPDIR_FL of <linux/fs.h> (chattr +T).
const fsTopdirFL = 0x00020000

func setTopdir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFL != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL))
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// ObjectsDir returns the directory objects live under: the base directory
// an image's redirect paths are relative to.
func (s *Store) ObjectsDir() string { return filepath.Join(s.dir, "objects") }

// parseDigest checks a hex digest.
func parseDigest(digest string) ([]byte, error) {
	b, err := hex.DecodeString(digest)
	if err != nil || len(b) != DigestSize || strings.ToLower(digest) != digest {
		return nil, fmt.Errorf("%w: %q", ErrBadDigest, digest)
	}
	return b, nil
}

// ObjectPath returns the path of the object with the given digest (hex),
// whether or not it exists.
func (s *Store) ObjectPath(digest string) (string, error) {
	d, err := parseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, "objects", ObjectPath(d)), nil
}

// ImagePath returns the path of an imported image (images/DIGEST), or an
// error matching ErrNotFound.
func (s *Store) ImagePath(digest string) (string, error) {
	if _, err := parseDigest(digest); err != nil {
		return "", err
	}
	link := filepath.Join(s.dir, "images", digest)
	if _, err := os.Stat(link); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("image %s: %w", digest, ErrNotFound)
		}
		return "", fmt.Errorf("image %s: %w", digest, err)
	}
	return link, nil
}

// HasImage reports whether an image with that digest was imported.
func (s *Store) HasImage(digest string) bool {
	_, err := s.ImagePath(digest)
	return err == nil
}

// lockStore takes the store lock: shared for imports (they may run
// together), exclusive for operations that delete objects.
func (s *Store) lockStore(how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store lock: %w", err)
	}
	return f, nil
}

// session is one import's private temporary directory tmp/ID, owned while
// tmp/ID.lock is flocked. A killed import's lock goes away with the
// process, and the next import removes its leftovers.
type session struct {
	s    *Store
	dir  string
	lock *os.File
	seq  atomic.Uint64

	noReflink atomic.Bool // FICLONE failed: the filesystem cannot
}

func (s *Store) newSession() (*session, error) {
	tmp := filepath.Join(s.dir, "tmp")
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(rnd[:])
	// Lock under a hidden name, then rename: a cleaner never sees the lock
	// file unlocked.
	hidden := filepath.Join(tmp, "."+id+".lock")
	f, err := os.OpenFile(hidden, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		os.Remove(hidden)
		return nil, fmt.Errorf("store: lock %s: %w", hidden, err)
	}
	se := &session{s: s, dir: filepath.Join(tmp, id), lock: f}
	if err := os.Rename(hidden, se.dir+".lock"); err != nil {
		f.Close()
		os.Remove(hidden)
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := os.Mkdir(se.dir, 0o700); err != nil {
		se.close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return se, nil
}

// tempName returns a fresh path in the session's directory.
func (se *session) tempName() string {
	return filepath.Join(se.dir, strconv.FormatUint(se.seq.Add(1), 10))
}

func (se *session) close() {
	os.RemoveAll(se.dir)
	os.Remove(se.dir + ".lock")
	se.lock.Close()
}

// cleanTmp removes the temporary files of imports that died: those whose
// ID.lock can be locked, and directories without a lock file.
func (s *Store) cleanTmp() error {
	tmp := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // a lock being set up
		}
		if id, ok := strings.CutSuffix(name, ".lock"); ok {
			p := filepath.Join(tmp, name)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				continue // its owner just finished
			}
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				os.RemoveAll(filepath.Join(tmp, id))
				os.Remove(p)
			}
			f.Close()
			continue
		}
		// The owner creates its lock before its directory and removes it
		// after, so a directory without one is a leftover.
		if _, err := os.Lstat(filepath.Join(tmp, name+".lock")); errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(filepath.Join(tmp, name))
		}
	}
	return nil
}

// verityEnabled reports whether objects get fs-verity, probed once, in
// the session's own directory (so that a concurrent import's cleanup never
// takes the probe file for a leftover).
func (se *session) verityEnabled() bool {
	s := se.s
	s.verityOnce.Do(func() {
		s.verityOK = verity.Probe(se.dir) == nil
	})
	return s.verityOK
}

// ImportTree builds the composefs image of the directory tree as
// mkcomposefs would (with the same opts), puts every file the image refers
// to and the image itself into the store, and returns the image's digest
// (hex). When it returns successfully, everything is durable.
func (s *Store) ImportTree(tree string, opts ...Option) (string, error) {
	lock, err := s.lockStore(unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	se, err := s.newSession()
	if err != nil {
		return "", err
	}
	defer se.close()

	t, err := BuildTree(tree, opts...)
	if err != nil {
		return "", err
	}
	if err := se.copyObjects(t); err != nil {
		return "", err
	}
	digest, err := se.writeImage(func(w io.Writer) error { return t.WriteImage(w, opts...) })
	if err != nil {
		return "", err
	}
	return digest, se.commit(digest)
}

// ImportImage puts an existing composefs image file (e.g. made by
// mkcomposefs) into the store and returns its digest. The objects it
// refers to are not copied: Image.MissingObjects(s.ObjectsDir()) lists the
// ones still missing.
func (s *Store) ImportImage(path string) (string, error) {
	img, err := ReadImageFile(path)
	if err != nil {
		return "", err
	}
	// The store only holds images the reader accepts.
	if err := img.Walk(func(*Entry) error { return nil }); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	lock, err := s.lockStore(unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	se, err := s.newSession()
	if err != nil {
		return "", err
	}
	defer se.close()
	digest, err := se.writeImage(func(w io.Writer) error {
		_, err := w.Write(img.data)
		return err
	})
	if err != nil {
		return "", err
	}
	return digest, se.commit(digest)
}

// writeImage writes an image into a temporary file while hashing it, and
// stores it as an object.
func (se *session) writeImage(write func(io.Writer) error) (string, error) {
	t, err := se.createNamedTemp()
	if err != nil {
		return "", err
	}
	defer t.discard()
	h, err := verity.NewHasher()
	if err != nil {
		return "", err
	}
	var n countingWriter
	if err := write(io.MultiWriter(t.f, h, &n)); err != nil {
		return "", fmt.Errorf("store: writing image: %w", err)
	}
	d := h.Sum()
	final := filepath.Join(se.s.dir, "objects", ObjectPath(d))
	if ok, err := se.s.checkObject(final, d, uint64(n)); err != nil {
		return "", err
	} else if !ok {
		if err := se.finish(t, final); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(d), nil
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// commit makes everything written so far durable with one syncfs, then
// links images/DIGEST to the image object. The link is the commit point:
// an image listed in images/ never lacks an object, even after a power cut.
func (se *session) commit(digest string) error {
	s := se.s
	d, err := parseDigest(digest)
	if err != nil {
		return err
	}
	root, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer root.Close()
	if err := unix.Syncfs(int(root.Fd())); err != nil {
		return fmt.Errorf("store: syncfs: %w", err)
	}
	target := filepath.Join("..", "objects", ObjectPath(d))
	images := filepath.Join(s.dir, "images")
	if cur, err := os.Readlink(filepath.Join(images, digest)); err == nil && cur == target {
		return nil // imported before: nothing to rewrite
	}
	tmp := se.tempName()
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(images, digest)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return storeSyncDir(images)
}

func storeSyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}

// copyObjects copies the external files of t into the store with a pool of
// workers; each distinct digest is handled once.
func (se *session) copyObjects(t *Tree) error {
	type job struct {
		src    string
		digest []byte
		size   uint64
	}
	jobs := make(chan job, 4*se.s.threads)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for range se.s.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for j := range jobs {
				if failed() {
					continue
				}
				if err := se.putObject(j.src, j.digest, j.size, buf); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	seen := map[[DigestSize]byte]struct{}{}
	err := t.WalkObjects(func(o Object) error {
		if len(o.Digest) != DigestSize || o.Source == "" {
			return fmt.Errorf("store: %s: no digest or source file", o.Path)
		}
		k := [DigestSize]byte(o.Digest)
		if _, ok := seen[k]; ok {
			return nil // identical files share one object
		}
		seen[k] = struct{}{}
		if failed() {
			return errStopped
		}
		jobs <- job{o.Source, o.Digest, o.Size}
		return nil
	})
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	return err
}

var errStopped = errors.New("stopped")

// putObject stores the content of src under digest, unless a correct
// object is there already.
func (se *session) putObject(src string, digest []byte, size uint64, buf []byte) error {
	final := filepath.Join(se.s.dir, "objects", ObjectPath(digest))
	if ok, err := se.s.checkObject(final, digest, size); err != nil || ok {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer in.Close()
	t, err := se.createTemp(filepath.Dir(final))
	if err != nil {
		return err
	}
	defer t.discard()
	got, err := copyHashing(t.f, in, buf, &se.noReflink)
	if err != nil {
		return fmt.Errorf("store: copying %s: %w", src, err)
	}
	if !bytes.Equal(got, digest) {
		return fmt.Errorf("store: %s: %w (fs-verity digest now %x, was %x)", src, ErrSourceChanged, got, digest)
	}
	return se.finish(t, final)
}

// tempObject is an object being written: an O_TMPFILE inode in the
// object's own directory (nameless, so a killed import leaves nothing
// behind, and new inodes spread over the fan-out directories instead of
// piling into one), or, where the filesystem has no O_TMPFILE, a named file
// in the session directory.
type tempObject struct {
	f    *os.File
	name string // "" for an O_TMPFILE
}

func (se *session) createTemp(dir string) (*tempObject, error) {
	if se.s.noTmpfile {
		return se.createNamedTemp()
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return &tempObject{f: os.NewFile(uintptr(fd), filepath.Join(dir, "(new object)"))}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("store: temporary file in %s: %w", dir, err)
	}
	return se.createNamedTemp()
}

func (se *session) createNamedTemp() (*tempObject, error) {
	name := se.tempName()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &tempObject{f: f, name: name}, nil
}

// discard drops whatever is left of t (nothing after a successful finish
// but the descriptor).
func (t *tempObject) discard() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.name != "" {
		os.Remove(t.name)
	}
}

// copyHashing copies in to out and returns the fs-verity digest of what
// was written, so that an object's name always matches its bytes. Where
// the filesystem can, a reflink (FICLONE) shares the blocks instead, and
// the clone is read back for the digest; noReflink remembers that it
// cannot.
func copyHashing(out, in *os.File, buf []byte, noReflink *atomic.Bool) ([]byte, error) {
	h, err := verity.NewHasher()
	if err != nil {
		return nil, err
	}
	if !noReflink.Load() {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			if _, err := h.ReadFrom(out); err != nil {
				return nil, err
			}
			return h.Sum(), nil
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTTY) {
			noReflink.Store(true)
		}
	}
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			h.Write(buf[:n])
			if _, err := out.Write(buf[:n]); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return h.Sum(), nil
		}
		if rerr != nil {
			return nil, rerr
		}
	}
}

// checkObject reports whether a correct object is at path: a regular file
// of the right size and fs-verity digest (the kernel's, when fs-verity is
// enabled on it, else computed). A wrong object, e.g. one cut short by a
// power failure before the import that wrote it finished, is removed so
// that it gets written again.
func (s *Store) checkObject(path string, digest []byte, size uint64) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	ok := fi.Mode().IsRegular() && uint64(fi.Size()) == size
	if ok {
		var got []byte
		if alg, d, err := verity.MeasureFile(f); err == nil && alg == verity.SHA256 {
			got = d
		} else {
			h, err := verity.NewHasher()
			if err != nil {
				return false, err
			}
			if _, err := h.ReadFrom(f); err != nil {
				return false, fmt.Errorf("store: reading %s: %w", path, err)
			}
			got = h.Sum()
		}
		ok = bytes.Equal(got, digest)
	}
	if !ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("store: removing corrupt object %s: %w", path, err)
		}
	}
	return ok, nil
}

// finish makes a completely written temporary object its object: mode
// 0644, fs-verity enabled where the filesystem supports it, then linked or
// renamed to its name without replacing anything. If the name exists
// meanwhile (a concurrent import won), the existing object stays and t is
// dropped: objects are never rewritten.
func (se *session) finish(t *tempObject, final string) error {
	if err := t.f.Chmod(0o644); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if se.verityEnabled() {
		// FS_IOC_ENABLE_VERITY wants no writable descriptor: reopen
		// read-only (through /proc for a nameless file) and close the
		// writable one.
		p := t.name
		if p == "" {
			p = "/proc/self/fd/" + strconv.Itoa(int(t.f.Fd()))
		}
		ro, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		t.f.Close()
		t.f = ro
		if err := verity.EnableFile(ro); err != nil && !errors.Is(err, verity.ErrAlreadyEnabled) {
			return fmt.Errorf("store: %w", err)
		}
	}
	var err error
	if t.name != "" {
		err = unix.Renameat2(unix.AT_FDCWD, t.name, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// No RENAME_NOREPLACE on this filesystem: link(2) refuses
			// an existing name just the same.
			err = unix.Link(t.name, final)
		}
	} else {
		err = unix.Linkat(int(t.f.Fd()), "", unix.AT_FDCWD, final, unix.AT_EMPTY_PATH)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
			// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not.
			err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(t.f.Fd())), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("store: %s: %w", final, err)
	}
	return nil
}
