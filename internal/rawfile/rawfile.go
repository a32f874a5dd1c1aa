// Package rawfile reads whole files and appends to logs with plain system
// calls.
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
	"io/fs"

	"golang.org/x/sys/unix"
)

// ReadFile reads the named file. Errors are *fs.PathError as from
// os.ReadFile (errors.Is(err, fs.ErrNotExist) works).
func ReadFile(name string) ([]byte, error) {
	fd, err := openRetry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	size := 512
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Size > 0 && st.Size < 1<<30 {
		size = int(st.Size) + 1 // one more, to see the end in one read
	}
	data := make([]byte, 0, size)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := unix.Read(fd, data[len(data):cap(data)])
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
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
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
