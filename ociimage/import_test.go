package ociimage

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	passwd1 = ot.Body('p', 100)
	passwd2 = ot.Body('q', 200)
	tool    = ot.Body('a', 300000) // more than a store worker's buffer: streamed
	newBin  = ot.Body('n', 70)
)

// threeLayers: whiteouts, an opaque directory, a directory rewritten, a
// hardlink across layers whose first name is then deleted, a replaced
// file, gzip and zstd, a PAX sub-second mtime, an xattr, and an opaque
// marker after entries of its own layer (where OCI and composefs-rs differ).
func threeLayers(t *testing.T) []ot.Layer {
	at := func(sec, nsec int64, fs ...ot.Entry) []ot.Entry {
		for i := range fs {
			if fs[i].Mtime == 0 {
				fs[i] = fs[i].At(sec, nsec)
			}
		}
		return fs
	}
	l1 := ot.Tar(t, at(1000, 0,
		ot.Dir("./", 0o755), ot.Dir("etc/", 0o755), ot.File("etc/passwd", passwd1), ot.File("etc/small", "hi\n"),
		ot.Dir("usr/", 0o755), ot.Dir("usr/bin/", 0o755), ot.File("usr/bin/tool", tool), ot.Hardlink("usr/bin/tool2", "usr/bin/tool"),
		ot.Dir("opq/", 0o755), ot.File("opq/x", "x\n"), ot.Dir("opq/sub/", 0o755), ot.File("opq/sub/y", "y\n"),
		ot.Dir("keep/", 0o755), ot.File("keep/k", "k\n"),
		ot.Dir("data/", 0o755), ot.File("data/a", "a\n").WithXattr("user.test", "1"),
		ot.Symlink("bin", "usr/bin"),
		ot.Dir("run/", 0o755).At(1500, 0), ot.File("run/x", "x\n"),
	)...)
	l2 := ot.Tar(t, at(2000, 0,
		ot.Whiteout("etc/.wh.small"), ot.Dir("opq/", 0o750), ot.Whiteout("opq/.wh..wh..opq"), ot.File("opq/new", "new\n"),
		ot.Dir("data/", 0o700), ot.Hardlink("data/link", "usr/bin/tool"), ot.Whiteout(".wh.keep"), ot.File("etc/passwd", passwd2),
	)...)
	l3 := ot.Tar(t, at(3000, 500,
		ot.Whiteout("usr/bin/.wh.tool"), ot.File("usr/bin/new", newBin),
		ot.Dir("late/", 0o755), ot.File("late/f", "f\n"), ot.Whiteout("late/.wh..wh..opq"),
	)...)
	return []ot.Layer{{Tar: l1}, {Tar: l2, Compression: "gzip"}, {Tar: l3, Compression: "zstd"}}
}

// line is one composefs-dump(5) line of an expected tree.
func line(path string, size int, mode string, nlink int, mtime string, payload, content, digest string, xattrs ...string) string {
	s := fmt.Sprintf("%s %d %s %d 0 0 0 %s %s %s %s", path, size, mode, nlink, mtime, payload, content, digest)
	for _, x := range xattrs {
		s += " " + x
	}
	return s + "\n"
}

func ext(t *testing.T, path, body, mode string, nlink int, mtime string) string {
	d := ot.VerityHex(t, body)
	return line(path, len(body), mode, nlink, mtime, d[:2]+"/"+d[2:], "-", d)
}

