package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

func verityHex(t *testing.T, b []byte) string {
	t.Helper()
	h, err := verity.NewHasher()
	if err != nil {
		t.Fatal(err)
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum())
}

func TestStreamImport(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	small := []byte(strings.Repeat("small file ", 20))
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // more than one buffer
	si, err := s.BeginStream()
	if err != nil {
		t.Fatal(err)
	}
	defer si.Close()
	for _, b := range [][]byte{small, big, small, big} {
		// One byte per read: PutObject must not depend on read sizes.
		d, err := si.PutObject(iotest.OneByteReader(bytes.NewReader(b)), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		want := verityHex(t, b)
		if hex.EncodeToString(d) != want || !s.HasObject(want, uint64(len(b))) {
			t.Fatalf("digest %x, want %s; in store: %v", d, want, s.HasObject(want, uint64(len(b))))
		}
		p, _ := s.ObjectPath(want)
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("object content: %v", err)
		}
	}
	if st := si.Stats(); st.Created != 2 {
		t.Errorf("stats %+v, want 2 objects created (duplicates are stored once)", st)
	}
	if s.HasObject(verityHex(t, small), 1) {
		t.Error("HasObject with the wrong size")
	}
	// Too short, too long: refused, nothing named.
	for _, c := range []struct {
		data []byte
		size int64
	}{{small[:10], 20}, {big[:1000], int64(len(big))}, {big, int64(len(big) - 1)}} {
		if _, err := si.PutObject(bytes.NewReader(c.data), c.size); !errors.Is(err, ErrShortStream) {
			t.Errorf("%d bytes for %d: %v", len(c.data), c.size, err)
		}
	}
	d, err := si.WriteImage(func(w io.Writer) error { _, err := w.Write([]byte("not an image")); return err })
	if err != nil || s.HasImage(id(t, d)) {
		t.Fatalf("write image: %s, %v; visible before commit: %v", d, err, s.HasImage(id(t, d)))
	}
	if err := si.Commit(d); err != nil || !s.HasImage(id(t, d)) {
		t.Fatalf("commit: %v", err)
	}
}

// TestStreamImportFork: forks put objects into one session from several
// goroutines at once (an import reading layers at once), asking for
// background flushes as they go; content two of them carry is stored
// once, and the parent's Commit covers them all.
func TestStreamImportFork(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.BeginStream()
	if err != nil {
		t.Fatal(err)
	}
	defer si.Close()
	shared := bytes.Repeat([]byte("shared by every fork "), 20000) // bigger than a buffer
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for f := range 4 {
		fork, err := si.Fork()
		if err != nil {
			t.Fatal(err)
		}
		own := bytes.Repeat([]byte{byte('a' + f)}, 300)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer fork.Close() // does nothing: the session is si's
			for _, b := range [][]byte{shared, own, shared} {
				d, err := fork.PutObject(bytes.NewReader(b), int64(len(b)))
				if err == nil && hex.EncodeToString(d) != verityHex(t, b) {
					err = errors.New("wrong digest " + hex.EncodeToString(d))
				}
				if err != nil {
					errs <- err
					return
				}
				fork.Flush() // a background syncfs while the others write
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := si.Stats(); st.Created != 5 {
		t.Errorf("stats %+v, want 5 objects created (the shared one once, one per fork)", st)
	}
	d, err := si.WriteImage(func(w io.Writer) error { _, err := w.Write([]byte("not an image")); return err })
	if err != nil {
		t.Fatal(err)
	}
	if err := si.Commit(d); err != nil || !s.HasImage(id(t, d)) {
		t.Fatalf("commit after the forks: %v", err)
	}
	if !s.HasObject(verityHex(t, shared), uint64(len(shared))) {
		t.Error("the shared object is not in the store")
	}
}
