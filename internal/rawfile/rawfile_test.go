package rawfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// ReadRegular reads regular files within the limit (through a symlink too)
// and refuses everything else at once, without blocking or reading.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	const limit = 4096
	p := filepath.Join(dir, "f")
	for _, size := range []int{0, 1, 511, 512, 513, limit} {
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRegular(p, limit)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: got %d bytes, %v", size, len(got), err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRegular(link, limit); err != nil || len(got) != limit {
		t.Fatalf("symlink to a regular file: %d bytes, %v", len(got), err)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	if err := unix.Bind(sfd, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, limit+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, want string
		is         error
	}{
		{zero, "read " + zero + ": not a regular file: a character device", ErrNotRegular},
		{fifo, "read " + fifo + ": not a regular file: a FIFO", ErrNotRegular},
		{dir, "read " + dir + ": not a regular file: a directory", ErrNotRegular},
		{big, "read " + big + ": file too large: 4097 bytes, more than 4096", ErrTooLarge},
		// procfs reports size 0: the limit holds while reading.
		{"/proc/self/mountinfo", "read /proc/self/mountinfo: file too large: more than 16 bytes", ErrTooLarge},
		{filepath.Join(dir, "missing"), "open " + filepath.Join(dir, "missing") + ": no such file or directory", fs.ErrNotExist},
	} {
		limit := int64(limit)
		if c.path == "/proc/self/mountinfo" {
			limit = 16
		}
		done := make(chan error, 1)
		go func() {
			_, err := ReadRegular(c.path, limit)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || err.Error() != c.want || !errors.Is(err, c.is) {
				t.Errorf("%s: %v, want %q (%v)", c.path, err, c.want, c.is)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: ReadRegular blocked", c.path) // a FIFO without a writer
		}
	}
	// A socket cannot be opened at all.
	if _, err := ReadRegular(sock, limit); err == nil || err.Error() != "open "+sock+": no such device or address" {
		t.Errorf("socket: %v", err)
	}
}

// ReadFull stops at a short read (a regular file's end, or what a pipe has
// so far); PreadFull reads on from its offset until p is full or the end.
func TestReadFull(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16)
	for _, c := range []struct {
		name string
		read func() (int, error)
		want string
	}{
		{"ReadFull 4", func() (int, error) { return ReadFull(fd, buf[:4]) }, "0123"},
		{"ReadFull to the end", func() (int, error) { return ReadFull(fd, buf) }, "456789"},
		{"ReadFull at the end", func() (int, error) { return ReadFull(fd, buf) }, ""},
		{"PreadFull 3 at 7", func() (int, error) { return PreadFull(fd, buf[:3], 7) }, "789"},
		{"PreadFull to the end", func() (int, error) { return PreadFull(fd, buf, 2) }, "23456789"},
	} {
		n, err := c.read()
		if err != nil || string(buf[:n]) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, buf[:n], err, c.want)
		}
	}
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	if _, err := unix.Write(pipe[1], []byte("ab")); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadFull(pipe[0], buf); err != nil || string(buf[:n]) != "ab" {
		t.Errorf("pipe: %q, %v; want \"ab\" without waiting for more", buf[:n], err)
	}
	if _, err := PreadFull(pipe[0], buf, 0); err != unix.ESPIPE {
		t.Errorf("PreadFull of a pipe: %v, want ESPIPE", err)
	}
}
