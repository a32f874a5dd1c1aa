//go:build !vmtest

package composefs

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// fsverityDigest is `fsverity digest --hash-alg=ALG --compact path`.
func fsverityDigest(t *testing.T, alg verity.Algorithm, path string) string {
	t.Helper()
	out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg="+alg.String(), path).Output()
	if err != nil {
		t.Fatalf("fsverity digest %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// TestSHA512Tree: a scan WithHash(SHA512) records the SHA-512 fs-verity
// digest of every external file (as fsverity-utils computes it), the image
// carries them in its metacopy xattrs (FS_VERITY_HASH_ALG_SHA512), the
// reader and the dump format give them back, and the image digest is the
// SHA-512 fs-verity digest of the image.
func TestSHA512Tree(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"small":       []byte("inline content"),
		"mid":         bytes.Repeat([]byte("m"), 5000),
		"big":         bytes.Repeat([]byte("0123456789abcdef"), 100000/16),
		"sub/nested":  bytes.Repeat([]byte{0xa5}, 4097),
		"hello-world": []byte("hello world, and more than sixty-four bytes so that it is stored outside"),
	}
	testutil.WriteTree(t, dir, files)
	tree, err := BuildTree(dir, WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // path in the image → digest
	for name := range files {
		if name == "small" {
			continue
		}
		want["/"+name] = fsverityDigest(t, verity.SHA512, filepath.Join(dir, name))
	}
	var buf bytes.Buffer
	if err := tree.WriteImage(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := ParseImage(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = img.Walk(func(e *Entry) error {
		if e.Inode.Digest != nil {
			got[e.Path] = hex.EncodeToString(e.Inode.Digest)
			if e.Inode.Payload != ObjectPath(e.Inode.Digest) {
				t.Errorf("%s: redirect %q, want %q", e.Path, e.Inode.Payload, ObjectPath(e.Inode.Digest))
			}
			mc := append([]byte{0, 4 + SHA512DigestSize, 0, byte(verity.SHA512)}, e.Inode.Digest...)
			if !bytes.Contains(buf.Bytes(), mc) {
				t.Errorf("%s: no SHA-512 metacopy xattr in the image", e.Path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("digests %v, want %v", got, want)
	}
	for p, d := range want {
		if got[p] != d {
			t.Errorf("%s: digest %s, fsverity %s", p, got[p], d)
		}
	}
	// The image digest.
	imgPath := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(imgPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := tree.Digest(WithHash(verity.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(d) != fsverityDigest(t, verity.SHA512, imgPath) {
		t.Errorf("image digest %x, fsverity %s", d, fsverityDigest(t, verity.SHA512, imgPath))
	}
	if d256, err := tree.Digest(); err != nil || hex.EncodeToString(d256) != fsverityDigest(t, verity.SHA256, imgPath) {
		t.Errorf("SHA-256 digest of the same image: %x, %v", d256, err)
	}
	// The dump round trip keeps the 128-digit digests and the image.
	var dump bytes.Buffer
	if err := img.WriteDump(&dump); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump.String(), " "+want["/big"]+"\n") {
		t.Errorf("dump lacks the SHA-512 digest:\n%s", dump.String())
	}
	back, err := ParseDump(&dump)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteImage(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("the image written from its dump differs")
	}
	// The default stays SHA-256.
	t256, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range t256.Root.Children {
		if c.Name == "big" && hex.EncodeToString(c.Digest) != fsverityDigest(t, verity.SHA256, filepath.Join(dir, "big")) {
			t.Errorf("default scan: %x", c.Digest)
		}
	}
}

// A digest of neither size is refused, in both formats.
func TestDigestSizes(t *testing.T) {
	for _, n := range []int{16, 33, 48, 65} {
		root := &Node{Mode: ModeDir | 0o755}
		d := bytes.Repeat([]byte{1}, n)
		if err := root.AddChild(&Node{Name: "f", Mode: ModeRegular | 0o644, Size: 100, Digest: d, Payload: ObjectPath(d)}); err != nil {
			t.Fatal(err)
		}
		tr := &Tree{Root: root}
		var buf bytes.Buffer
		if err := tr.WriteImage(&buf); err == nil || !strings.Contains(err.Error(), "digest of") {
			t.Errorf("%d-byte digest: %v", n, err)
		}
		if err := tr.WriteComposefsRSImage(&buf); err == nil {
			t.Errorf("%d-byte digest (composefs-rs): accepted", n)
		}
	}
	if _, err := ParseDump(strings.NewReader("/ 0 40755 2 0 0 0 0.0 - - -\n/f 100 100644 1 0 0 0 0.0 ab/cd - " + strings.Repeat("ab", 40) + "\n")); err == nil ||
		!strings.Contains(err.Error(), "not 64 (SHA-256) or 128 (SHA-512) hex digits") {
		t.Errorf("dump with an 80-digit digest: %v", err)
	}
}
