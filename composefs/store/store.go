package store

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

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// DefaultDir is where cfs-runtime keeps images and objects.
const DefaultDir = "/var/lib/cfs-runtime"

// Store errors.
var (
	// ErrNotFound is returned for an image the store lacks.
	ErrNotFound = errors.New("not in the store")
	// ErrBadDigest is returned for a string that is not a SHA-256 or
	// SHA-512 digest in lower-case hex.
	ErrBadDigest = errors.New("not a SHA-256 or SHA-512 digest in lower-case hex")
)

// Store is a content-addressed composefs object store:
//
//	objects/XX/YYYY...  file contents and images, named by fs-verity digest
//	images/DIGEST       symlink to ../objects/XX/YYYY...: an imported image
//	tmp/ID/, tmp/ID.lock  a running import's named temporary files
//	lock                flock: shared while importing, checking (fsck) or using
//	                    an image (Hold); exclusive for gc
//
// The store is root's alone: every directory is 0700 (as containers/storage
// keeps its layers), so that no other user can read an image or an object
// (they hold whatever trees root imported). Containers are not affected:
// overlayfs reads its layers with the credentials of whoever mounted it.
//
// Objects only ever appear under their final name complete: each is
// written to a nameless O_TMPFILE in its directory (or a named file in
// tmp/ID/ where the filesystem has none), checked against its digest and
// then linked into place without replacing an existing object. A killed
// import leaves nothing under a final name; its named leftovers are removed
// by the next import. An images/ link only appears once everything it
// needs is durable (one syncfs per import, no fsync per object). Imports
// may run concurrently, also from different processes. An import that
// must yield a given digest (ImportTreeExpecting) keeps its new objects in
// tmp/ID/ until the image's digest is known, so that a tree that is not
// the expected one leaves nothing in objects/ or images/.
type Store struct {
	dir     string
	threads int

	hash verity.Algorithm // of the objects and images imports make

	verityOnce sync.Once
	verityOK   bool
	noTmpfile  bool // tests: use named temporary files as without O_TMPFILE

	// fanout makes the 256 objects/XX directories: at Open, or before the
	// first import with WithLazyFanout.
	lazyFanout bool
	fanoutOnce sync.Once
	fanoutErr  error
	tightened  bool

	// importProgress gets the size of each file a tree import stored.
	importProgress func(bytes int64)
}

// WithLazyFanout makes Open skip the 256 objects/XX directories until the
// first import needs them: what create uses, which opens the store for
// every container and imports only when the image is missing (256 mkdir
// per create otherwise).
func WithLazyFanout() Option { return func(s *Store) { s.lazyFanout = true } }

// storeDirMode is the mode of every directory of the store: root's only.
const storeDirMode = 0o700

// Option configures a Store.
type Option func(*Store)

// WithHash sets the fs-verity hash algorithm of the objects and images the
// store's imports make (ImportTree, ImportTreeAs, BeginStream):
// verity.SHA256 (the default) or verity.SHA512 (cfsctl's and bootc's
// default). Images of both live in one store, each object named by its
// own digest; ImportTreeExpecting uses the algorithm of the digest it
// expects.
func WithHash(a verity.Algorithm) Option { return func(s *Store) { s.hash = a } }

// WithImportProgress has a tree import (ImportTree, ImportTreeAs,
// ImportTreeExpecting) call fn with the size of each file once its
// content is in the store: a progress report for a terminal. fn is called
// from the import's workers, concurrently.
func WithImportProgress(fn func(bytes int64)) Option {
	return func(s *Store) { s.importProgress = fn }
}

// WithThreads sets how many files an import reads, hashes, copies
// and verifies in parallel (default GOMAXPROCS). It takes the place of
// composefs.WithThreads for ImportTree.
func WithThreads(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.threads = n
		}
	}
}

