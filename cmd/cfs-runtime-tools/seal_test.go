package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestSealCommand(t *testing.T) {
	dir := ociLayout(t)
	keys := t.TempDir()
	if err := os.Chmod(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(keys, "k.key"), filepath.Join(keys, "k.pub")
	sigShell(t, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
	sigShell(t, "openssl", "pkey", "-in", key, "-pubout", "-out", pub)
	policy := sigWriteFile(t, filepath.Join(keys, "policy.toml"), "[[signer]]\nname = \"t\"\npublic_key = \""+pub+"\"\n")
	store := filepath.Join(t.TempDir(), "store")
	ref := "oci:" + dir + ":v1"

	for _, canonical := range []string{"oci", "composefs-rs"} {
		imported, errOut, code := runSplit(t, "import", "--store", store, "--canonical", canonical, ref)
		if code != 0 {
			t.Fatalf("import: %s", errOut)
		}
		out, errOut, code := runSplit(t, "seal", "--key", key, "--format", "json", "--canonical", canonical, ref)
		if code != 0 {
			t.Fatalf("seal: exit %d: %s", code, errOut)
		}
		var ann map[string]string
		if err := json.Unmarshal([]byte(out), &ann); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		// The sealed digest is the imported image's: create finds it.
		if d := ann[attest.DefaultDigestAnnotation]; d != strings.TrimSpace(imported) || ann[attest.DefaultDigestAnnotation+attest.CosignSuffix] == "" || len(ann) != 2 {
			t.Fatalf("%s: annotations %v, imported %s", canonical, ann, imported)
		}
		if !strings.Contains(errOut, "sealed "+ref+": composefs digest sha256:"+ann[attest.DefaultDigestAnnotation]+", manifest sha256:") {
			t.Errorf("stderr %q", errOut)
		}
		// The manifest carries exactly these annotations now.
		img, err := ociimage.Inspect(ociimage.Ref{Transport: ociimage.TransportDir, Path: dir, Tag: "v1"})
		if err != nil || len(img.Manifest.Annotations) != 2 {
			t.Fatalf("manifest annotations %v, %v", img.Manifest.Annotations, err)
		}
		for k, v := range ann {
			if img.Manifest.Annotations[k] != v {
				t.Errorf("manifest annotation %s = %q, want %q", k, img.Manifest.Annotations[k], v)
			}
		}
		// The signature is the one `cfs-runtime verify` (create's check) trusts.
		annFile := sigWriteFile(t, filepath.Join(t.TempDir(), "ann.json"), out)
		if out, code, err := runAttestCLI(t, "verify", "--policy", policy, "--annotations", annFile); code != 0 || !strings.Contains(out, "verdict: trusted") {
			t.Fatalf("verify: exit %d, %v\n%s", code, err, out)
		}
	}

	// The podman form: flags for podman run.
	out, _, code := runSplit(t, "seal", "--key", key, ref)
	if code != 0 || !strings.HasPrefix(out, "--annotation "+attest.DefaultDigestAnnotation+"=") || !strings.Contains(out, " --annotation "+attest.DefaultDigestAnnotation+attest.CosignSuffix+"=") {
		t.Fatalf("podman flags: %q", out)
	}

	archive := filepath.Join(t.TempDir(), "a.tar")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--key", key, "oci-archive:" + archive}, 2, "seal: oci-archive:" + archive + ": only oci:DIR layouts can be sealed (extract the archive and seal oci:DIR)"},
		{[]string{"--key", key, dir}, 2, "seal: want exactly one oci:DIR[:NAME] or docker://REF argument"},
		{[]string{"--key", key, "--format", "xml", ref}, 2, `seal: unknown --format "xml"`},
		{[]string{"--key", filepath.Join(keys, "none"), ref}, 1, "seal: open " + filepath.Join(keys, "none") + ": no such file or directory"},
		{[]string{ref}, 2, `Required flag "key" not set`},
	} {
		_, errOut, code := runSplit(t, append([]string{"seal"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("seal %v: exit %d, %q; want %d, %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// TestSealRefName: --ref-name puts the image's full reference, normalized
// as the scopes check reads it, into the sealed manifest (podman copies
// it into the container's annotations); the annotations printed stay the
// seal's; a reference by digest or no reference at all is refused.
func TestSealRefName(t *testing.T) {
	dir := ociLayout(t)
	keys := t.TempDir()
	key := filepath.Join(keys, "k.key")
	sigShell(t, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
	ref := "oci:" + dir + ":v1"
	inspect := func() map[string]string {
		t.Helper()
		img, err := ociimage.Inspect(ociimage.Ref{Transport: ociimage.TransportDir, Path: dir, Tag: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		return img.Manifest.Annotations
	}
	for _, c := range []struct{ arg, want string }{
		{"127.0.0.1:5000/app/a:1", "127.0.0.1:5000/app/a:1"},
		{"registry.example.com/app/web", "registry.example.com/app/web:latest"},
		{"busybox", "docker.io/library/busybox:latest"},
	} {
		out, errOut, code := runSplit(t, "seal", "--key", key, "--format", "json", "--ref-name", c.arg, ref)
		if code != 0 {
			t.Fatalf("seal --ref-name %s: exit %d: %s", c.arg, code, errOut)
		}
		var ann map[string]string
		if err := json.Unmarshal([]byte(out), &ann); err != nil || len(ann) != 2 {
			t.Fatalf("printed annotations %v (%v): want the seal's two", ann, err)
		}
		got := inspect()
		if got[v1.AnnotationRefName] != c.want || len(got) != 3 {
			t.Errorf("--ref-name %s: manifest annotations %v, want ref.name %s and the seal's two", c.arg, got, c.want)
		}
	}
	// Sealing again without --ref-name keeps the name: the seal's own
	// annotations are what a new seal replaces.
	if _, errOut, code := runSplit(t, "seal", "--key", key, ref); code != 0 {
		t.Fatalf("seal: %s", errOut)
	}
	if got := inspect()[v1.AnnotationRefName]; got != "docker.io/library/busybox:latest" {
		t.Errorf("ref.name after sealing again: %q", got)
	}
	for _, c := range []struct{ arg, want string }{
		{"127.0.0.1:5000/app/a@sha256:" + strings.Repeat("a", 64), `seal: --ref-name "127.0.0.1:5000/app/a@sha256:` + strings.Repeat("a", 64) + `": a reference by digest cannot name the sealed manifest (sealing changes its digest): give HOST/REPO[:TAG]`},
		{"Registry.example.com/App", `seal: --ref-name: invalid image reference "Registry.example.com/App": invalid repository path component "App"`},
		{"", `seal: --ref-name: invalid image reference "": empty`},
	} {
		_, errOut, code := runSplit(t, "seal", "--key", key, "--ref-name", c.arg, ref)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("seal --ref-name %q: exit %d, %q; want 2, %q", c.arg, code, errOut, c.want)
		}
	}
}
