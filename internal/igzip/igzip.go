// Package igzip decompresses gzip streams with igzip, the command-line tool
// of Intel's ISA-L (Debian's package isal), when it is installed: it
// inflates a layer 2.5 to 3 times as fast as Go's fastest inflate
// (klauspost/compress), which is half of what an image import costs on
// CPU. containerd runs unpigz for its layers the same way.
//
// igzip's output is checked as Go's would be: the blob's digest covers
// what it reads, the diff_id what it writes. It differs from Go's gzip
// only in which malformed streams it refuses: bytes after the last gzip
// member are ignored, where Go refuses them.
package igzip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// pipeSize is the size asked for igzip's pipes (Linux's default
// /proc/sys/fs/pipe-max-size; a smaller limit leaves them at 64 KiB).
// With 64 KiB pipes igzip and its reader take turns every 64 KiB: a pull
// of the benchmark's image made 14,500 context switches instead of 5,600,
// and took 8% longer (docs/performance.md).
const pipeSize = 1 << 20

// copyBuffer is how much of the source is written to igzip at a time: a
// read-ahead chunk of ociimage's.
const copyBuffer = 256 << 10

// Env names the variable that chooses the decompressor: a path to igzip,
// or "none" for Go's inflate. Unset: igzip from $PATH, when there is one.
const Env = "CFS_RUNTIME_IGZIP"

// ErrCorrupt means igzip refused the stream: corrupt, or cut short.
var ErrCorrupt = errors.New("corrupt gzip stream")

// Path returns the igzip to run, "" for none (Go's inflate).
var Path = sync.OnceValue(func() string {
	switch p := os.Getenv(Env); p {
	case "none":
		return ""
	case "":
		p, _ = exec.LookPath("igzip")
		return p
	default:
		return p
	}
})

// A reader is igzip's output.
type reader struct {
	cmd    *exec.Cmd
	src    *source
	out    *os.File
	copied chan struct{} // closed when copying the source to igzip ended
	stderr *bytes.Buffer
	err    error // set once the output has ended: io.EOF or igzip's failure
}

// source is igzip's input, which remembers how it failed: igzip then
// fails too, and the source's error is the one that explains it.
type source struct {
	r   io.Reader
	err error // written by the goroutine copying it to igzip, read after that ended
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// NewReader starts igzip (at path) on r and returns its output. Read
// returns igzip's failure, wrapping ErrCorrupt, when its output ends;
// Close stops it if it still runs, and waits for it.
func NewReader(path string, r io.Reader) (io.ReadCloser, error) {
	inR, inW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(path, "-d", "-c")
	cmd.Stdin, cmd.Stdout = inR, outW
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("gzip: starting %s: %w", path, err)
	}
	src := &source{r: r}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.CopyBuffer(struct{ io.Writer }{inW}, src, make([]byte, copyBuffer))
		inW.Close()
	}()
	return &reader{cmd: cmd, src: src, out: outR, copied: copied, stderr: stderr}, nil
}

// pipe makes a pipe of pipeSize bytes where the kernel allows it.
func pipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("gzip: %w", err)
	}
	// Through SyscallConn, not Fd: Fd would make w blocking, and a
	// goroutine blocked writing to igzip would keep its thread and P
	// (GOMAXPROCS is the CPU count) from the other goroutines.
	if c, err := w.SyscallConn(); err == nil {
		c.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
	return r, w, nil
}

func (z *reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.out.Read(p)
	if err == io.EOF {
		z.err = z.wait()
		return n, z.err
	}
	return n, err
}

// wait waits for igzip, after the end of its output: io.EOF when it
// succeeded.
func (z *reader) wait() error {
	err := z.cmd.Wait()
	z.out.Close()
	<-z.copied
	if z.src.err != nil {
		return z.src.err
	}
	if err == nil {
		return io.EOF
	}
	// Wait also fails when copying stdin did (the source's error).
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	msg := strings.TrimSpace(strings.SplitN(z.stderr.String(), "\n", 2)[0])
	msg = strings.ReplaceAll(strings.TrimPrefix(msg, "igzip: "), " (null)", "")
	return fmt.Errorf("%w: igzip: %s (%v)", ErrCorrupt, msg, ee)
}

// Close stops igzip if its output has not ended, and waits for it.
func (z *reader) Close() error {
	if z.err == nil {
		z.cmd.Process.Kill()
		z.err = z.wait()
	}
	return nil
}
