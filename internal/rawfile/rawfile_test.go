package rawfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// ReadFile returns what os.ReadFile returns, data and errors alike.
func TestReadFileLikeOS(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 511, 512, 513, 4096, 1 << 20} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: got %d bytes, %v", size, len(got), err)
		}
	}
	// A file whose size stat does not know (procfs).
	got, err := ReadFile("/proc/self/status")
	if err != nil || !bytes.HasPrefix(got, []byte("Name:")) || !bytes.HasSuffix(got, []byte("\n")) {
		t.Fatalf("/proc/self/status: %q, %v", got, err)
	}
	for _, p := range []string{filepath.Join(dir, "missing"), dir, filepath.Join(dir, "f", "x")} {
		_, werr := os.ReadFile(p)
		_, err := ReadFile(p)
		if err == nil || werr == nil || err.Error() != werr.Error() {
			t.Errorf("%s: error %v, os.ReadFile: %v", p, err, werr)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	fd, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("fd flags %#x, %v: want close-on-exec", flags, err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil || err.Error() != "open "+filepath.Join(dir, "missing")+": no such file or directory" {
		t.Fatalf("missing: %v", err)
	}
}

func TestAppender(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	for _, line := range []string{"one\n", "two\n"} {
		a, err := OpenAppend(p, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := a.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(p)
	if string(got) != "one\ntwo\n" || err != nil {
		t.Fatalf("log %q, %v", got, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640&^0o022 && fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if _, err := OpenAppend(filepath.Join(p, "x"), 0o640); err == nil || err.Error() != "open "+filepath.Join(p, "x")+": not a directory" {
		t.Fatalf("log under a file: %v", err)
	}
}
