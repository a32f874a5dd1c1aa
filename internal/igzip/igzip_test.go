package igzip

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func path(t *testing.T) string {
	t.Helper()
	p := Path()
	if p == "" {
		t.Skip("no igzip (Debian's package isal; tests/install-deps.sh installs it)")
	}
	return p
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// igzip decompresses what Go's gzip does, several members included.
func TestSameAsGo(t *testing.T) {
	p := path(t)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = "abcdefgh\n"[rng.IntN(9)]
	}
	stream := append(gz(t, data), gz(t, data[:1000])...)
	z, err := NewReader(p, bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(z)
	z.Close()
	want := append(append([]byte{}, data...), data[:1000]...)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}

// A stream cut short, or with a wrong checksum, is refused when the output
// ends; one that is not gzip at all too.
func TestRefusesBrokenStreams(t *testing.T) {
	p := path(t)
	whole := gz(t, bytes.Repeat([]byte("layer bytes\n"), 100000))
	badCRC := append([]byte{}, whole...)
	badCRC[len(badCRC)-8] ^= 0xff
	for name, stream := range map[string][]byte{
		"cut short":      whole[:len(whole)/2],
		"no trailer":     whole[:len(whole)-8],
		"wrong checksum": badCRC,
		"not gzip":       []byte("plain text, not gzip"),
		"empty":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			z, err := NewReader(p, bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			defer z.Close()
			if _, err := io.ReadAll(z); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, want %v", err, ErrCorrupt)
			}
		})
	}
}

// Close stops igzip before its output ends (a layer refused for another
// reason), even while it waits for input or to write.
func TestCloseStops(t *testing.T) {
	p := path(t)
	pr, pw := io.Pipe() // input that never ends
	defer pw.Close()
	z, err := NewReader(p, pr)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(gz(t, bytes.Repeat([]byte("x"), 1<<20))[:100])
	go pw.Close() // what the caller's own stop does to the source
	z.Close()

	big := gz(t, bytes.Repeat([]byte("y"), 64<<20)) // more output than a pipe holds
	z, err = NewReader(p, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := z.Read(buf); err != nil {
		t.Fatal(err)
	}
	z.Close()
}

// A source that fails is reported as it is, not as a corrupt stream.
func TestSourceError(t *testing.T) {
	p := path(t)
	boom := errors.New("network gone")
	z, err := NewReader(p, io.MultiReader(bytes.NewReader(gz(t, []byte("abc"))[:5]), iotestErr{boom}))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if _, err := io.ReadAll(z); !errors.Is(err, boom) {
		t.Fatalf("%v, want %v", err, boom)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// igzip's pipes are pipeSize bytes where the kernel allows it, and ours
// stay non-blocking (Go's poller, not a thread per blocked goroutine).
func TestPipes(t *testing.T) {
	r, w, err := pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	c, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size, flags int
	c.Control(func(fd uintptr) {
		size, _ = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0)
	})
	if max, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil && strings.TrimSpace(string(max)) == strconv.Itoa(pipeSize) && size != pipeSize {
		t.Errorf("pipe size %d, want %d", size, pipeSize)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Error("our end of the pipe is blocking")
	}
}