// threeLayersMerged is the merge of threeLayers as a dump: with OCI
// semantics, or (rs) with the composefs-rs rules: in tar order (late/f is
// cleared by the opaque marker after it), seconds only, the root from
// /usr, /run emptied with /usr's mtime.
func threeLayersMerged(t *testing.T, rs bool) string {
	late, run := "3000.500", "1500.0"
	if rs {
		late, run = "3000.0", "1000.0"
	}
	d := line("/", 0, "40755", 1, "1000.0", "-", "-", "-") +
		line("/bin", 7, "120777", 1, "1000.0", "usr/bin", "-", "-") +
		line("/data", 0, "40700", 1, "2000.0", "-", "-", "-") +
		line("/data/a", 2, "100644", 1, "1000.0", "-", `a\n`, "-", "user.test=1") +
		ext(t, "/data/link", tool, "100644", 2, "1000.0") +
		line("/etc", 0, "40755", 1, "1000.0", "-", "-", "-") +
		ext(t, "/etc/passwd", passwd2, "100644", 1, "2000.0") +
		line("/late", 0, "40755", 1, late, "-", "-", "-")
	if !rs {
		d += line("/late/f", 2, "100644", 1, late, "-", `f\n`, "-")
	}
	d += line("/opq", 0, "40750", 1, "2000.0", "-", "-", "-") +
		line("/opq/new", 4, "100644", 1, "2000.0", "-", `new\n`, "-") +
		line("/run", 0, "40755", 1, run, "-", "-", "-")
	if !rs {
		d += line("/run/x", 2, "100644", 1, "1000.0", "-", `x\n`, "-")
	}
	return d + line("/usr", 0, "40755", 1, "1000.0", "-", "-", "-") +
		line("/usr/bin", 0, "40755", 1, "1000.0", "-", "-", "-") +
		ext(t, "/usr/bin/new", newBin, "100644", 1, late) +
		line("/usr/bin/tool2", 0, "@100644", 1, "0.0", "/data/link", "-", "-")
}

