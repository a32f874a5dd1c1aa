package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ErrShortStream is returned (wrapped) by StreamImport.PutObject when the
// reader ends before the announced size or has more bytes than it.
var ErrShortStream = errors.New("stream does not have the announced size")

// StreamImport is an import whose file contents arrive as streams (an OCI
// layer's tar entries) rather than as files of a tree. It is the same
// import session as ImportTree's: the shared store lock is held from
// BeginStream to Close (gc waits), every object is written to a temporary
// file, checked against the digest computed from the bytes written and
// linked into place without replacing anything, and nothing under a final
// name is ever incomplete. WriteImage stores the image; Commit makes
// everything durable and links it. A StreamImport is used by one
// goroutine; Fork gives another goroutine its own.
type StreamImport struct {
	se   *session
	done func()
	w    *composefs.ContentWorker
}

// StreamStats counts the objects a StreamImport handled: written by it, or
// found correct in the store.
type StreamStats struct {
	Created, Present int64
}

// BeginStream starts a streaming import. Close must be called.
func (s *Store) BeginStream() (*StreamImport, error) {
	se, done, err := s.beginImport()
	if err != nil {
		return nil, err
	}
	w, err := composefs.NewContentWorker(verity.WithAlgorithm(s.hash))
	if err != nil {
		done()
		return nil, err
	}
	return &StreamImport{se: se, done: done, w: w}, nil
}

// Fork returns a StreamImport of the same import session for another
// goroutine (with a content worker of its own), to put objects while si
// does: several layers are read at once. Close and Commit belong to si;
// the fork's Close does nothing, and every fork must be done putting
// objects before si commits or closes.
func (si *StreamImport) Fork() (*StreamImport, error) {
	w, err := composefs.NewContentWorker(verity.WithAlgorithm(si.se.alg))
	if err != nil {
		return nil, err
	}
	return &StreamImport{se: si.se, w: w}, nil
}

// Close ends the import (removing its temporary files) and releases the
// store lock. Objects already placed stay; an image not committed does
// not appear.
func (si *StreamImport) Close() {
	if si.done != nil {
		si.done()
		si.done = nil
	}
}

// Stats returns the object counts so far.
func (si *StreamImport) Stats() StreamStats {
	return StreamStats{Created: si.se.created.Load(), Present: si.se.present.Load()}
}

// PutObject stores the next size bytes of r as an object and returns its
// fs-verity digest. The digest is computed from the bytes written into the
// object, so the object's name always matches its content. r must hold
// exactly size bytes (ErrShortStream otherwise). Content already stored by
// this import, or found correct in the store, is only hashed.
func (si *StreamImport) PutObject(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("store: %w: size %d", ErrShortStream, size)
	}
	se, w, buf := si.se, si.w, si.w.Buffer()
	if size <= int64(len(buf)) {
		p := buf[:size]
		if err := readExact(r, p); err != nil {
			return nil, err
		}
		if err := expectEOF(r); err != nil {
			return nil, err
		}
		return se.storeBuffer(w, p, "stream")
	}
	// Big: one pass, hashing what is written to a temporary file in one
	// of the fan-out directories; named once the digest is known.
	t, err := se.createTemp(se.spreadDir())
	if err != nil {
		return nil, err
	}
	defer t.discard()
	w.Reset()
	for remaining := size; remaining > 0; {
		p := buf[:min(remaining, int64(len(buf)))]
		if err := readExact(r, p); err != nil {
			return nil, err
		}
		w.Hash(p)
		if err := t.write(p); err != nil {
			return nil, fmt.Errorf("store: writing object: %w", err)
		}
		remaining -= int64(len(p))
	}
	if err := expectEOF(r); err != nil {
		return nil, err
	}
	d := w.Sum()
	final, first := se.claim(d)
	if !first {
		return d, nil
	}
	return d, se.place(w, t, final, d, size)
}

// storeBuffer stores the content p (of a file named name in messages),
// which fits in a worker's buffer: hash it, and unless this import or the
// store has it already, write it to a temporary file in the object's own
// directory and name it. (storeWhole, for a file read into w's buffer, is the
// same after its read.)
func (se *session) storeBuffer(w *composefs.ContentWorker, p []byte, name string) ([]byte, error) {
	w.Reset()
	w.Hash(p)
	d := w.Sum()
	final, first := se.claim(d)
	if !first {
		return d, nil
	}
	size := int64(len(p))
	if se.mostlyPresent() {
		if ok, err := se.found(w, final, d, size); err != nil || ok {
			return d, err
		}
	}
	t, err := se.createTemp(filepath.Dir(final))
	if err != nil {
		return nil, err
	}
	defer t.discard()
	if err := t.write(p); err != nil {
		return nil, fmt.Errorf("store: writing the object of %s: %w", name, err)
	}
	return d, se.place(w, t, final, d, size)
}

// readExact fills p from r; running out early is ErrShortStream.
func readExact(r io.Reader, p []byte) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("store: %w: ended early", ErrShortStream)
		}
		return fmt.Errorf("store: reading stream: %w", err)
	}
	return nil
}

// expectEOF checks that r has nothing left.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return fmt.Errorf("store: %w: more bytes than announced", ErrShortStream)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("store: reading stream: %w", err)
	}
	return nil
}

// WriteImage stores the image that write writes as an object and returns
// its digest (hex). The image is not visible (images/DIGEST) before
// Commit.
func (si *StreamImport) WriteImage(write func(io.Writer) error) (string, error) {
	return si.se.writeImage(write)
}

// Flush starts writing what the import wrote so far back to disk, in the
// background (e.g. after each layer): the commit's syncfs then has less to
// wait for. Durability still comes from Commit alone.
func (si *StreamImport) Flush() { si.se.startFlush() }

// Commit makes everything written by this import durable (one syncfs) and
// links images/DIGEST to the image WriteImage stored: the commit point.
func (si *StreamImport) Commit(digest string) error {
	return si.se.commit(digest)
}

// HasObject reports whether the store has an object of that digest (hex)
// and size: a regular file under its name. The content is not read
// (fsck checks content); this is the cheap test whether something still
// needs the object's source, e.g. after gc.
func (s *Store) HasObject(digest string, size uint64) bool {
	p, err := s.ObjectPath(digest)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular() && uint64(fi.Size()) == size
}
