package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// archiveSource reads the files of an oci-archive (an OCI layout in an
// uncompressed tar file, as skopeo writes it) in place: the archive is
// scanned once for where each member's data starts, and members are then
// read as sections of the file. Nothing is extracted.
type archiveSource struct {
	f       *os.File
	members map[string]section
}

type section struct{ off, size int64 }

// posReader tracks the offset of the underlying file through the reads and
// seeks archive/tar makes (it reads headers exactly, and seeks over data).
type posReader struct {
	f   *os.File
	pos int64
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.pos += int64(n)
	return n, err
}

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

func openArchive(file string) (*archiveSource, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		f.Close()
		return nil, fmt.Errorf("%w: %s is gzip-compressed; an oci-archive is a plain tar file (gunzip it first)", ErrUnsupported, file)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	a := &archiveSource{f: f, members: map[string]section{}}
	pr := &posReader{f: f}
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: not a tar archive: %w", ErrInvalidLayout, file, err)
		}
		if !h.FileInfo().Mode().IsRegular() {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		a.members[strings.TrimPrefix(name, "/")] = section{off: pr.pos, size: h.Size}
	}
	return a, nil
}

func (a *archiveSource) open(name string) (io.ReadCloser, error) {
	s, ok := a.members[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(a.f, s.off, s.size)), nil
}

func (a *archiveSource) close() error {
	err := a.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