func TestImportMergesLayers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	s := openStore(t)
	var log bytes.Buffer
	res, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	want := dumpDigest(t, threeLayersMerged(t, false))
	if res.Digest != want {
		t.Fatalf("digest %s, want %s (the expected dump's)\nimage dump:\n%s\nexpected:\n%s", res.Digest, want, imageDump(t, s, res.Digest), threeLayersMerged(t, false))
	}
	if res.Processed() != 3 || strings.Count(log.String(), ": processed (") != 3 {
		t.Errorf("processed %d layers; log:\n%s", res.Processed(), log.String())
	}
	// Every object the image needs is in the store.
	img, err := composefs.ReadImageFile(filepath.Join(s.Dir(), "images", res.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if missing, err := img.MissingObjects(s.ObjectsDir()); err != nil || len(missing) != 0 {
		t.Fatalf("missing objects %v, %v", missing, err)
	}
	// The store keeps it by ref, and knows where its objects came from.
	refs, err := s.Refs()
	if err != nil || refs["oci:"+dir+":v1"] != res.Digest {
		t.Fatalf("refs %v, %v", refs, err)
	}
	if r, err := s.LookupRef("oci:" + dir + ":v1"); err != nil || r.Source.Kind != store.RefKindOCI || r.Source.Ref != "oci:"+dir+":v1" || r.Source.Created.IsZero() {
		t.Fatalf("ref source %+v, %v", r, err)
	}
	srcs, err := s.Provenance(res.Digest)
	if err != nil || len(srcs) != 3 {
		t.Fatalf("provenance %+v, %v", srcs, err)
	}
	// Layer 1's objects in the image: tool (passwd1 was replaced); layer 2:
	// passwd2 (its hardlink to tool carries no content: only layer 1 can
	// provide tool's bytes); layer 3: new.
	wantObjs := [][]string{{ot.VerityHex(t, tool)}, {ot.VerityHex(t, passwd2)}, {ot.VerityHex(t, newBin)}}
	for i, src := range srcs {
		if src.Kind != store.SourceOCILayer || src.Ref != res.Layers[i].DiffID.String() || src.Layout != "oci:"+dir+":v1" ||
			strings.Join(src.Objects, ",") != strings.Join(wantObjs[i], ",") {
			t.Errorf("source %d: %+v, want objects %v", i, src, wantObjs[i])
		}
	}
}

func TestComposefsRSRules(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	s := openStore(t)
	for _, c := range []struct {
		version int
		set     bool
		want    func(string) string
	}{
		{1, false, func(d string) string { return dumpDigest(t, d, composefs.WithMinVersion(1)) }},
		{0, true, func(d string) string { return dumpDigest(t, d) }},
		{2, true, func(d string) string { return rsDigest(t, d) }},
	} {
		opts := Options{Canonical: CanonicalComposefsRS, ErofsVersion: c.version, ErofsVersionSet: c.set}
		res, err := Import(s, ref(t, "oci:"+dir+":v1"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.want(threeLayersMerged(t, true)); res.Digest != want {
			t.Errorf("erofs version %d: digest %s, want %s\nimage dump:\n%s", c.version, res.Digest, want, imageDump(t, s, res.Digest))
		}
		d, _, err := Digest(ref(t, "oci:"+dir+":v1"), opts)
		if err != nil || d != res.Digest {
			t.Errorf("erofs version %d: Digest() = %s, %v; Import made %s", c.version, d, err, res.Digest)
		}
	}
	// No /usr: composefs-rs has no root metadata, and refuses.
	dir2 := filepath.Join(t.TempDir(), "nousr")
	ot.WriteImage(t, dir2, "x", ot.Layer{Tar: ot.Tar(t, ot.Dir("etc/", 0o755))})
	_, err := Import(s, ref(t, "oci:"+dir2), Options{Canonical: CanonicalComposefsRS})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "no /usr directory") {
		t.Errorf("image without /usr: %v", err)
	}
	if _, err := Import(s, ref(t, "oci:"+dir2), Options{ErofsVersion: 2, ErofsVersionSet: true}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("an EROFS version without composefs-rs rules: %v", err)
	}
}

// rsDigest is the composefs-rs V2 digest of the tree a dump describes.
func rsDigest(t *testing.T, dump string) string {
	tree, err := composefs.ParseDump(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	d, err := tree.ComposefsRSDigest()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(d)
}

func TestImportTwiceAddsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	s := openStore(t)
	first, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	objects := countObjects(t, s)
	var log bytes.Buffer
	second, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if second.Digest != first.Digest || countObjects(t, s) != objects || second.Processed() != 0 || second.Stats.Created != 0 {
		t.Fatalf("second import: digest %s (first %s), objects %d (first %d), processed %d, created %d",
			second.Digest, first.Digest, countObjects(t, s), objects, second.Processed(), second.Stats.Created)
	}
	if strings.Count(log.String(), ": already imported (") != 3 {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestUpdatedImageProcessesOnlyNewLayer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ls := threeLayers(t)
	ot.WriteImage(t, dir, "v1", ls[:2]...)
	s := openStore(t)
	if _, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{}); err != nil {
		t.Fatal(err)
	}
	ot.WriteImage(t, dir, "v2", ls...)
	var log bytes.Buffer
	res, err := Import(s, ref(t, "oci:"+dir+":v2"), Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Processed() != 1 || !res.Layers[0].Reused || !res.Layers[1].Reused || res.Layers[2].Reused {
		t.Fatalf("layers %+v", res.Layers)
	}
	if want := dumpDigest(t, threeLayersMerged(t, false)); res.Digest != want {
		t.Fatalf("digest %s, want %s", res.Digest, want)
	}
	for i, want := range []string{"layer 1/3 sha256:", "already imported", "layer 2/3", "already imported", "layer 3/3", "processed"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q (%d):\n%s", want, i, log.String())
		}
	}
	// The same layer compressed otherwise has the same diff_id: reused.
	other := filepath.Join(t.TempDir(), "gz")
	ls[0].Compression = "gzip"
	ot.WriteImage(t, other, "v1", ls[:2]...)
	res, err = Import(s, ref(t, "oci:"+other), Options{})
	if err != nil || res.Processed() != 0 {
		t.Fatalf("recompressed layers: %+v, %v", res, err)
	}
}

func TestRecordReprocessedWhenObjectsGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	s := openStore(t)
	if _, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{}); err != nil {
		t.Fatal(err)
	}
	obj, _ := s.ObjectPath(ot.VerityHex(t, newBin))
	if err := os.Remove(obj); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := Import(s, ref(t, "oci:"+dir+":v1"), Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Processed() != 1 || res.Layers[2].Reused || !strings.Contains(log.String(), "layer 3/3") ||
		!strings.Contains(log.String(), "1 objects of its record are gone from the store: reading the layer again") {
		t.Fatalf("layers %+v\n%s", res.Layers, log.String())
	}
	if _, err := os.Stat(obj); err != nil {
		t.Fatalf("object not restored: %v", err)
	}
	// A record that cannot be parsed is replaced, not fatal.
	if err := os.WriteFile(recordPath(s, res.Layers[0].DiffID), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	res, err = Import(s, ref(t, "oci:"+dir+":v1"), Options{Log: &log})
	if err != nil || res.Processed() != 1 || !strings.Contains(log.String(), "unusable layer record: no record header: reading the layer again") {
		t.Fatalf("%v %+v\n%s", err, res, log.String())
	}
}

func TestCorruptBlobRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		corrupt func(t *testing.T, dir string, img *Image)
		what    string
	}{
		{"layer", func(t *testing.T, dir string, img *Image) {
			flipByte(t, dir, img.Manifest.Layers[1].Digest.Encoded(), -20)
		}, "layer 2/3 blob "},
		// Layers are read at once; the first that fails, in layer order,
		// is the one named.
		{"two-layers", func(t *testing.T, dir string, img *Image) {
			flipByte(t, dir, img.Manifest.Layers[2].Digest.Encoded(), -20)
			flipByte(t, dir, img.Manifest.Layers[1].Digest.Encoded(), -20)
		}, "layer 2/3 blob "},
		{"layer-grown", func(t *testing.T, dir string, img *Image) {
			appendByte(t, dir, img.Manifest.Layers[0].Digest.Encoded())
		}, "layer 1/3 blob "},
		{"config", func(t *testing.T, dir string, img *Image) { flipByte(t, dir, img.Manifest.Config.Digest.Encoded(), 5) }, "config blob "},
		{"manifest", func(t *testing.T, dir string, img *Image) {
			flipByte(t, dir, img.ManifestDescriptor().Digest.Encoded(), 5)
		}, "manifest blob "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			ot.WriteImage(t, dir, "v1", threeLayers(t)...)
			img, err := Inspect(ref(t, "oci:"+dir))
			if err != nil {
				t.Fatal(err)
			}
			c.corrupt(t, dir, img)
			s := openStore(t)
			_, err = Import(s, ref(t, "oci:"+dir), Options{})
			if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), c.what) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want %v naming %q", err, ErrDigestMismatch, c.what)
			}
			t.Log(err)
			if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "images")); len(ents) != 0 {
				t.Errorf("an image was committed: %v", ents)
			}
			if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers")); len(ents) != 0 {
				t.Errorf("layer records were written: %v", ents)
			}
		})
	}
}

