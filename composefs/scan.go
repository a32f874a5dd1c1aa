package composefs

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ErrConflictingOptions is returned when options that exclude each other
// are combined.
var ErrConflictingOptions = errors.New("conflicting options")

// BuildTree scans the directory dir the way mkcomposefs does: lstat of
// every entry (the root directory's own metadata included), xattrs in
// listxattr order, symlink targets, regular files of 1..64 bytes inlined and
// bigger ones referenced by their fs-verity digest (payload "XX/YYYY...").
// Hardlinks are not detected: every name becomes its own inode, as in
// mkcomposefs 1.0.8.
//
// The digests are computed by a pool of WithThreads (default GOMAXPROCS)
// workers while the scan goes on; no file content is kept in memory except
// the inline bytes. A file whose size changes while it is read is an error
// matching ErrSourceChanged: its image entry would not match its content.
func BuildTree(dir string, opts ...Option) (*Tree, error) {
	return BuildTreeWith(dir, (*ContentWorker).Digest, opts...)
}

// BuildTreeWith is BuildTree with content reading every regular file of
// more than MaxInlineFromDir bytes, on the scan's WithThreads workers.
func BuildTreeWith(dir string, content ContentFunc, opts ...Option) (*Tree, error) {
	return buildTree(dir, newOptions(opts), content)
}

// ErrSourceChanged is returned when a file changed while it was read: its
// size no longer matches what lstat said, or a second read gave another
// digest. Its image entry would not match its content.
var ErrSourceChanged = errors.New("file changed while being read")

// ContentFunc reads the content of one external regular file (size bytes
// according to the scan's lstat, open as fd) with the worker's buffer and
// hasher and returns its fs-verity digest. BuildTree's only hashes
// (ContentWorker.Digest); an import's also stores the bytes it hashed
// (package composefs/store), so that each file is read once.
type ContentFunc func(w *ContentWorker, fd int, path string, size int64) ([]byte, error)

// Buffer sizes. A worker reads a file in chunks of workerBuf: big enough
// that a chunk is hashed with few syscalls and, at the end of a scan, split
// over the idle cores; small enough to stay in the L2 cache between the
// read, the hashing and (import) the write.
const (
	workerBuf   = 256 << 10
	listxattrSz = 64 << 10 // XATTR_LIST_MAX
)

// buildTree is BuildTreeWith with the options parsed.
func buildTree(dir string, o options, content ContentFunc) (*Tree, error) {
	if o.skipXattrs && o.userXattrs {
		return nil, fmt.Errorf("%w: skip-xattrs and user-xattrs", ErrConflictingOptions)
	}
	s := &scanner{o: o, content: content, jobs: make(chan scanJob, 512)}
	s.names = make([]byte, listxattrSz)
	s.link = make([]byte, MaxSymlinkLen+2)
	s.dirent = make([]byte, 32<<10)
	for range o.threads {
		s.wg.Add(1)
		go s.work()
	}
	root, err := s.root(dir)
	if err == nil {
		err = s.scanDir(root, dir, true)
	}
	s.scanned.Store(true)
	close(s.jobs)
	s.wg.Wait()
	if err == nil {
		err = s.firstErr()
	}
	if err != nil {
		return nil, err
	}
	return &Tree{Root: root, SourceDir: dir}, nil
}

// scanJob is an external regular file for the content workers.
type scanJob struct {
	n    *Node
	path string
}

// scanner walks the tree on one goroutine (the per-entry syscalls are
// cheap and must happen in order) and hands the regular files to the
// content workers. Directories are read relative to their descriptor, so
// that the kernel does not walk every entry's full path.
type scanner struct {
	o       options
	content ContentFunc
	jobs    chan scanJob
	wg      sync.WaitGroup
	scanned atomic.Bool // every job is queued
	noatime atomic.Bool // O_NOATIME refused (not the owner, no CAP_FOWNER)

	// Buffers of the scanning goroutine.
	names, link, dirent []byte

	mu  sync.Mutex
	err error
}

func (s *scanner) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *scanner) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// ContentWorker is one content worker of a scan (or of an import outside
// one), with its own reusable hasher and buffer: no allocation per file.
// A ContentWorker is used by one goroutine at a time.
type ContentWorker struct {
	s     *scanner
	h     *verity.Hasher
	buf   []byte
	names []byte         // listxattr
	check *ContentWorker // for reading objects while buf holds a file
}