// Open opens the store at dir, creating its layout if needed. Every
// directory is made 0700; those of a store made before (0755) are
// tightened: the top-level ones whenever they are found open to others, the
// fan-out directories under objects/ along with objects/ itself.
func Open(dir string, opts ...Option) (*Store, error) {
	s := &Store{dir: dir, threads: runtime.GOMAXPROCS(0), hash: verity.SHA256}
	for _, o := range opts {
		o(s)
	}
	tightened := false
	for _, d := range []string{"", "objects", "images", "tmp", "locks", "provenance", "refs", "layers"} {
		p := filepath.Join(dir, d)
		switch d {
		case "", "objects", "images", "tmp":
			err := os.Mkdir(p, storeDirMode)
			if err == nil {
				continue
			}
			if !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		t, err := makePrivate(p)
		if errors.Is(err, fs.ErrNotExist) && d != "" {
			continue // made (0700) when first needed
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if d == "objects" {
			tightened = t
		}
	}
	// Let ext4's Orlov allocator spread the fan-out directories, and so
	// the objects, over the block groups (chattr +T) instead of crowding
	// one group. Best effort: other filesystems ignore or refuse it.
	setTopdir(filepath.Join(dir, "objects"))
	s.tightened = tightened
	if !s.lazyFanout {
		if err := s.fanout(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// fanout makes the 256 objects/XX directories (once per Store).
func (s *Store) fanout() error {
	s.fanoutOnce.Do(func() { s.fanoutErr = s.makeFanout() })
	return s.fanoutErr
}

func (s *Store) makeFanout() error {
	dir, tightened := s.dir, s.tightened
	// All 256 fan-out directories up front: no MkdirAll per object and no
	// directory creation racing between concurrent imports.
	objs := filepath.Join(dir, "objects")
	for i := range 256 {
		d := filepath.Join(objs, hex.EncodeToString([]byte{byte(i)}))
		err := os.Mkdir(d, storeDirMode)
		if errors.Is(err, fs.ErrExist) {
			err = nil
			if tightened {
				_, err = makePrivate(d)
			}
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	return nil
}

// makePrivate gives the existing directory p (or the one a symlink there
// leads to) mode 0700 if it grants anything to group or others, and
// reports whether it had to.
func makePrivate(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s: %w", p, unix.ENOTDIR)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return false, nil
	}
	if err := os.Chmod(p, storeDirMode); err != nil {
		return false, fmt.Errorf("%s is open to other users (mode %v) and could not be made private: %w", p, fi.Mode().Perm(), err)
	}
	return true, nil
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

// Hash returns the fs-verity algorithm of the store's imports (WithHash).
func (s *Store) Hash() verity.Algorithm { return s.hash }

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// ObjectsDir returns the directory objects live under: the base directory
// an image's redirect paths are relative to.
func (s *Store) ObjectsDir() string { return filepath.Join(s.dir, "objects") }

// parseDigest checks a hex digest: 64 digits for a SHA-256 object or
// image, 128 for a SHA-512 one (named in objects/ and images/ as
// composefs-rs names them in a sha512 repository: objects/XX/ and the
// other 126 digits).
func parseDigest(digest string) ([]byte, error) {
	b, err := hex.DecodeString(digest)
	if _, ok := composefs.DigestAlgorithm(b); err != nil || !ok || strings.ToLower(digest) != digest {
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
	return filepath.Join(s.dir, "objects", composefs.ObjectPath(d)), nil
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

// ImageDigest returns the digest (hex) of the image at path when path is
// one of this store's images (images/DIGEST), as mount state records it.
func (s *Store) ImageDigest(path string) (string, bool) {
	if filepath.Dir(path) != filepath.Join(s.dir, "images") {
		return "", false
	}
	d := filepath.Base(path)
	if _, err := parseDigest(d); err != nil {
		return "", false
	}
	return d, true
}

// ErrUnsupportedDigest: the store holds fsverity-sha256-12 and
// fsverity-sha512-12 images only.
var ErrUnsupportedDigest = errors.New("the store holds fsverity-sha256-12 and fsverity-sha512-12 images only")

// name checks that the store can hold an image of digest d (this is the
// one place that says which) and returns its name in the store: the
// lowercase hex of images/DIGEST and objects/XX/....
func name(d composefs.ImageDigest) (string, error) {
	if alg, ok := composefs.DigestAlgorithm(d.Value); !ok || alg != d.Algorithm || d.BlockSize != verity.DefaultBlockSize {
		return "", fmt.Errorf("composefs digest %s: %w", d, ErrUnsupportedDigest)
	}
	return d.Hex(), nil
}

// Supports reports (nil) whether the store can hold an image of digest d.
func Supports(d composefs.ImageDigest) error {
	_, err := name(d)
	return err
}

// HasImage reports whether an image with that digest was imported.
func (s *Store) HasImage(d composefs.ImageDigest) bool {
	n, err := name(d)
	if err != nil {
		return false
	}
	_, err = s.ImagePath(n)
	return err == nil
}

// LockImport takes an exclusive lock for importing the image of digest d
// (locks/DIGEST, a file that stays; flock is released on close or process
// exit, so a killed import never leaves it held): concurrent creates of
// one new image import it once.
func (s *Store) LockImport(d composefs.ImageDigest) (unlock func(), err error) {
	n, err := name(d)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, "locks")
	if err := os.MkdirAll(dir, storeDirMode); err != nil {
		return nil, fmt.Errorf("import lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, n), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("import lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("import lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// lockStore takes the store lock: shared for imports (they may run
// together), exclusive for operations that delete objects.
func (s *Store) lockStore(how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
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
	noTmpfile atomic.Bool // O_TMPFILE failed: the filesystem has none
	spread    atomic.Uint32

	// Objects of this import: claimed by the first file with that
	// content; found correct in the store; written.
	alg              verity.Algorithm // of the objects and the image
	mu               sync.Mutex
	claimed          map[string]struct{} // binary digests
	present, created atomic.Int64

	// A background syncfs (startFlush): one at a time, another after it
	// when asked for meanwhile; close waits for it.
	flushMu                  sync.Mutex
	flushRunning, flushAgain bool
	flushWG                  sync.WaitGroup

	// staging: new objects are linked into the session directory
	// (staged, under mu) and only moved to their names by publish.
	staging bool
	staged  []stagedObject
}

// stagedObject is a complete, sealed object waiting in the session
// directory under name for its final name.
type stagedObject struct {
	name, final string
	digest      []byte
	size        int64
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
	se := &session{s: s, dir: filepath.Join(tmp, id), lock: f, alg: s.hash, claimed: map[string]struct{}{}}
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

// startFlush starts a syncfs of the store's filesystem in the background:
// what the import wrote so far goes to disk while it goes on computing,
// and the commit's syncfs (which makes everything durable, whatever the
// background one did) finds little left to wait for. Its errors are the
// commit's to find.
func (se *session) startFlush() {
	se.flushMu.Lock()
	defer se.flushMu.Unlock()
	if se.flushRunning {
		se.flushAgain = true
		return
	}
	se.flushRunning = true
	se.flushWG.Add(1)
	go func() {
		defer se.flushWG.Done()
		for {
			if f, err := os.Open(se.s.dir); err == nil {
				unix.Syncfs(int(f.Fd()))
				f.Close()
			}
			se.flushMu.Lock()
			again := se.flushAgain
			se.flushAgain, se.flushRunning = false, again
			se.flushMu.Unlock()
			if !again {
				return
			}
		}
	}()
}

func (se *session) close() {
	se.flushWG.Wait()
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
//
// Each file is read once: the scan's workers (WithThreads of them)
// hash the bytes they copy into the file's object, so that the digest in
// the image is always the digest of the stored bytes. A file whose size
// no longer matches the scan's lstat fails the import with
// composefs.ErrSourceChanged.
func (s *Store) ImportTree(tree string, opts ...composefs.Option) (string, error) {
	return s.importTree(tree, "", s.hash, nil, opts)
}

// ImportTreeAs is ImportTree that also makes the ref name (the tree's
// absolute path when "") refer to the image, with a RefKindTree source,
// before it releases the store lock: a gc waiting for the lock never
// finds the image without its ref.
func (s *Store) ImportTreeAs(tree, name string, opts ...composefs.Option) (string, error) {
	abs, err := filepath.Abs(tree)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	ref := &Ref{Name: name, Source: RefSource{Kind: RefKindTree, Ref: abs}}
	if ref.Name == "" {
		ref.Name = abs
	}
	// A bad name fails before anything is imported.
	if _, err := refFile(ref.Name); err != nil {
		return "", err
	}
	return s.importTree(tree, "", s.hash, ref, opts)
}

// ErrUnexpectedDigest is returned by ImportTreeExpecting for a tree whose
// image has another digest than the one expected.
var ErrUnexpectedDigest = errors.New("the image has another digest than expected")

// ImportTreeExpecting is ImportTree for a tree that must have the image
// digest want (e.g. the one signed): its image and the objects new to the
// store stay in the import's private directory (tmp/ID/) until the
// image's digest is known, and reach objects/ and images/ only if it is
// want. Otherwise it returns the digest the tree has and an error matching
// ErrUnexpectedDigest, and nothing of the tree is left in the store: as
// root, an import reads any file, and the store must not become a copy of
// files that their owner did not mean to share.
func (s *Store) ImportTreeExpecting(tree string, want composefs.ImageDigest, opts ...composefs.Option) (composefs.ImageDigest, error) {
	n, err := name(want)
	if err != nil {
		return composefs.ImageDigest{}, err
	}
	got, err := s.importTree(tree, n, want.Algorithm, nil, opts)
	d, _ := composefs.ParseDigestValue(want.Algorithm, verity.DefaultBlockSize, got)
	return d, err
}

// importTree imports tree; with want set, staged (see ImportTreeExpecting);
// with ref set, kept by that ref (see ImportTreeAs).
func (s *Store) importTree(tree, want string, alg verity.Algorithm, ref *Ref, opts []composefs.Option) (string, error) {
	if alg != verity.SHA256 && alg != verity.SHA512 {
		return "", fmt.Errorf("store: fs-verity algorithm %s: %w", alg, ErrUnsupportedDigest)
	}
	se, done, err := s.beginImport()
	if err != nil {
		return "", err
	}
	defer done()
	se.staging = want != ""
	se.alg = alg

	// The store's threads and the algorithm, whatever opts holds.
	scan := append(opts[:len(opts):len(opts)], composefs.WithThreads(s.threads), composefs.WithHash(alg))
	content := se.storeContent
	if s.importProgress != nil {
		content = func(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
			d, err := se.storeContent(w, fd, path, size)
			if err == nil {
				s.importProgress(size)
			}
			return d, err
		}
	}
	t, err := composefs.BuildTreeWith(tree, content, scan...)
	if err != nil {
		return "", err
	}
	digest, err := se.writeImage(func(w io.Writer) error { return t.WriteImage(w, opts...) })
	if err != nil {
		return "", err
	}
	if se.staging {
		if digest != want {
			// done removes tmp/ID/ and everything staged in it.
			return digest, fmt.Errorf("%w: %s has composefs digest %s, not %s", ErrUnexpectedDigest, tree, digest, want)
		}
		if err := se.publish(); err != nil {
			return "", err
		}
	}
	if err := se.recordSource(digest, SourceTree, tree); err != nil {
		return "", err
	}
	if err := se.commit(digest); err != nil {
		return "", err
	}
	if ref != nil {
		if err := s.SetRef(ref.Name, digest, ref.Source); err != nil {
			return digest, fmt.Errorf("store: image %s imported, but its ref: %w", digest, err)
		}
	}
	return digest, nil
}

// beginImport takes the shared store lock (imports run together; gc takes
// it exclusively) and opens an import session. done ends both.
func (s *Store) beginImport() (se *session, done func(), err error) {
	if err := s.fanout(); err != nil {
		return nil, nil, err
	}
	lock, err := s.lockStore(unix.LOCK_SH)
	if err != nil {
		return nil, nil, err
	}
	se, err = s.newSession()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	return se, func() { se.close(); lock.Close() }, nil
}

// ImportImage puts an existing composefs image file (e.g. made by
// mkcomposefs) into the store and returns its digest. The objects it
// refers to are not copied: composefs.Image.MissingObjects(s.ObjectsDir())
// lists the ones still missing.
func (s *Store) ImportImage(path string) (string, error) {
	img, err := composefs.ReadImageFile(path)
	if err != nil {
		return "", err
	}
	// The store only holds images the reader accepts.
	if err := img.Walk(func(*composefs.Entry) error { return nil }); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	se, done, err := s.beginImport()
	if err != nil {
		return "", err
	}
	defer done()
	digest, err := se.writeImage(func(w io.Writer) error {
		_, err := w.Write(img.Bytes())
		return err
	})
	if err != nil {
		return "", err
	}
	if err := se.recordSource(digest, SourceImage, path); err != nil {
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
	h, err := verity.NewHasher(verity.WithAlgorithm(se.alg))
	if err != nil {
		return "", err
	}
	var n countingWriter
	if err := write(io.MultiWriter(t, h, &n)); err != nil {
		return "", fmt.Errorf("store: writing image: %w", err)
	}
	d := h.Sum()
	final := filepath.Join(se.s.dir, "objects", composefs.ObjectPath(d))
	if err := se.place(nil, t, final, d, int64(n)); err != nil {
		return "", err
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
	target := filepath.Join("..", "objects", composefs.ObjectPath(d))
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

// storeContent is the contentFunc of an import: it reads a file of size
// bytes from fd, computes its fs-verity digest from the bytes it writes
// into the file's object (so that an object's name always matches its
// bytes, whatever the source does meanwhile) and returns the digest.
// Objects already in the store are checked, not rewritten; a file whose
// content is already being stored by this import is only hashed.
func (se *session) storeContent(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
	if !se.noReflink.Load() {
		d, err := se.storeCloned(w, fd, path, size)
		if d != nil || err != nil {
			return d, err
		}
	}
	switch {
	case size < int64(len(w.Buffer())):
		return se.storeWhole(w, fd, path, size)
	case se.mostlyPresent():
		return se.storeHashFirst(w, fd, path, size)
	default:
		return se.storeStreaming(w, fd, path, size)
	}
}

// mostlyPresent reports whether this import has so far found at least as
// many of its objects in the store as it had to write, as a re-import
// does. Then an object is looked for before its file is copied. Otherwise
// (a fresh import) the file is copied first, and an object already there
// is only noticed, and checked, when the copy cannot be linked to its name:
// that saves a lookup per object when nearly all are new.
func (se *session) mostlyPresent() bool {
	return se.present.Load() >= se.created.Load()
}

// storeWhole stores a file that fits in the worker's buffer: one read,
// the digest, then, unless the store has the object, one write into a
// temporary file in the object's own directory.
func (se *session) storeWhole(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
	p, _, err := w.ReadChunk(fd, path, size)
	if err != nil {
		return nil, err
	}
	if int64(len(p)) != size {
		return nil, composefs.SizeChanged(path, size, int64(len(p)))
	}
	return se.storeBuffer(w, p, path)
}

// storeStreaming stores a file too big for the worker's buffer in one
// pass: each chunk is hashed and written to a temporary file, which only
// gets the object's name once the digest is known. Its directory is one of
// the fan-out directories in turn, so that new inodes still spread.
func (se *session) storeStreaming(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
	t, err := se.createTemp(se.spreadDir())
	if err != nil {
		return nil, err
	}
	defer t.discard()
	if err := se.copyHashing(w, t, fd, path, size); err != nil {
		return nil, err
	}
	d := w.Sum()
	final, first := se.claim(d)
	if !first {
		return d, nil
	}
	return d, se.place(w, t, final, d, size)
}

// storeHashFirst hashes a big file, and copies it only if the store lacks
// its object: the copy is hashed again, and must give the same digest.
func (se *session) storeHashFirst(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
	d, err := w.Digest(fd, path, size)
	if err != nil {
		return nil, err
	}
	final, first := se.claim(d)
	if !first {
		return d, nil
	}
	if ok, err := se.found(w, final, d, size); err != nil || ok {
		return d, err
	}
	return d, se.copyObject(w, fd, path, d, size, final)
}

// copyObject copies the file open as fd (from its start) to the object
// final, which must get the fs-verity digest want.
func (se *session) copyObject(w *composefs.ContentWorker, fd int, path string, want []byte, size int64, final string) error {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	t, err := se.createTemp(filepath.Dir(final))
	if err != nil {
		return err
	}
	defer t.discard()
	if err := se.copyHashing(w, t, fd, path, size); err != nil {
		return err
	}
	if got := w.Sum(); !bytes.Equal(got, want) {
		return fmt.Errorf("store: %s: %w (fs-verity digest now %x, was %x)", path, composefs.ErrSourceChanged, got, want)
	}
	return se.place(w, t, final, want, size)
}

// copyHashing copies size bytes from fd to t through the worker's buffer,
// hashing them with the worker's hasher.
func (se *session) copyHashing(w *composefs.ContentWorker, t *tempObject, fd int, path string, size int64) error {
	w.Reset()
	remaining := size
	for {
		p, eof, err := w.ReadChunk(fd, path, remaining)
		if err != nil {
			return err
		}
		w.Hash(p)
		if err := t.write(p); err != nil {
			return fmt.Errorf("store: writing the object of %s: %w", path, err)
		}
		remaining -= int64(len(p))
		if eof {
			break
		}
	}
	if remaining != 0 {
		return composefs.SizeChanged(path, size, size-remaining)
	}
	return nil
}

// storeCloned shares the source's blocks with a new object (FICLONE) where
// the filesystem can, and hashes the clone. It returns nil, nil when the
// filesystem cannot, and remembers that.
func (se *session) storeCloned(w *composefs.ContentWorker, fd int, path string, size int64) ([]byte, error) {
	t, err := se.createTemp(se.spreadDir())
	if err != nil {
		return nil, err
	}
	defer t.discard()
	if err := unix.IoctlFileClone(t.fd, fd); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTTY) ||
			errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			se.noReflink.Store(true)
			return nil, nil
		}
		return nil, fmt.Errorf("store: cloning %s: %w", path, err)
	}
	d, err := w.Digest(t.fd, path, size)
	if err != nil {
		return nil, err
	}
	final, first := se.claim(d)
	if !first {
		return d, nil
	}
	return d, se.place(w, t, final, d, size)
}

// claim returns the object path of d and whether this is the first file
// of the import with that content: identical files share one object,
// stored once.
func (se *session) claim(d []byte) (final string, first bool) {
	k := string(d)
	se.mu.Lock()
	_, dup := se.claimed[k]
	se.claimed[k] = struct{}{}
	se.mu.Unlock()
	if dup {
		return "", false
	}
	return filepath.Join(se.s.dir, "objects", composefs.ObjectPath(d)), true
}

// found reports whether the store has a correct object final (a wrong one
// is removed).
func (se *session) found(w *composefs.ContentWorker, final string, d []byte, size int64) (bool, error) {
	ok, err := se.checkObject(final, d, uint64(size), w)
	if ok {
		se.present.Add(1)
	}
	return ok, err
}

// spreadDir returns the fan-out directories in turn, for temporary files
// whose digest (and so directory) is not known yet.
func (se *session) spreadDir() string {
	return filepath.Join(se.s.dir, "objects", hex.EncodeToString([]byte{byte(se.spread.Add(1))}))
}

// writebackMin is the size from which place starts an object's writeback
// at once (sync_file_range): in a Debian tree, the 8% of files of 64 KiB
// or more hold 80% of the bytes; smaller ones are left to the commit's
// syncfs (a syscall each would cost more than it saves).
const writebackMin = 64 << 10

// tempObject is an object being written: an O_TMPFILE inode in the
// object's own directory (nameless, so a killed import leaves nothing
// behind, and new inodes spread over the fan-out directories instead of
// piling into one), or, where the filesystem has no O_TMPFILE, a named file
// in the session directory.
//
// Objects are written through the page cache (large ones' writeback
// started as they are placed) and made durable by the import's one
// syncfs. (Direct I/O was measured: it saves the copy into
// the page cache but waits for the disk on every write, and was slower.)
type tempObject struct {
	fd   int      // -1 once closed
	ro   *os.File // read-only reopening, once fs-verity is enabled
	name string   // "" for an O_TMPFILE
}

func (se *session) createTemp(dir string) (*tempObject, error) {
	if se.s.noTmpfile || se.noTmpfile.Load() {
		return se.createNamedTemp()
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return &tempObject{fd: fd}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("store: temporary file in %s: %w", dir, err)
	}
	se.noTmpfile.Store(true)
	return se.createNamedTemp()
}

func (se *session) createNamedTemp() (*tempObject, error) {
	name := se.tempName()
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	return &tempObject{fd: fd, name: name}, nil
}

// Write makes t an io.Writer (for the image).
func (t *tempObject) Write(p []byte) (int, error) {
	if err := t.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *tempObject) write(p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(t.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// discard drops whatever is left of t (nothing after a successful finish
// but the descriptor).
func (t *tempObject) discard() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
	if t.ro != nil {
		t.ro.Close()
		t.ro = nil
	}
	if t.name != "" {
		os.Remove(t.name)
	}
}

// checkObject reports whether a correct object is at path: a regular file
// of the right size and fs-verity digest (the kernel's, when fs-verity is
// enabled on it, else computed, with w's checker when w is not nil, so
// that w's buffer is left alone). A wrong object, e.g. one cut short by a power failure before the
// import that wrote it finished, is removed so that it gets written again.
func (se *session) checkObject(path string, digest []byte, size uint64, w *composefs.ContentWorker) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err == unix.ENOENT {
		return false, nil
	}
	ok := false
	if err == nil {
		ok, err = se.objectOK(fd, path, digest, size, w)
		unix.Close(fd)
	} else if err == unix.ELOOP {
		err = nil // a symlink is no object
	}
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", path, err)
	}
	if !ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("store: removing corrupt object %s: %w", path, err)
		}
	}
	return ok, nil
}

func (se *session) objectOK(fd int, path string, digest []byte, size uint64, w *composefs.ContentWorker) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Size) != size {
		return false, nil
	}
	if se.verityEnabled() {
		dup, err := unix.Dup(fd)
		if err != nil {
			return false, err
		}
		f := os.NewFile(uintptr(dup), path)
		alg, d, err := verity.MeasureFile(f)
		f.Close()
		if want, _ := composefs.DigestAlgorithm(digest); err == nil && alg == want {
			return bytes.Equal(d, digest), nil
		}
	}
	var cw *composefs.ContentWorker
	alg, _ := composefs.DigestAlgorithm(digest)
	if w != nil && alg == se.alg {
		cw = w.Checker()
	} else {
		var err error
		if cw, err = composefs.NewContentWorker(verity.WithAlgorithm(alg)); err != nil {
			return false, err
		}
	}
	got, err := cw.Digest(fd, path, int64(size))
	if errors.Is(err, composefs.ErrSourceChanged) {
		return false, nil // not the size it had a moment ago: not trusted
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, digest), nil
}

// place makes a completely written temporary object the object final,
// of digest d: mode 0644, fs-verity enabled where the filesystem supports
// it, then linked or renamed to its name without replacing anything. If
// the name is taken (an object from before, or from a concurrent import),
// the object there is checked: kept if correct, and t dropped (objects are
// never rewritten), else removed and replaced by t.
func (se *session) place(w *composefs.ContentWorker, t *tempObject, final string, d []byte, size int64) error {
	if size >= writebackMin {
		// Start writing the object back to disk now, without waiting: the
		// disk works while the import goes on computing, and the commit's
		// syncfs finds little left to flush. Only a hint: its failure
		// changes nothing (syncfs makes the object durable either way).
		unix.SyncFileRange(t.fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	alg, _ := composefs.DigestAlgorithm(d)
	if err := se.seal(t, alg); err != nil {
		return err
	}
	if se.staging {
		return se.stage(t, final, d, size)
	}
	return se.link(w, t, final, d, size)
}

// stage keeps the sealed t in the session directory until publish.
func (se *session) stage(t *tempObject, final string, d []byte, size int64) error {
	name := t.name
	if name == "" {
		name = se.tempName()
		if err := t.link(name); err != nil {
			return fmt.Errorf("store: %s: %w", name, err)
		}
	}
	t.name = "" // no longer t's to remove: the session's (close)
	se.mu.Lock()
	se.staged = append(se.staged, stagedObject{name: name, final: final, digest: d, size: size})
	se.mu.Unlock()
	se.created.Add(1)
	return nil
}

// publish gives every staged object its final name, as place does.
func (se *session) publish() error {
	for _, o := range se.staged {
		if err := se.link(nil, &tempObject{fd: -1, name: o.name}, o.final, o.digest, o.size); err != nil {
			return err
		}
	}
	return nil
}

// link gives the sealed t the name final, or keeps a correct object
// already there (see place).
func (se *session) link(w *composefs.ContentWorker, t *tempObject, final string, d []byte, size int64) error {
	for range 3 {
		err := t.link(final)
		if err == nil {
			se.created.Add(1)
			return nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("store: %s: %w", final, err)
		}
		if ok, err := se.found(w, final, d, size); err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("store: %s: replaced by a wrong object again and again", final)
}

// seal gives t its final mode (O_TMPFILE and O_CREAT apply the umask) and
// enables fs-verity, with the object's algorithm, where the filesystem
// supports it.
func (se *session) seal(t *tempObject, alg verity.Algorithm) error {
	if err := unix.Fchmod(t.fd, 0o644); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !se.verityEnabled() {
		return nil
	}
	// FS_IOC_ENABLE_VERITY wants no writable descriptor: reopen read-only
	// (through /proc for a nameless file) and close the writable one.
	p := t.name
	if p == "" {
		p = "/proc/self/fd/" + strconv.Itoa(t.fd)
	}
	ro, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	unix.Close(t.fd)
	t.fd = -1
	t.ro = ro
	if err := verity.EnableFile(ro, verity.WithAlgorithm(alg)); err != nil && !errors.Is(err, verity.ErrAlreadyEnabled) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// link gives t the name final, failing with EEXIST if it is taken.
func (t *tempObject) link(final string) error {
	if t.name != "" {
		err := unix.Renameat2(unix.AT_FDCWD, t.name, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			// No RENAME_NOREPLACE on this filesystem: link(2) refuses
			// an existing name just the same.
			err = unix.Link(t.name, final)
		}
		return err
	}
	fd := t.fd
	if t.ro != nil {
		fd = int(t.ro.Fd())
	}
	err := unix.Linkat(fd, "", unix.AT_FDCWD, final, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
		// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not.
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}