func flipByte(t *testing.T, dir, hexDigest string, at int) {
	p := filepath.Join(dir, "blobs", "sha256", hexDigest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendByte(t *testing.T, dir, hexDigest string) {
	f, err := os.OpenFile(filepath.Join(dir, "blobs", "sha256", hexDigest), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
}

// countingReader counts what is read through it and whether it was closed.
type countingReader struct {
	r      io.ReadCloser
	n      int64
	closed bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { c.closed = true; return c.r.Close() }

// TestImportProgress: Options.Progress sees each layer blob read, whole,
// once, and closes it; layers imported before are not read, so not seen.
// The layers are read at once: Progress is called from several goroutines.
func TestImportProgress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	s := openStore(t)
	var mu sync.Mutex
	readers := map[digest.Digest]*countingReader{}
	calls := 0
	opts := Options{Progress: func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser {
		c := &countingReader{r: r}
		mu.Lock()
		defer mu.Unlock()
		calls++
		readers[desc.Digest] = c
		return c
	}}
	res, err := Import(s, ref(t, "oci:"+dir+":v1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 || len(readers) != 3 {
		t.Fatalf("progress saw %d blobs (%d different), want the 3 layers", calls, len(readers))
	}
	img, err := Inspect(ref(t, "oci:"+dir+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, l := range res.Layers {
		c, desc := readers[l.Blob], img.Manifest.Layers[i]
		if c == nil || l.Blob != desc.Digest || c.n != desc.Size || !c.closed {
			t.Errorf("layer %d: blob %s: progress saw %v, want it read whole (%d bytes) and closed", i, l.Blob, c, desc.Size)
			continue
		}
		total += c.n
	}
	if total != res.BytesRead {
		t.Errorf("progress read %d bytes, the import %d", total, res.BytesRead)
	}
	calls = 0
	if _, err := Import(s, ref(t, "oci:"+dir+":v1"), opts); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("a second import read %d layer blobs through progress, want none", calls)
	}
}

// gatedReader holds the first Read of a blob until open is closed (or
// fails after a while): the blob is not read before another one is open.
type gatedReader struct {
	io.ReadCloser
	open   <-chan struct{}
	passed bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if !g.passed {
		select {
		case <-g.open:
			g.passed = true
		case <-time.After(5 * time.Second):
			return 0, errors.New("layer 2 was not opened while layer 1 was being read")
		}
	}
	return g.ReadCloser.Read(p)
}

// TestImportReadsLayersAtOnce: with two CPUs, the second layer is opened
// while the first is still being read (one at a time, the import fails
// with the gate's error), and the image has the digest Digest computes.
func TestImportReadsLayersAtOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	img, err := Inspect(ref(t, "oci:"+dir+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan struct{})
	var once sync.Once
	opts := Options{Progress: func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser {
		switch desc.Digest {
		case img.Manifest.Layers[0].Digest:
			return &gatedReader{ReadCloser: r, open: second}
		case img.Manifest.Layers[1].Digest:
			once.Do(func() { close(second) })
		}
		return r
	}}
	res, err := Import(openStore(t), ref(t, "oci:"+dir+":v1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := Digest(ref(t, "oci:"+dir+":v1"), Options{})
	if err != nil || res.Digest != want {
		t.Fatalf("imported %s, Digest %s (%v)", res.Digest, want, err)
	}
}

// TestImportReadsBiggestLayerFirst: layers are read biggest blob first
// (one at a time on one CPU, in that order), applied in layer order: the
// image is the one Digest computes.
func TestImportReadsBiggestLayerFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1",
		ot.Layer{Tar: ot.Tar(t, ot.Dir("./", 0o755), ot.File("small", "s\n"))},
		ot.Layer{Tar: ot.Tar(t, ot.File("big", ot.Body('b', 100000)))},
		ot.Layer{Tar: ot.Tar(t, ot.File("medium", ot.Body('m', 10000)), ot.Whiteout(".wh.small"))},
	)
	img, err := Inspect(ref(t, "oci:"+dir+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	index := map[digest.Digest]int{}
	for i, l := range img.Manifest.Layers {
		index[l.Digest] = i
	}
	var mu sync.Mutex
	var order []int
	opts := Options{Progress: func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser {
		mu.Lock()
		order = append(order, index[desc.Digest])
		mu.Unlock()
		return r
	}}
	res, err := Import(openStore(t), ref(t, "oci:"+dir+":v1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[1 2 0]" {
		t.Errorf("layers read in the order %v, want [1 2 0] (biggest first)", order)
	}
	want, _, err := Digest(ref(t, "oci:"+dir+":v1"), Options{})
	if err != nil || res.Digest != want {
		t.Fatalf("imported %s, Digest %s (%v)", res.Digest, want, err)
	}
	for i, l := range res.Layers {
		if l.Blob != img.Manifest.Layers[i].Digest {
			t.Errorf("layer %d applied as %s, want %s (layer order)", i, l.Blob, img.Manifest.Layers[i].Digest)
		}
	}
}
