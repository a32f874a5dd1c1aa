//go:build !vmtest

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// import --hash sha512 stores an fsverity-sha512-12 image: its digest is
// digest --hash sha512's and sign --algorithm fsverity-sha512-12's of the
// same tree, the SHA-512 fs-verity digest of the image object (as
// fsverity-utils computes it); images, fsck (by prefix) and gc know it.
func TestImportSHA512(t *testing.T) {
	e := newStoreEnv(t)
	img, err := runInfo(t, "import", "--hash", "sha512", e.tree)
	img = strings.TrimSpace(img)
	if err != nil || len(img) != 128 {
		t.Fatalf("import --hash sha512: %q, %v", img, err)
	}
	if d, err := runInfo(t, "digest", "--hash", "sha512", e.tree); err != nil || strings.TrimSpace(d) != img {
		t.Errorf("digest --hash sha512: %q, %v; import printed %s", d, err, img)
	}
	obj := filepath.Join(e.store, "objects", img[:2], img[2:])
	out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg=sha512", obj).Output()
	if err != nil || strings.TrimSpace(string(out)) != img {
		t.Errorf("fsverity digest of the image object: %s, %v", out, err)
	}
	f := newSignFixture(t)
	if out, _, err := runAttestCLI(t, "sign", "--key", f.key, "--algorithm", "fsverity-sha512-12", "--format", "annotations", e.tree); err != nil ||
		!strings.HasPrefix(out, "composefs.merged.erofs.v1.fsverity-sha512-12="+img+"\n") {
		t.Errorf("sign --algorithm fsverity-sha512-12 TREE: %q, %v", out, err)
	}
	// verify accepts the signature of the SHA-512 digest, and refuses it
	// over another digest.
	if os.Geteuid() == 0 {
		ann, _, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", "--algorithm", "fsverity-sha512-12", e.tree)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "ann.json")
		sigWriteFile(t, p, ann)
		if out, code, err := runAttestCLI(t, "verify", "--annotations", p, "--policy", f.policy); code != 0 || !strings.HasSuffix(out, "verdict: trusted\n") ||
			!strings.Contains(out, "composefs annotation: composefs.merged.erofs.v1.fsverity-sha512-12 (128 bytes)") {
			t.Errorf("verify: %d %v\n%s", code, err, out)
		}
		sigWriteFile(t, p, strings.Replace(ann, img, strings.Repeat("0", 128), 1))
		if out, code, _ := runAttestCLI(t, "verify", "--annotations", p, "--policy", f.policy); code != 1 || !strings.Contains(out, "verdict: refused: composefs digest sha512:"+strings.Repeat("0", 128)) {
			t.Errorf("verify of another digest: %d\n%s", code, out)
		}
	}
	// sign takes a digest prefix of an image of the store.
	if out, _, err := runAttestCLI(t, "sign", "--key", f.key, "--format", "annotations", img[:8]); err != nil ||
		!strings.HasPrefix(out, "cfs-runtime: note: "+img[:8]+" is image "+img+"\ncomposefs.merged.erofs.v1.fsverity-sha512-12="+img+"\n") {
		t.Errorf("sign PREFIX: %q, %v", out, err)
	}
	if out, code, err := runAttestCLI(t, "sign", "--key", f.key, "ffff0000"); code != 1 || err.Error() != "sign: no image digest starts with ffff0000: not in the store" {
		t.Errorf("sign of an unknown prefix: %d, %v\n%s", code, err, out)
	}
	// Every file's object is named by its SHA-512 digest.
	for _, name := range []string{"a", "b", "c"} {
		out, err := exec.Command("fsverity", "digest", "--compact", "--hash-alg=sha512", filepath.Join(e.tree, name)).Output()
		if err != nil {
			t.Fatal(err)
		}
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(e.store, "objects", d[:2], d[2:])); err != nil {
			t.Errorf("object of %s: %v", name, err)
		}
	}
	out2, err := runInfo(t, "images")
	if err != nil || !strings.Contains(out2, "\n"+img+" ") {
		t.Errorf("images: %v\n%s", err, out2)
	}
	if out, err := runInfo(t, "fsck", "sha512:"+img[:12]); err != nil || !strings.HasPrefix(out, img+": clean (3 objects") {
		t.Errorf("fsck: %q, %v", out, err)
	}
	// A --hash that is neither, for a tree and for an OCI image.
	if _, err := runInfo(t, "import", "--hash", "md5", e.tree); exitCode(err) != 2 || err.Error() != `import: unknown --hash "md5" (want sha256 or sha512)` {
		t.Errorf("import --hash md5: %v", err)
	}
	if _, err := runInfo(t, "import", "--hash", "md5", "oci:/nonexistent"); exitCode(err) != 2 || err.Error() != `import: unknown --hash "md5" (want sha256 or sha512)` {
		t.Errorf("import --hash md5 oci: %v", err)
	}
}

// An OCI image as a SHA-512 image: seal --hash sha512 signs the digest
// import --hash sha512 stores (both canonicalizations); the layer records
// of each algorithm are kept apart, so that a SHA-256 import of the same
// layout after it still reuses its own.
func TestSealImportSHA512(t *testing.T) {
	dir := ociLayout(t)
	f := newSignFixture(t)
	store := filepath.Join(t.TempDir(), "store")
	ref := "oci:" + dir + ":v1"
	for _, canonical := range []string{"oci", "composefs-rs"} {
		imported, errOut, code := runSplit(t, "import", "--store", store, "--hash", "sha512", "--canonical", canonical, ref)
		imported = strings.TrimSpace(imported)
		if code != 0 || len(imported) != 128 {
			t.Fatalf("import --hash sha512: exit %d %q: %s", code, imported, errOut)
		}
		out, errOut, code := runSplit(t, "seal", "--key", f.key, "--hash", "sha512", "--format", "annotations", "--canonical", canonical, ref)
		if code != 0 || !strings.HasPrefix(out, "composefs.merged.erofs.v1.fsverity-sha512-12="+imported+"\n") {
			t.Fatalf("seal --hash sha512 (%s): exit %d %s\n%s", canonical, code, out, errOut)
		}
		if out, err := runInfo(t, "fsck", "--store", store, imported); err != nil || !strings.HasPrefix(out, imported+": clean (") {
			t.Fatalf("fsck: %q, %v", out, err)
		}
	}
	records, err := filepath.Glob(filepath.Join(store, "layers", "*.sha512"))
	if err != nil || len(records) != 2 {
		t.Fatalf("SHA-512 layer records %v, %v", records, err)
	}
	_, errOut, code := runSplit(t, "import", "--store", store, ref)
	if code != 0 || !strings.Contains(errOut, "2 layers, 2 read") {
		t.Fatalf("SHA-256 import after the SHA-512 ones: exit %d: %s", code, errOut)
	}
	_, errOut, code = runSplit(t, "import", "--store", store, "--hash", "sha512", ref)
	if code != 0 || !strings.Contains(errOut, "2 layers, 0 read") {
		t.Fatalf("SHA-512 import again: exit %d: %s", code, errOut)
	}
	if _, _, code := runSplit(t, "seal", "--key", f.key, "--hash", "md5", ref); code != 2 {
		t.Errorf("seal --hash md5: exit %d", code)
	}
}
