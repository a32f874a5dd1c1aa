package decompress

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	payload := strings.Repeat("tar bytes\n", 1000)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(payload))
	w.Close()
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = strings.NewReader(payload)
	bz, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2: %v", err)
	}
	for name, in := range map[string][]byte{"plain": []byte(payload), "gzip": gz.Bytes(), "bzip2": bz} {
		r, done, err := Reader(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != payload {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
		if err := done(); err != nil {
			t.Fatalf("%s: close: %v", name, err)
		}
	}
	for name, c := range map[string]struct {
		magic []byte
		msg   string
	}{
		"zstd": {[]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, "unsupported compression: zstd (decompress it first: zstd -d)"},
		"xz":   {[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "unsupported compression: xz (decompress it first: xz -d)"},
	} {
		_, _, err := Reader(bufio.NewReader(bytes.NewReader(c.magic)))
		if !errors.Is(err, ErrUnsupportedCompression) || err.Error() != c.msg {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := Reader(bufio.NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 0}))); err == nil {
		t.Error("a truncated gzip header is no error")
	}
}