// NewContentWorker returns a worker outside any scan, e.g. for content
// that arrives as a stream. It hashes big chunks on every core, with the
// fs-verity parameters opts (default SHA-256, 4096-byte blocks).
func NewContentWorker(opts ...verity.Option) (*ContentWorker, error) {
	h, err := verity.NewHasher(opts...)
	if err != nil {
		return nil, err
	}
	return &ContentWorker{h: h, buf: make([]byte, workerBuf)}, nil
}

// Checker returns a worker sharing w's hasher but not its buffer: the
// store checks an existing object with it while w's buffer still holds
// the file that may have to be written.
func (w *ContentWorker) Checker() *ContentWorker {
	if w.check == nil {
		w.check = &ContentWorker{s: w.s, h: w.h, buf: make([]byte, len(w.buf))}
	}
	return w.check
}

// Buffer returns the worker's buffer, which ReadChunk reads into: a file
// smaller than it is read in one chunk.
func (w *ContentWorker) Buffer() []byte { return w.buf }

// Reset starts a new digest in the worker's hasher.
func (w *ContentWorker) Reset() { w.h.Reset() }

// Sum returns the fs-verity digest of what was hashed since Reset.
func (w *ContentWorker) Sum() []byte { return w.h.Sum() }

func (s *scanner) work() {
	defer s.wg.Done()
	h, err := verity.NewHasher(verity.WithAlgorithm(s.o.hash))
	if err != nil {
		s.setErr(err)
		for range s.jobs {
		}
		return
	}
	w := &ContentWorker{s: s, h: h, buf: make([]byte, workerBuf), names: make([]byte, listxattrSz)}
	for j := range s.jobs {
		if s.firstErr() != nil {
			continue // drain
		}
		if err := w.file(j); err != nil {
			s.setErr(err)
		}
	}
}

func (w *ContentWorker) file(j scanJob) error {
	fd, err := w.s.open(unix.AT_FDCWD, j.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", j.path, err)
	}
	defer unix.Close(fd)
	if !w.s.o.skipXattrs {
		xs, err := readXattrs(fd, "", j.path, w.s.o.userXattrs, w.names)
		if err != nil {
			return err
		}
		j.n.Xattrs = xs
	}
	d, err := w.s.content(w, fd, j.path, int64(j.n.Size))
	if err != nil {
		return err
	}
	j.n.Digest = d
	j.n.Payload = ObjectPath(d)
	return nil
}

// spareCores is how many goroutines may hash one large chunk: 1 while
// the scan keeps every worker busy, all cores once the queue has run dry
// (the last, biggest files would otherwise be hashed on one core).
func (w *ContentWorker) spareCores() int {
	if w.s == nil || w.s.scanned.Load() && len(w.s.jobs) == 0 {
		return 0 // GOMAXPROCS
	}
	return 1
}

// Hash adds p to the worker's hasher.
func (w *ContentWorker) Hash(p []byte) {
	if len(p) >= 64<<10 {
		w.h.SetConcurrency(w.spareCores())
	}
	w.h.Write(p)
}

// ReadChunk reads the next chunk of a file of which remaining bytes are
// still expected, into the worker's buffer. It asks for one byte more than
// remaining when that fits, so that a file that grew is noticed without an
// extra read at the end (ErrSourceChanged); a short read of a regular file
// means its end.
func (w *ContentWorker) ReadChunk(fd int, path string, remaining int64) (p []byte, eof bool, err error) {
	want := int(min(int64(len(w.buf)), remaining+1))
	n, err := rawfile.ReadFull(fd, w.buf[:want])
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(n) > remaining {
		return nil, false, fmt.Errorf("%w: %s grew beyond its size of %d bytes", ErrSourceChanged, path, remaining)
	}
	return w.buf[:n], n < want, nil
}

// Digest hashes a file of size bytes, open as fd at its start, and returns
// its fs-verity digest: the ContentFunc of BuildTree.
func (w *ContentWorker) Digest(fd int, path string, size int64) ([]byte, error) {
	w.h.Reset()
	remaining := size
	for {
		p, eof, err := w.ReadChunk(fd, path, remaining)
		if err != nil {
			return nil, err
		}
		w.Hash(p)
		remaining -= int64(len(p))
		if eof {
			break
		}
	}
	if remaining != 0 {
		return nil, SizeChanged(path, size, size-remaining)
	}
	return w.h.Sum(), nil
}

