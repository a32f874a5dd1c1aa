package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/ociimage"
	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
	"github.com/urfave/cli/v2"
)

func TestImportCommand(t *testing.T) {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "big"), bytes.Repeat([]byte("0123456789"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "small"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	got, err := runInfo(t, "import", "--store", store, tree)
	if err != nil {
		t.Fatal(err)
	}
	want, err := runInfo(t, "digest", tree)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || len(strings.TrimSpace(got)) != 64 {
		t.Fatalf("import printed %q, digest printed %q", got, want)
	}
	d := strings.TrimSpace(got)
	if _, err := os.Stat(filepath.Join(store, "images", d)); err != nil {
		t.Fatal(err)
	}
	missing, err := runInfo(t, "info", "missing-objects", "--basedir", filepath.Join(store, "objects"), filepath.Join(store, "images", d))
	if err != nil || missing != "" {
		t.Fatalf("missing objects after import: %q, %v", missing, err)
	}
	if _, err := runInfo(t, "import", "--store", store); err == nil || !strings.Contains(err.Error(), "want exactly one TREE") {
		t.Errorf("import without TREE: %v", err)
	}
	if _, err := runInfo(t, "import", "--store", store, filepath.Join(tree, "nonexistent")); err == nil {
		t.Error("import of a missing tree succeeded")
	}
}

// runSplit runs `cfs-runtime ARGS...` and returns stdout and stderr apart,
// and the exit code runTool would use.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := usageError(app.Run(append([]string{"cfs-runtime"}, args...)))
	if err != nil {
		code = 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		errOut.WriteString("cfs-runtime: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}

// ociLayout writes a two-layer image (a whiteout in the second) named v1,
// and a third layer on top of it named v2.
func ociLayout(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "layout")
	l1 := ot.Layer{Tar: ot.Tar(t, ot.Dir("usr/", 0o755), ot.Dir("usr/bin/", 0o755), ot.File("usr/bin/app", ot.Body('a', 5000)), ot.File("usr/old", "old\n"))}
	l2 := ot.Layer{Tar: ot.Tar(t, ot.Whiteout("usr/.wh.old"), ot.File("usr/new", ot.Body('n', 100))), Compression: "gzip"}
	l3 := ot.Layer{Tar: ot.Tar(t, ot.Dir("etc/", 0o700)), Compression: "zstd"}
	ot.WriteImage(t, dir, "v1", l1, l2)
	ot.WriteImage(t, dir, "v2", l1, l2, l3)
	return dir
}

func TestImportOCICommand(t *testing.T) {
	dir := ociLayout(t)
	store := filepath.Join(t.TempDir(), "store")
	out, errOut, code := runSplit(t, "import", "--store", store, "oci:"+dir+":v1")
	if code != 0 || len(strings.TrimSpace(out)) != 64 || strings.Count(out, "\n") != 1 {
		t.Fatalf("import: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	d := strings.TrimSpace(out)
	for _, want := range []string{
		"layer 1/2 sha256:", ": processed (4 entries, 1 objects)", "layer 2/2 sha256:", ": processed (2 entries, 1 objects)",
		"imported oci:" + dir + ":v1 (manifest sha256:", ") as oci:" + dir + ":v1: 2 layers, 2 read, 3 new objects",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if missing, err := runInfo(t, "info", "missing-objects", "--basedir", filepath.Join(store, "objects"), filepath.Join(store, "images", d)); err != nil || missing != "" {
		t.Fatalf("missing objects: %q, %v", missing, err)
	}
	// The update: only its new layer is read.
	out2, errOut, code := runSplit(t, "import", "--store", store, "oci:"+dir+":v2")
	if code != 0 || strings.Count(errOut, "already imported") != 2 || !strings.Contains(errOut, "layer 3/3 sha256:") ||
		!strings.Contains(errOut, "3 layers, 1 read, 1 new objects") || out2 == out {
		t.Fatalf("update: exit %d, %s", code, errOut)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--use-epoch", "oci:" + dir}, 2, "import: --use-epoch applies to a TREE, not to an OCI image (see --canonical)"},
		{[]string{"--canonical", "composefs-rs", t.TempDir()}, 2, "import: --canonical and --erofs-version apply to OCI images (oci:DIR[:NAME])"},
		{[]string{"--canonical", "bogus", "oci:" + dir}, 2, `import: unknown --canonical "bogus" (want oci or composefs-rs)`},
		{[]string{"--erofs-version", "2", "oci:" + dir}, 2, "import: --erofs-version needs --canonical composefs-rs"},
		{[]string{"--canonical", "composefs-rs", "--erofs-version", "3", "oci:" + dir}, 2, "import: invalid --erofs-version 3 (want 0, 1 or 2)"},
		{[]string{"oci:" + dir}, 1, "import: oci:" + dir + ": no such image in the layout: the layout has 2 images; name one as oci:" + dir + ":NAME (names: v1, v2)"},
	} {
		_, errOut, code := runSplit(t, append([]string{"import", "--store", store}, c.args...)...)
		if code != c.code || strings.TrimSpace(errOut) != "cfs-runtime: "+c.want {
			t.Errorf("import %v: exit %d, stderr %q; want %d, %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestImportOCITampered(t *testing.T) {
	dir := ociLayout(t)
	img, err := ociimage.Inspect(ociimage.Ref{Transport: ociimage.TransportDir, Path: dir, Tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", img.Manifest.Layers[0].Digest.Encoded())
	data, _ := os.ReadFile(blob)
	data[600] ^= 0xff // one byte of the layer
	os.WriteFile(blob, data, 0o644)
	store := filepath.Join(t.TempDir(), "store")
	_, errOut, code := runSplit(t, "import", "--store", store, "oci:"+dir+":v1")
	want := "cfs-runtime: import: oci:" + dir + ":v1: layer 1/2 blob " + img.Manifest.Layers[0].Digest.String() + ": blob does not match its digest: its content has digest sha256:"
	if code != 1 || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q, want %q...", code, errOut, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(store, "images")); len(ents) != 0 {
		t.Fatalf("image committed from a tampered layout: %v", ents)
	}
}

// fsck --repair restores an object of an imported OCI image from the
// layout its provenance names, with ociimage.NewSource as fsck's
// ociSources (fsck.go's hook; wiring it is fsck's owner's one-line change).
func TestFsckRepairsFromOCILayout(t *testing.T) {
	saved := ociSources
	ociSources = ociimage.NewSource
	t.Cleanup(func() { ociSources = saved })
	dir := ociLayout(t)
	store := filepath.Join(t.TempDir(), "store")
	out, errOut, code := runSplit(t, "import", "--store", store, "oci:"+dir+":v1")
	if code != 0 {
		t.Fatal(errOut)
	}
	d := strings.TrimSpace(out)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("store_dir = \""+store+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CFS_RUNTIME_CONFIG", cfg)
	obj := filepath.Join(store, "objects", ot.VerityPath(t, ot.Body('a', 5000)))
	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runSplit(t, "fsck", d); code != 1 {
		t.Fatalf("fsck of a damaged image: exit %d: %s", code, errOut)
	}
	out, errOut, code = runSplit(t, "fsck", "--repair", d)
	if code != 0 || !strings.Contains(errOut, "from oci:"+dir+":v1 (1 layers): layer 1 /usr/bin/app") {
		t.Fatalf("fsck --repair: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(obj); err != nil {
		t.Fatal(err)
	}
}

// import --json: a summary for every source; an OCI image's counts its
// layers, a tree's has no layers to count.
func TestImportJSON(t *testing.T) {
	dir := ociLayout(t)
	store := filepath.Join(t.TempDir(), "store")
	runSplit(t, "import", "--store", store, "oci:"+dir+":v1")
	out, errOut, code := runSplit(t, "import", "--store", store, "--json", "oci:"+dir+":v2")
	if code != 0 {
		t.Fatalf("import --json: exit %d, %s", code, errOut)
	}
	var sum importSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if sum.LayersFetched != 1 || sum.LayersSkipped != 2 || len(sum.Layers) != 3 || sum.Layers[2].Fetched != true ||
		sum.Source != "oci:"+dir+":v2" || sum.Ref != "oci:"+dir+":v2" || len(sum.Digest) != 64 || sum.Bytes == 0 || sum.ObjectsNew != 1 {
		t.Errorf("summary %+v", sum)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "f"), []byte(ot.Body('t', 100)), 0o644)
	out, _, code = runSplit(t, "import", "--store", store, "--json", tree)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || len(m) != 2 || m["source"] != tree {
		t.Errorf("tree --json: exit %d, %v: %s", code, err, out)
	}
	_, errOut, code = runSplit(t, "import", "--store", store, "--authfile", "x.json", tree)
	if code != 2 || !strings.Contains(errOut, "import: --authfile applies to a registry image (docker://REF)") {
		t.Errorf("--authfile with a tree: exit %d, %s", code, errOut)
	}
}
