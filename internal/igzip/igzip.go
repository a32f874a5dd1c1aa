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
)

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
	out    io.ReadCloser
	stderr *bytes.Buffer
	err    error // set once the output has ended: io.EOF or igzip's failure
}

// source is igzip's input, which remembers how it failed: igzip then
// fails too, and the source's error is the one that explains it.
type source struct {
	r   io.Reader
	err error // written by exec's copying goroutine, read after Wait
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
	cmd := exec.Command(path, "-d", "-c")
	src := &source{r: r}
	cmd.Stdin = src
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("gzip: starting %s: %w", path, err)
	}
	return &reader{cmd: cmd, src: src, out: out, stderr: stderr}, nil
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