// SizeChanged returns the error, matching ErrSourceChanged, for a file of
// size bytes of which only read bytes could be read.
func SizeChanged(path string, size, read int64) error {
	return fmt.Errorf("%w: %s: read %d bytes, its size was %d", ErrSourceChanged, path, read, size)
}

// open opens a regular file for reading without following a symlink
// (the entry was lstat'ed as a regular file) and without touching its
// atime where allowed, so that scanning a tree does not dirty its inodes.
func (s *scanner) open(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY
	for {
		var fd int
		var err error
		if s.noatime.Load() {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		} else {
			fd, err = unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
			if err == unix.EPERM {
				s.noatime.Store(true)
				fd, err = unix.Openat(dirfd, name, flags, 0)
			}
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// root reads the metadata of the scanned directory itself.
func (s *scanner) root(dir string) (*Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, fmt.Errorf("lstat %s: %w", dir, err)
	}
	n := s.newNode("", &st)
	if n.Type() != ModeDir {
		return nil, fmt.Errorf("%s: %w", dir, unix.ENOTDIR)
	}
	return n, nil
}

func (s *scanner) newNode(name string, st *unix.Stat_t) *Node {
	n := &Node{
		Name:  name,
		Mode:  st.Mode,
		Nlink: 1, // like mkcomposefs: non-directory link counts are not read
		UID:   st.Uid,
		GID:   st.Gid,
		Rdev:  st.Rdev,
		Size:  uint64(st.Size),
	}
	if !s.o.useEpoch {
		n.MtimeSec, n.MtimeNsec = st.Mtim.Sec, uint32(st.Mtim.Nsec)
	}
	return n
}

// scanDir reads the directory dirNode (at path dir): its own xattrs, then
// every entry, then the subdirectories. Only one directory is open at a
// time, however deep the tree.
func (s *scanner) scanDir(dirNode *Node, dir string, root bool) error {
	fd, err := openDir(dir, root)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	subdirs, err := s.readDir(fd, dirNode, dir)
	unix.Close(fd)
	if err != nil {
		return err
	}
	for _, c := range subdirs {
		if err := s.scanDir(c, joinPath(dir, c.Name), false); err != nil {
			return err
		}
	}
	return nil
}

// joinPath is filepath.Join for a directory path and a plain name, without
// the cleaning (which costs more than the rest of the path building).
func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// openDir opens a directory the scan found with lstat, so not through a
// symlink, except for the root, which may be given as "symlink/".
func openDir(path string, root bool) (int, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if !root {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readDir fills dirNode from the open directory fd and returns the child
// directories.
func (s *scanner) readDir(fd int, dirNode *Node, dir string) ([]*Node, error) {
	if !s.o.skipXattrs {
		xs, err := readXattrs(fd, "", dir, s.o.userXattrs, s.names)
		if err != nil {
			return nil, err
		}
		dirNode.Xattrs = xs
	}
	names, err := s.readNames(fd, dir)
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // bytewise, the order EROFS needs
	dirNode.Children = make([]*Node, 0, len(names))
	var subdirs []*Node
	for _, name := range names {
		if err := s.firstErr(); err != nil {
			return nil, err
		}
		p := joinPath(dir, name)
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		n, err := s.entry(fd, name, p)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue // skipped device
		}
		n.Parent = dirNode
		dirNode.Children = append(dirNode.Children, n)
		if n.Type() == ModeDir {
			subdirs = append(subdirs, n)
		}
	}
	return subdirs, nil
}

// readNames lists a directory (without "." and "..").
func (s *scanner) readNames(fd int, dir string) ([]string, error) {
	var names []string
	for {
		k, err := unix.Getdents(fd, s.dirent)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading directory %s: %w", dir, err)
		}
		if k <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(s.dirent[:k], -1, names)
	}
}

// entry reads the metadata of the entry name of the directory dirfd (at
// path p); nil means "skip it". Directories get their xattrs when they are
// scanned, external regular files from a content worker.
func (s *scanner) entry(dirfd int, name, p string) (*Node, error) {
	var st unix.Stat_t
	if err := fstatat(dirfd, name, &st); err != nil {
		return nil, fmt.Errorf("lstat %s: %w", p, err)
	}
	n := s.newNode(name, &st)
	switch n.Type() {
	case ModeDir:
		return n, nil
	case ModeBlock, ModeChar:
		if s.o.skipDevices {
			return nil, nil
		}
	case ModeRegular:
		switch {
		case n.Size == 0:
		case n.Size <= MaxInlineFromDir:
			return n, s.readSmall(dirfd, name, p, n)
		default:
			s.jobs <- scanJob{n: n, path: p}
			return n, nil
		}
	case ModeSymlink:
		t, err := s.readlink(dirfd, name, p)
		if err != nil {
			return nil, err
		}
		n.Payload = t
		n.Size = uint64(len(t))
	}
	if !s.o.skipXattrs {
		xs, err := readXattrs(-1, p, p, s.o.userXattrs, s.names)
		if err != nil {
			return nil, err
		}
		n.Xattrs = xs
	}
	return n, nil
}

func fstatat(dirfd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// readSmall reads the content (and xattrs) of a file small enough to be
// inline.
func (s *scanner) readSmall(dirfd int, name, p string, n *Node) error {
	fd, err := s.open(dirfd, name)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	var buf [MaxInlineFromDir + 1]byte
	k, err := rawfile.ReadFull(fd, buf[:n.Size+1])
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if uint64(k) != n.Size {
		return SizeChanged(p, int64(n.Size), int64(k))
	}
	n.Content = bytes.Clone(buf[:k])
	if !s.o.skipXattrs {
		xs, err := readXattrs(fd, "", p, s.o.userXattrs, s.names)
		if err != nil {
			return err
		}
		n.Xattrs = xs
	}
	return nil
}

func (s *scanner) readlink(dirfd int, name, p string) (string, error) {
	k, err := unix.Readlinkat(dirfd, name, s.link)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", p, err)
	}
	if k > MaxSymlinkLen {
		return "", fmt.Errorf("%w: symlink %s: target longer than %d bytes", ErrInvalidTree, p, MaxSymlinkLen)
	}
	if k == 0 {
		return "", fmt.Errorf("%w: symlink %s: empty target", ErrInvalidTree, p)
	}
	return string(s.link[:k]), nil
}

// readXattrs returns the xattrs of the open file fd, or with fd < 0 of the
// path lpath (not following a symlink), in listxattr order. p names the
// file in errors; names is a buffer of listxattrSz bytes.
func readXattrs(fd int, lpath, p string, userOnly bool, names []byte) ([]Xattr, error) {
	var k int
	var err error
	for {
		if fd >= 0 {
			k, err = unix.Flistxattr(fd, names)
		} else {
			k, err = unix.Llistxattr(lpath, names)
		}
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	list := names[:k]
	var xs []Xattr
	for len(list) > 0 {
		i := bytes.IndexByte(list, 0)
		if i < 0 {
			i = len(list)
		}
		raw := list[:i]
		list = list[min(i+1, len(list)):]
		if len(raw) == 0 || (userOnly && !bytes.HasPrefix(raw, []byte("user."))) {
			continue
		}
		name := string(raw)
		v, err := getXattr(fd, lpath, p, name)
		if err != nil {
			return nil, err
		}
		if len(name) > MaxXattrNameLen || len(v) > MaxXattrValueLen {
			return nil, fmt.Errorf("%w: %s: xattr %s too large", ErrInvalidTree, p, name)
		}
		xs = append(xs, Xattr{Name: name, Value: v})
	}
	return xs, nil
}

func getXattr(fd int, lpath, p, name string) ([]byte, error) {
	size := 256
	for {
		buf := make([]byte, size)
		var k int
		var err error
		if fd >= 0 {
			k, err = unix.Fgetxattr(fd, name, buf)
		} else {
			k, err = unix.Lgetxattr(lpath, name, buf)
		}
		switch {
		case err == nil:
			return buf[:k:k], nil
		case err == unix.EINTR:
		case err == unix.ERANGE && size < 1<<20:
			size *= 4
		default:
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
	}
}
