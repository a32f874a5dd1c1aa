package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

const vectorOut = "testdata/vectors/out"

// runComposefsCmd runs `cfs-runtime ARGS...` with the digest and mkimage
// commands in-process; it returns stdout, the exit code and the error.
func runComposefsCmd(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "cfs-runtime",
		Commands:       []*cli.Command{digestCommand, mkimageCommand},
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"cfs-runtime"}, args...))
	code := 0
	if err != nil {
		code = 1
		if ec, ok := err.(cli.ExitCoder); ok {
			code = ec.ExitCode()
		}
	}
	return out.String(), code, err
}

func readVectorFile(t *testing.T, vec, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorOut, vec, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestDigestFromFile: `digest --from-file` prints what
// `mkcomposefs --from-file --print-digest-only` printed, bare hex.
func TestDigestFromFile(t *testing.T) {
	for _, vec := range []string{"03-small-files", "13-xattrs", "15-whiteouts"} {
		out, _, err := runComposefsCmd(t, "digest", "--from-file", filepath.Join(vectorOut, vec, "dump.txt"))
		if err != nil {
			t.Fatalf("%s: %v", vec, err)
		}
		if want := readVectorFile(t, vec, "fromdump-digest.txt") + "\n"; out != want {
			t.Errorf("%s: printed %q, want %q", vec, out, want)
		}
	}
	// The version options apply to dumps too ([--min-version=1] of
	// variants.txt: the same image with format version 1).
	out, _, err := runComposefsCmd(t, "digest", "--from-file", "--min-version=1", filepath.Join(vectorOut, "03-small-files", "dump.txt"))
	if err != nil || out != "087d62d3ac2d8f2121f7639bd8fc26ce00dcda163f03382de136e207fe7f4c22\n" {
		t.Errorf("--min-version=1: %q, %v", out, err)
	}
}

// TestMkimageFromFile writes the golden image from its dump.
func TestMkimageFromFile(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "image.cfs")
	if _, _, err := runComposefsCmd(t, "mkimage", "--from-file", filepath.Join(vectorOut, "13-xattrs", "dump.txt"), img); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if want := strings.Fields(readVectorFile(t, "13-xattrs", "image.sha256"))[0]; hex.EncodeToString(sum[:]) != want {
		t.Errorf("image sha256 %x, want %s", sum, want)
	}
	if fi, _ := os.Stat(img); fi.Mode().Perm() != 0o644 {
		t.Errorf("image mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestMkimageDigestStore: mkimage with --digest-store on a directory
// writes the image the digest command measures and stores the objects.
func TestMkimageDigestStore(t *testing.T) {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "big"), bytes.Repeat([]byte("x"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "small"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img, store := filepath.Join(dir, "img.cfs"), filepath.Join(dir, "objects")
	if _, _, err := runComposefsCmd(t, "mkimage", "--digest-store", store, tree, img); err != nil {
		t.Fatal(err)
	}
	digest, _, err := runComposefsCmd(t, "digest", tree)
	if err != nil {
		t.Fatal(err)
	}
	measured, err, _ := runVerity(t, "digest", "--compact", img)
	if err != nil {
		t.Fatal(err)
	}
	if digest != measured || len(digest) != 65 {
		t.Errorf("digest %q, fs-verity of the image %q", digest, measured)
	}
	var objects []string
	_ = filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			objects = append(objects, p)
		}
		return err
	})
	if len(objects) != 1 {
		t.Errorf("store holds %v, want the one object of big", objects)
	}
}

func TestComposefsCommandErrors(t *testing.T) {
	dump := filepath.Join(vectorOut, "01-empty-dir", "dump.txt")
	bad := filepath.Join(t.TempDir(), "bad.dump")
	if err := os.WriteFile(bad, []byte("/ 4096 40755 2 0 0 0 1.0 - - -\n/x 0 777 1 0 0 0 1.0 - - -\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "img.cfs")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"digest"}, 2, "exactly one"},
		{[]string{"digest", "a", "b"}, 2, "exactly one"},
		{[]string{"digest", "--min-version=2", dump}, 2, "invalid --min-version 2"},
		{[]string{"digest", "--skip-xattrs", "--user-xattrs", dump}, 2, "exclude each other"},
		{[]string{"digest", "--threads=0", dump}, 2, "invalid --threads"},
		{[]string{"digest", "/does/not/exist"}, 1, "no such file"},
		{[]string{"digest", "--from-file", bad}, 1, "line 2: MODE 777: unknown file type"},
		{[]string{"mkimage", dump}, 2, "IMAGE"},
		{[]string{"mkimage", "--from-file", "--digest-store", t.TempDir(), dump, img}, 2, "--digest-store needs a TREE"},
		{[]string{"mkimage", "--from-file", bad, img}, 1, "line 2"},
	} {
		_, code, err := runComposefsCmd(t, tc.args...)
		if err == nil || code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: code %d, err %v; want code %d and %q", tc.args, code, err, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("a failed mkimage left %s behind", img)
	}
}
