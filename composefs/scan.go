package composefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

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
// the inline bytes.
func BuildTree(dir string, opts ...Option) (*Tree, error) {
	o := newOptions(opts)
	if o.skipXattrs && o.userXattrs {
		return nil, fmt.Errorf("%w: skip-xattrs and user-xattrs", ErrConflictingOptions)
	}
	s := &scanner{o: o, jobs: make(chan digestJob, 256)}
	for range o.threads {
		s.wg.Add(1)
		go s.digestWorker()
	}
	root, err := s.node(dir, "")
	if err == nil && root.Type() != ModeDir {
		err = fmt.Errorf("%s: %w", dir, unix.ENOTDIR)
	}
	if err == nil {
		err = s.scanDir(root, dir)
	}
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

type digestJob struct {
	n    *Node
	path string
}

type scanner struct {
	o    options
	jobs chan digestJob
	wg   sync.WaitGroup

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

func (s *scanner) digestWorker() {
	defer s.wg.Done()
	for j := range s.jobs {
		if s.firstErr() != nil {
			continue // drain
		}
		d, err := verity.DigestFile(j.path)
		if err != nil {
			s.setErr(fmt.Errorf("computing digest: %w", err))
			continue
		}
		j.n.Digest = d
		j.n.Payload = ObjectPath(d)
	}
}

func (s *scanner) scanDir(dirNode *Node, dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", dir, err)
	}
	slices.Sort(names) // bytewise, the order EROFS needs
	dirNode.Children = make([]*Node, 0, len(names))
	for _, name := range names {
		if err := s.firstErr(); err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		n, err := s.node(p, name)
		if err != nil {
			return err
		}
		if n == nil {
			continue // skipped device
		}
		if err := checkName(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n.Parent = dirNode
		dirNode.Children = append(dirNode.Children, n)
		if n.Type() == ModeDir {
			if err := s.scanDir(n, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// node reads the metadata of one entry; nil means "skip it".
func (s *scanner) node(p, name string) (*Node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("lstat %s: %w", p, err)
	}
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
	switch n.Type() {
	case ModeBlock, ModeChar:
		if s.o.skipDevices && name != "" {
			return nil, nil
		}
	case ModeRegular:
		switch {
		case n.Size == 0:
		case n.Size <= MaxInlineFromDir:
			c, err := readSmall(p, int(n.Size))
			if err != nil {
				return nil, err
			}
			n.Content = c
		default:
			s.jobs <- digestJob{n: n, path: p}
		}
	case ModeSymlink:
		t, err := readlink(p)
		if err != nil {
			return nil, err
		}
		n.Payload = t
		n.Size = uint64(len(t))
	}
	if !s.o.skipXattrs {
		xs, err := readXattrs(p, s.o.userXattrs)
		if err != nil {
			return nil, err
		}
		n.Xattrs = xs
	}
	return n, nil
}

func readSmall(p string, size int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("reading %s: %w (file changed during the scan?)", p, err)
	}
	return b, nil
}

func readlink(p string) (string, error) {
	buf := make([]byte, MaxSymlinkLen+2)
	k, err := unix.Readlink(p, buf)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", p, err)
	}
	if k > MaxSymlinkLen {
		return "", fmt.Errorf("%w: symlink %s: target longer than %d bytes", ErrInvalidTree, p, MaxSymlinkLen)
	}
	if k == 0 {
		return "", fmt.Errorf("%w: symlink %s: empty target", ErrInvalidTree, p)
	}
	return string(buf[:k]), nil
}

func readXattrs(p string, userOnly bool) ([]Xattr, error) {
	var names []byte
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		k, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<24 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr %s: %w", p, err)
		}
		names = buf[:k]
		break
	}
	var xs []Xattr
	for len(names) > 0 {
		i := strings.IndexByte(string(names), 0)
		if i < 0 {
			i = len(names)
		}
		name := string(names[:i])
		names = names[min(i+1, len(names)):]
		if name == "" || (userOnly && !strings.HasPrefix(name, "user.")) {
			continue
		}
		v, err := getXattr(p, name)
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

func getXattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		k, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		return bytes.Clone(buf[:k]), nil
	}
}
