// Package rawfile reads whole files, fills buffers from descriptors and
// appends to logs with plain system calls.
//
// cfs-runtime runs in front of every runtime call, and the first os.File a
// Go process opens starts runtime machinery that such a short-lived
// process never needs: the network poller (an epoll instance and an
// eventfd), the finalizer goroutine (and with it another thread), and a
// non-blocking mode set and reset on each file. On the pass-through path
// that is about a tenth of a millisecond. ReadFile does what os.ReadFile
// does without them, with os.ReadFile's errors; Appender is the file a log
// is appended to.
package rawfile

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular means ReadRegular was given a directory, device, FIFO
	// or socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge means the file holds more than ReadRegular's limit.
	ErrTooLarge = errors.New("file too large")
)

// ReadFile reads the named file. Errors are *fs.PathError as from
// os.ReadFile (errors.Is(err, fs.ErrNotExist) works).
func ReadFile(name string) ([]byte, error) {
	fd, err := openRetry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size > 0 && st.Size < 1<<30 {
		// One byte more than the size: a regular file reads short only
		// at its end, so one read sees the whole file and its end (the
		// front reads the configuration on every runtime call, and a
		// system call costs it microseconds).
		data := make([]byte, st.Size+1)
		n, err := ReadFull(fd, data)
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if n <= int(st.Size) {
			return data[:n], nil
		}
		return readAllFrom(fd, name, data[:n], -1) // it grew
	}
	return readAll(fd, name, 512, -1)
}

// readAll reads fd to its end into a buffer of initial capacity size; with
// limit >= 0, ErrTooLarge after limit bytes (having read one more).
func readAll(fd int, name string, size int, limit int64) ([]byte, error) {
	return readAllFrom(fd, name, make([]byte, 0, size), limit)
}

// readAllFrom is readAll after data, what was read before.
func readAllFrom(fd int, name string, data []byte, limit int64) ([]byte, error) {
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		end := cap(data)
		if limit >= 0 && int64(end) > limit+1 {
			end = int(limit + 1)
		}
		if len(data) == end {
			return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
		}
		n, err := unix.Read(fd, data[len(data):end])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
	}
}

// ReadRegular reads the named file if it is a regular file of at most limit
// bytes, for a file that someone else controls (a bundle's config.json):
// a symlink to /dev/zero, a FIFO or a device must neither be read without
// end nor block. Symlinks are followed, as os.Open follows them; the check
// is fstat on the opened descriptor, so the file read is the file checked.
// O_NONBLOCK makes opening a FIFO without a writer return at once (and a
// regular file that would block a read, such as /proc/kmsg, fail); O_NOCTTY
// keeps a terminal from becoming ours. At most limit+1 bytes are read, also
// when the size fstat reports is wrong (procfs says 0) or the file grows.
// Errors are *fs.PathError; ErrNotRegular and ErrTooLarge are in their
// chain.
func ReadRegular(name string, limit int64) ([]byte, error) {
	fd, err := openFlags(name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: %s", ErrNotRegular, fileKind(st.Mode))}
	}
	if st.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, st.Size, limit)}
	}
	return readAll(fd, name, int(max(st.Size+1, 512)), limit) // one more, to see the end in one read
}

// fileKind names a file type that is not a regular file.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}

// Open opens name read-only and close-on-exec, for callers that only need
// a file descriptor (a lock, an fstat). Errors are *fs.PathError.
func Open(name string) (int, error) {
	fd, err := openRetry(name)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

func openRetry(name string) (int, error) {
	return openFlags(name, unix.O_RDONLY|unix.O_CLOEXEC)
}

func openFlags(name string, flags int) (int, error) {
	for {
		fd, err := unix.Open(name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// ReadFull reads from fd into p until p is full, the file ends or a read
// returns less than asked (a regular file reads short only at its end), and
// returns how many bytes it read. Reaching the end is not an error.
func ReadFull(fd int, p []byte) (int, error) {
	return fill(p, true, func(b []byte, _ int) (int, error) { return unix.Read(fd, b) })
}

// PreadFull reads into p from offset off until p is full, the file ends
// or a read fails, and returns how many bytes it read. (A read of a file
// with fs-verity stops short before a block that fails its check; the next
// one fails with EIO.)
func PreadFull(fd int, p []byte, off int64) (int, error) {
	return fill(p, false, func(b []byte, n int) (int, error) { return unix.Pread(fd, b, off+int64(n)) })
}

// fill calls read(p[n:], n) until p is full, read returns 0 or fails, or
// (stopShort) a read returns less than asked.
func fill(p []byte, stopShort bool, read func(b []byte, n int) (int, error)) (int, error) {
	n := 0
	for n < len(p) {
		k, err := read(p[n:], n)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			break
		}
		n += k
		if stopShort && n < len(p) && k < len(p[n-k:]) {
			break
		}
	}
	return n, nil
}

// Appender is a file opened for appending (a log): each Write is one
// write(2) of the whole buffer, so that lines from concurrent processes do
// not interleave.
type Appender struct{ fd int }

// OpenAppend opens (creating with perm) name for appending, close-on-exec.
func OpenAppend(name string, perm uint32) (*Appender, error) {
	for {
		fd, err := unix.Open(name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &Appender{fd: fd}, nil
	}
}

func (a *Appender) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(a.fd, p[written:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// Close closes the file.
func (a *Appender) Close() error { return unix.Close(a.fd) }
