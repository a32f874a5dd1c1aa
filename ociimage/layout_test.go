package ociimage

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	ot "github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
)

func TestParseRef(t *testing.T) {
	wd, _ := os.Getwd()
	for _, c := range []struct {
		in   string
		want Ref
		err  bool
	}{
		{in: "oci:/srv/img", want: Ref{TransportDir, "/srv/img", ""}},
		{in: "oci:/srv/img:latest", want: Ref{TransportDir, "/srv/img", "latest"}},
		// podman save names images in full: the tag is everything after
		// the path, colons included.
		{in: "oci:/srv/img:localhost/app:v1", want: Ref{TransportDir, "/srv/img", "localhost/app:v1"}},
		{in: "oci:rel", want: Ref{TransportDir, filepath.Join(wd, "rel"), ""}},
		{in: "oci-archive:/srv/img.tar:v2", want: Ref{TransportArchive, "/srv/img.tar", "v2"}},
		{in: "oci:", err: true},
		{in: "docker://busybox", want: Ref{TransportDocker, "busybox", ""}},
		{in: "docker://127.0.0.1:5000/a/b:v1", want: Ref{TransportDocker, "127.0.0.1:5000/a/b:v1", ""}},
		{in: "docker://", err: true},
		{in: "docker:busybox", err: true},
		{in: "/srv/img", err: true},
	} {
		got, err := ParseRef(c.in)
		if (err != nil) != c.err || (err == nil && got != c.want) {
			t.Errorf("ParseRef(%q) = %+v, %v", c.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadReference) {
			t.Errorf("ParseRef(%q): %v is not ErrBadReference", c.in, err)
		}
	}
	if s := (Ref{TransportDocker, "h:5000/img:v1", ""}).String(); s != "docker://h:5000/img:v1" {
		t.Errorf("String() = %q", s)
	}
	if s := (Ref{TransportDir, "/srv/img", "a:b"}).String(); s != "oci:/srv/img:a:b" {
		t.Errorf("String() = %q", s)
	}
}

func simpleLayer(t *testing.T) ot.Layer {
	return ot.Layer{Tar: ot.Tar(t, ot.Dir("usr/", 0o755), ot.File("usr/f", ot.Body('f', 100)))}
}

func TestResolve(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "one", simpleLayer(t))
	ot.WriteImage(t, dir, "two", simpleLayer(t))
	s := openStore(t)
	for _, c := range []struct {
		ref  string
		want string
		is   error
	}{
		{"oci:" + dir, "the layout has 2 images; name one as oci:" + dir + ":NAME (names: one, two)", ErrNoImage},
		{"oci:" + dir + ":three", `no image named "three" (names: one, two)`, ErrNoImage},
		{"oci:" + dir + "/nonexistent", "no such file or directory", nil},
		{"oci-archive:" + dir, "not a tar archive", ErrInvalidLayout},
	} {
		_, err := Import(s, ref(t, c.ref), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want %q", c.ref, err, c.want)
		}
	}
	if _, err := Import(s, ref(t, "oci:"+dir+":two"), Options{}); err != nil {
		t.Fatal(err)
	}
	// A missing blob, a bad layout version.
	os.RemoveAll(filepath.Join(dir, "blobs"))
	if _, err := Import(s, ref(t, "oci:"+dir+":two"), Options{}); !errors.Is(err, ErrInvalidLayout) || !strings.Contains(err.Error(), "manifest blob sha256:") || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("missing blob: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644)
	if _, err := Import(s, ref(t, "oci:"+dir+":two"), Options{}); !errors.Is(err, ErrInvalidLayout) || !strings.Contains(err.Error(), `imageLayoutVersion "2.0.0"`) {
		t.Errorf("layout version: %v", err)
	}
}

// An index in the layout's index: the manifest for this machine is found.
func TestNestedIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	md := ot.WriteImage(t, dir, "x", simpleLayer(t))
	other := ot.AddBlob(t, dir, v1.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`))
	other.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
	md.Annotations = nil
	md.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	sub := v1.Index{Manifests: []v1.Descriptor{other, md}}
	sub.SchemaVersion = 2
	id := ot.AddBlob(t, dir, v1.MediaTypeImageIndex, ot.JSON(t, sub))
	id.Annotations = map[string]string{v1.AnnotationRefName: "multi"}
	top := v1.Index{Manifests: []v1.Descriptor{id}}
	top.SchemaVersion = 2
	os.WriteFile(filepath.Join(dir, "index.json"), ot.JSON(t, top), 0o644)
	s := openStore(t)
	res, err := Import(s, ref(t, "oci:"+dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest != md.Digest || res.RefName != "oci:"+dir+":multi" {
		t.Errorf("manifest %s (want %s), ref %s", res.Manifest, md.Digest, res.RefName)
	}
	// Sealing rewrites the nested index and index.json.
	old, updated, err := Annotate(ref(t, "oci:"+dir+":multi"), map[string]string{"k": "v"}, "", "")
	if err != nil || old.Digest != md.Digest || updated.Digest == md.Digest {
		t.Fatalf("annotate: %v, %v, %v", old, updated, err)
	}
	img, err := Inspect(ref(t, "oci:"+dir+":multi"))
	if err != nil || img.ManifestDescriptor().Digest != updated.Digest || img.Manifest.Annotations["k"] != "v" ||
		img.Chain[0].Digest == id.Digest || img.ManifestDescriptor().Platform.Architecture != runtime.GOARCH {
		t.Fatalf("after annotate: %+v, %v", img, err)
	}
}

func TestArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	ot.WriteImage(t, dir, "v1", threeLayers(t)...)
	archive := filepath.Join(t.TempDir(), "img.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	s := openStore(t)
	res, err := Import(s, ref(t, "oci-archive:"+archive+":v1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := dumpDigest(t, threeLayersMerged(t, false)); res.Digest != want {
		t.Fatalf("digest %s, want %s", res.Digest, want)
	}
	if _, _, err := Annotate(ref(t, "oci-archive:"+archive+":v1"), nil, "", ""); !errors.Is(err, ErrUnsupported) {
		t.Errorf("annotate an archive: %v", err)
	}
}

// A layout path too long for a ref name is kept by its manifest digest.
func TestLongRefName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 150), strings.Repeat("e", 50))
	md := ot.WriteImage(t, dir, "v1", simpleLayer(t))
	s := openStore(t)
	res, err := Import(s, ref(t, "oci:"+dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := s.Refs()
	if err != nil || res.RefName != "oci@"+md.Digest.String() || refs[res.RefName] != res.Digest {
		t.Fatalf("ref %q, refs %v, %v", res.RefName, refs, err)
	}
}

func TestRefusedEntries(t *testing.T) {
	for _, c := range []struct {
		name string
		tar  []byte
		want string
	}{
		{"dotdot", ot.Tar(t, ot.File("usr/../../etc/passwd", "x")), `entry name "usr/../../etc/passwd" contains ".."`},
		{"dangling-hardlink", ot.Tar(t, ot.Hardlink("a", "nonexistent")), "/a: hardlink target /nonexistent does not exist"},
		{"hardlink-to-dir", ot.Tar(t, ot.Dir("d/", 0o755), ot.Hardlink("a", "d")), "/a: hardlink target /d is a directory"},
		{"file-as-parent", ot.Tar(t, ot.File("f", "x"), ot.File("f/g", "y")), "/f/g: parent f is not a directory"},
		{"socket-type", ot.Tar(t, ot.Entry{Name: "x", Type: 'Z', Mode: 0o644}), "tar entry type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			ot.WriteImage(t, dir, "v1", ot.Layer{Tar: c.tar})
			_, err := Import(openStore(t), ref(t, "oci:"+dir), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "layer 1/1") {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestAnnotateKeepsFields(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	md := ot.WriteImage(t, dir, "v1", simpleLayer(t))
	ot.WriteImage(t, dir, "v2", simpleLayer(t)) // the same manifest under another name
	set := map[string]string{"composefs.merged.erofs.v1.fsverity-sha256-12": "aa", "composefs.merged.erofs.v1.fsverity-sha256-12.sig": "bb"}
	_, first, err := Annotate(ref(t, "oci:"+dir+":v1"), set, "composefs.merged.erofs.v1.", "")
	if err != nil {
		t.Fatal(err)
	}
	// Sealing again replaces the annotations: no stale .sig next to .cosign.
	set2 := map[string]string{"composefs.merged.erofs.v1.fsverity-sha256-12": "cc", "composefs.merged.erofs.v1.fsverity-sha256-12.cosign": "dd"}
	old, second, err := Annotate(ref(t, "oci:"+dir+":v1"), set2, "composefs.merged.erofs.v1.", first.Digest)
	if err != nil || old.Digest != first.Digest {
		t.Fatal(old, err)
	}
	// What was digested must be what is annotated.
	if _, _, err := Annotate(ref(t, "oci:"+dir+":v1"), set2, "", first.Digest); !errors.Is(err, ErrNoImage) || !strings.Contains(err.Error(), "the layout changed meanwhile") {
		t.Fatalf("annotate a changed manifest: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", second.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(data, &m)
	ann, _ := m["annotations"].(map[string]any)
	if len(ann) != 2 || ann["composefs.merged.erofs.v1.fsverity-sha256-12"] != "cc" || m["layers"] == nil || m["config"] == nil || m["mediaType"] != v1.MediaTypeImageManifest {
		t.Fatalf("manifest %s", data)
	}
	// v2 still names the original manifest; its blob is still there.
	var idx v1.Index
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Digest != second.Digest || idx.Manifests[1].Digest != md.Digest || idx.Manifests[0].Annotations[v1.AnnotationRefName] != "v1" {
		t.Fatalf("index.json %s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", md.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
}
