//go:build !vmtest

package verity

import (
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestComposefsRSPinnedDigests: the fs-verity digests composefs-rs pins for
// the same input (testdata/composefs-rs/README.md), and fsverity-utils'.
func TestComposefsRSPinnedDigests(t *testing.T) {
	const input = "../testdata/composefs-rs/hello-world"
	data, err := os.ReadFile(input)
	if err != nil || string(data) != "hello world" {
		t.Fatalf("%s: %q, %v", input, data, err)
	}
	for _, c := range []struct {
		alg  Algorithm
		want string
	}{
		{SHA256, "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"},
		{SHA512, "18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba514e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409"},
	} {
		h, err := NewHasher(WithAlgorithm(c.alg))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data)
		if got := hex.EncodeToString(h.Sum()); got != c.want {
			t.Errorf("%s: %s, composefs-rs pins %s", c.alg, got, c.want)
		}
		f, err := os.Open(input)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DigestReader(f, WithAlgorithm(c.alg))
		f.Close()
		if err != nil || hex.EncodeToString(d) != c.want {
			t.Errorf("%s: DigestReader %x, %v", c.alg, d, err)
		}
		out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg="+c.alg.String(), input).Output()
		if err != nil {
			t.Fatalf("fsverity digest: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("%s: fsverity digest %s, composefs-rs pins %s", c.alg, got, c.want)
		}
	}
}
