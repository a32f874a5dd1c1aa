package store

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ErrUnsupportedSource is returned by OpenSource for a recorded source
// this package cannot read (OCI layers: the OCI importer reads those).
var ErrUnsupportedSource = errors.New("source kind not readable here")

// NewTreeSource offers the regular files of the directory tree dir, read
// in parallel. It can also rebuild the tree's composefs image (default
// options).
func NewTreeSource(dir string) ObjectSource {
	return &treeSource{dir: dir, threads: runtime.GOMAXPROCS(0)}
}

type treeSource struct {
	dir     string
	threads int
}

func (t *treeSource) String() string { return "tree " + t.dir }

func (t *treeSource) Files(ctx context.Context, want func(int64) bool, fn func(SourceFile) error) error {
	if fi, err := os.Stat(t.dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", t.dir)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan string, 64)
	var wg sync.WaitGroup
	for range t.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := t.file(p, want, fn); err != nil {
					cancel(err)
				}
			}
		}()
	}
	werr := filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if d.Type().IsRegular() {
			jobs <- p
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return werr
}

func (t *treeSource) file(p string, want func(int64) bool, fn func(SourceFile) error) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || !want(fi.Size()) {
		return nil
	}
	rel, _ := filepath.Rel(t.dir, p)
	return fn(SourceFile{Name: "/" + filepath.ToSlash(rel), Size: fi.Size(), Content: f})
}

// BuildImage writes the composefs image of the tree, as an import with
// default options builds it.
func (t *treeSource) BuildImage(ctx context.Context, w io.Writer) error {
	return t.BuildImageHash(ctx, w, verity.SHA256)
}

// BuildImageHash writes the image as an import --hash alg builds it.
func (t *treeSource) BuildImageHash(ctx context.Context, w io.Writer, alg verity.Algorithm) error {
	tr, err := composefs.BuildTree(t.dir, composefs.WithHash(alg))
	if err != nil {
		return err
	}
	return tr.WriteImage(w)
}

// Decompressor returns the decompressed stream of a tar archive (told
// apart by its first bytes) and a function that releases it. The tools
// pass internal/decompress.Reader; this package does not import it, so
// that the runtime binary does not link the compression packages.
type Decompressor func(*bufio.Reader) (io.Reader, func() error, error)

// NewTarSource offers the regular files of a tar archive, read once from
// start to end, decompressed by decompress (nil: plain tar only).
func NewTarSource(file string, decompress Decompressor) ObjectSource {
	return &tarSource{file: file, decompress: decompress}
}

type tarSource struct {
	file       string
	decompress Decompressor
}

func (t *tarSource) String() string { return "tar " + t.file }

// Files' errors do not name the archive: Repair prefixes the source.
func (t *tarSource) Files(ctx context.Context, want func(int64) bool, fn func(SourceFile) error) error {
	f, err := os.Open(t.file)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if t.decompress != nil {
		dr, done, err := t.decompress(br)
		if err != nil {
			return err
		}
		defer done()
		r = dr
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a readable tar archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || !want(hdr.Size) {
			continue
		}
		name := path.Clean("/" + hdr.Name)
		if err := fn(SourceFile{Name: name, Size: hdr.Size, Content: tr}); err != nil {
			return err
		}
	}
}

// fileSource offers one file whatever its size: an image file an image
// was imported from (SourceImage).
type fileSource string

func (f fileSource) String() string { return "image file " + string(f) }

func (f fileSource) Files(ctx context.Context, want func(int64) bool, fn func(SourceFile) error) error {
	file, err := os.Open(string(f))
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", f)
	}
	return fn(SourceFile{Name: string(f), Size: fi.Size(), Content: file})
}

// OpenSource opens a recorded source (from Store.Provenance) for Repair:
// a tree, or the image file an image was imported from. OCI layers are
// the OCI importer's to read: for them it returns ErrUnsupportedSource.
func OpenSource(src Source) (ObjectSource, error) {
	switch src.Kind {
	case SourceTree:
		fi, err := os.Stat(src.Ref)
		if err != nil {
			return nil, fmt.Errorf("recorded tree: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("recorded tree %s is not a directory any more", src.Ref)
		}
		return NewTreeSource(src.Ref), nil
	case SourceImage:
		return fileSource(src.Ref), nil
	}
	return nil, fmt.Errorf("%s %s: %w", src.Kind, src.Ref, ErrUnsupportedSource)
}
