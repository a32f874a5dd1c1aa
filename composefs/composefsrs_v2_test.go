package composefs

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// rsSimpleTree is composefs-rs' tests/mkfs.rs "simple" case.
func rsSimpleTree(t *testing.T) *Tree {
	t.Helper()
	root := &Node{Mode: ModeDir | 0o755}
	ext := bytes.Repeat([]byte{0x5a}, DigestSize)
	for _, n := range []*Node{
		{Name: "fifo", Mode: ModeFifo},
		{Name: "regular-inline", Mode: ModeRegular, Size: 4, Content: []byte("hihi")},
		{Name: "regular-external", Mode: ModeRegular, Size: 1234, Digest: ext, Payload: ObjectPath(ext)},
		{Name: "chrdev", Mode: ModeChar, Rdev: 123},
		{Name: "blkdev", Mode: ModeBlock, Rdev: 123},
		{Name: "socket", Mode: ModeSocket},
		{Name: "symlink", Mode: ModeSymlink, Payload: "/target"},
	} {
		if err := root.AddChild(n); err != nil {
			t.Fatal(err)
		}
	}
	return &Tree{Root: root}
}

// The digests composefs-rs pins in tests/mkfs.rs (test_erofs_digest_stability).
func TestComposefsRSPinnedDigests(t *testing.T) {
	for _, c := range []struct {
		name string
		tree *Tree
		want string
	}{
		{"empty", &Tree{Root: &Node{Mode: ModeDir | 0o755}}, "086b702a519b57d6ef5aea6f8b3f2be24355cd1fb835cd80fb4e3d388b24d5a5"},
		{"simple", rsSimpleTree(t), "a8fcd41f8b313bede69f462f2af0a38d64b99a6333f5df884ea9ab4037fac722"},
	} {
		d, err := c.tree.ComposefsRSDigest()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(d); got != c.want {
			t.Errorf("%s: digest %s, composefs-rs pins %s", c.name, got, c.want)
		}
	}
}

// The reader takes V2 images (a store only holds images it accepts, and
// create mounts them): nested directories, a directory spread over
// several blocks, hardlinks, shared xattrs, an inline tail that needs
// padding (a 3000-byte symlink), a whiteout device.
func TestComposefsRSImageReadable(t *testing.T) {
	d := strings.Repeat("5a", DigestSize)
	dump := "/ 0 40755 2 0 0 0 5.0 - - - user.a=1\n" +
		"/big 0 40700 2 7 8 0 6.0 - - - user.a=1 trusted.overlay.x=y\n" +
		"/d 0 40755 2 0 0 0 5.0 - - -\n" +
		"/d/f 1234 100644 2 0 0 0 5.0 " + d[:2] + "/" + d[2:] + " - " + d + "\n" +
		"/d/link 0 @100644 0 0 0 0 0.0 /d/f - -\n" +
		"/d/wh 0 20000 1 0 0 0 5.0 - - -\n" +
		"/d/s 3000 120777 1 0 0 0 5.0 " + strings.Repeat("t", 3000) + " - -\n"
	for i := range 300 {
		dump += fmt.Sprintf("/big/entry-with-a-long-name-%04d 5 100600 1 0 0 0 5.0 - hello -\n", i)
	}
	tree, err := ParseDump(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tree.WriteComposefsRSImage(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := ParseImage(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := img.WriteDump(&got); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got.String(), "\n")
	for _, want := range []string{
		"/ 55 40755 4 0 0 0 5.0 - - - user.a=1",
		"/d/f 1234 100644 2 0 0 0 5.0 " + d[:2] + "/" + d[2:] + " - " + d,
		"/d/link 1234 @100644 2 0 0 0 5.0 /d/f - " + d,
		"/big/entry-with-a-long-name-0299 5 100600 1 0 0 0 5.0 - hello -",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("dump lacks %q:\n%s", want, strings.Join(lines[300:], "\n"))
		}
	}
	// V2 stores a whiteout device as it is (unescaped): an overlay
	// whiteout, which the reader hides as composefs-info does.
	if n := len(lines) - 1; n != 306 || strings.Contains(got.String(), "/d/wh") {
		t.Errorf("%d entries, want 306 without /d/wh", n)
	}
	if !strings.Contains(got.String(), "/big 12288 40700 2 7 8 0 6.0 - - - trusted.overlay.x=y user.a=1") &&
		!strings.Contains(got.String(), "/big 12288 40700 2 7 8 0 6.0 - - - user.a=1 trusted.overlay.x=y") {
		t.Errorf("/big: %s", lines[1])
	}
}
