package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage/ocitest"
)

// layoutRegistry serves the images of an OCI layout as the distribution
// API does (GET /v2/REPO/manifests/{TAG|DIGEST}, /v2/REPO/blobs/DIGEST) and
// counts the blob GETs.
type layoutRegistry struct {
	dir  string
	mu   sync.Mutex
	gets map[string]int
}

func (l *layoutRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	repoRest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	var kind, ref string
	if i := strings.LastIndex(repoRest, "/manifests/"); i >= 0 {
		kind, ref = "manifests", repoRest[i+len("/manifests/"):]
	} else if i := strings.LastIndex(repoRest, "/blobs/"); i >= 0 {
		kind, ref = "blobs", repoRest[i+len("/blobs/"):]
	} else {
		http.NotFound(w, r)
		return
	}
	var desc v1.Descriptor
	if kind == "manifests" && !strings.Contains(ref, ":") {
		idx := readJSON[v1.Index](l.dir, "index.json")
		for _, m := range idx.Manifests {
			if m.Annotations[v1.AnnotationRefName] == ref {
				desc = m
			}
		}
		if desc.Digest == "" {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
			return
		}
	} else {
		desc.Digest = digest.Digest(ref)
	}
	data, err := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", desc.Digest.Encoded()))
	if err != nil {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, http.StatusNotFound)
		return
	}
	if kind == "manifests" {
		w.Header().Set("Content-Type", readJSON[v1.Manifest](l.dir, "blobs/sha256/"+desc.Digest.Encoded()).MediaType)
		w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	} else if r.Method == http.MethodGet {
		l.mu.Lock()
		l.gets[ref]++
		l.mu.Unlock()
	}
	w.Write(data)
}

func readJSON[T any](dir, name string) T {
	var v T
	data, _ := os.ReadFile(filepath.Join(dir, name))
	_ = json.Unmarshal(data, &v)
	return v
}

func serveLayout(t *testing.T, dir string) (*layoutRegistry, string) {
	t.Helper()
	l := &layoutRegistry{dir: dir, gets: map[string]int{}}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return l, strings.TrimPrefix(srv.URL, "http://")
}

// insecure is --tls-verify=false with an empty registries.conf (the
// host's must not change what the tests see).
func insecure(t *testing.T) Options {
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := false
	return Options{TLSVerify: &f, RegistriesConf: conf}
}

// A registry image imports to the digest its layout gives, and a second
// image sharing a layer fetches only its other layer.
func TestImportFromRegistry(t *testing.T) {
	dir := t.TempDir()
	base := ocitest.Layer{Tar: ocitest.Tar(t, ocitest.Dir("etc", 0o755), ocitest.File("etc/base", ocitest.Body(1, 5000))), Compression: "gzip"}
	top := ocitest.Layer{Tar: ocitest.Tar(t, ocitest.File("etc/top", ocitest.Body(2, 7000))), Compression: "zstd"}
	m1 := ocitest.WriteImage(t, dir, "v1", base)
	m2 := ocitest.WriteImage(t, dir, "v2", base, top)
	reg, host := serveLayout(t, dir)
	stats := Register(insecure(t))

	want, _, err := ociimage.Digest(ociimage.Ref{Transport: ociimage.TransportDir, Path: dir, Tag: "v2"}, ociimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img:v1"}, ociimage.Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img:v2"}, ociimage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want {
		t.Errorf("digest %s, the layout's is %s", res.Digest, want)
	}
	if res.Manifest != m2.Digest || res.Processed() != 1 {
		t.Errorf("manifest %s (want %s), %d layers read (want 1)", res.Manifest, m2.Digest, res.Processed())
	}
	m := readJSON[v1.Manifest](dir, "blobs/sha256/"+m2.Digest.Encoded())
	if g0, g1 := reg.gets[m.Layers[0].Digest.String()], reg.gets[m.Layers[1].Digest.String()]; g0 != 1 || g1 != 1 {
		t.Errorf("blob GETs: base %d, top %d (want 1 each)", g0, g1)
	}
	if stats.Blobs != 2 || stats.Bytes != m.Layers[0].Size+m.Layers[1].Size {
		t.Errorf("stats %d blobs %d bytes", stats.Blobs, stats.Bytes)
	}
	// The provenance pins the repository to the manifest digest.
	srcs, err := st.Provenance(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if srcs[1].Layout != "docker://"+host+"/img@"+m2.Digest.String() || srcs[1].Blob != m.Layers[1].Digest.String() {
		t.Errorf("provenance %+v", srcs[1])
	}
	// A re-pull of an unchanged manifest reads nothing: no blob GET.
	again, err := ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img:v2"}, ociimage.Options{})
	if err != nil || again.Digest != want || again.Processed() != 0 || again.BytesRead != 0 {
		t.Fatalf("re-pull: %v, %+v", err, again)
	}
	// With other rules it is another image: the layers are applied again
	// (from their records, still no blob GET).
	rs, err := ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img:v2"}, ociimage.Options{Canonical: ociimage.CanonicalComposefsRS, ErofsVersion: 0, ErofsVersionSet: true})
	if err == nil && rs.Digest == want {
		t.Errorf("composefs-rs rules gave the oci rules' image %s", want)
	}
	if g0, g1 := reg.gets[m.Layers[0].Digest.String()], reg.gets[m.Layers[1].Digest.String()]; g0 != 1 || g1 != 1 {
		t.Errorf("blob GETs after the re-pulls: base %d, top %d (want 1 each)", g0, g1)
	}
	// By digest: the same image.
	res1, err := ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img@" + m1.Digest.String()}, ociimage.Options{})
	if err != nil || res1.Manifest != m1.Digest {
		t.Fatalf("by digest: %v, %+v", err, res1)
	}
}

// A blob the registry serves changed is refused with its digest, and the
// store keeps no image.
func TestImportCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	m1 := ocitest.WriteImage(t, dir, "v1", ocitest.Layer{Tar: ocitest.Tar(t, ocitest.File("a", ocitest.Body(3, 9000))), Compression: "gzip"})
	m := readJSON[v1.Manifest](dir, "blobs/sha256/"+m1.Digest.Encoded())
	p := filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Encoded())
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o644)
	_, host := serveLayout(t, dir)
	Register(insecure(t))
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ociimage.Import(st, ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img:v1"}, ociimage.Options{})
	if !errors.Is(err, ociimage.ErrDigestMismatch) || !strings.Contains(err.Error(), m.Layers[0].Digest.String()) {
		t.Fatalf("err = %v, want a digest mismatch naming %s", err, m.Layers[0].Digest)
	}
	if ds, _ := st.ImageDigests(); len(ds) != 0 {
		t.Errorf("images after a refused import: %v", ds)
	}
}

// A digest reference is checked: a registry serving another manifest for
// it is refused.
func TestPinnedDigestChecked(t *testing.T) {
	dir := t.TempDir()
	ocitest.WriteImage(t, dir, "v1", ocitest.Layer{Tar: ocitest.Tar(t, ocitest.File("a", "x"))})
	m2 := ocitest.WriteImage(t, dir, "v2", ocitest.Layer{Tar: ocitest.Tar(t, ocitest.File("b", "y"))})
	_, host := serveLayout(t, dir)
	Register(insecure(t))
	// Serve v2's manifest bytes under a wrong digest name.
	bad := digest.FromString("not the manifest")
	data, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m2.Digest.Encoded()))
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", bad.Encoded()), data, 0o644)
	_, err := ociimage.Inspect(ociimage.Ref{Transport: ociimage.TransportDocker, Path: host + "/img@" + bad.String()})
	if err == nil {
		t.Fatal("a manifest that does not match the pinned digest was accepted")
	}
}

func TestExplain(t *testing.T) {
	opts := insecure(t)
	for _, c := range []struct{ in, want string }{
		{"pinging container registry h:1: Get \"https://h:1/v2/\": http: server gave HTTP response to HTTPS client", "registry h:1: it speaks plain HTTP: use --tls-verify=false (or insecure = true in registries.conf)"},
		{"pinging container registry h:1: Get \"https://h:1/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority", "registry h:1: its TLS certificate is not trusted (certificate signed by unknown authority): give its CA with --cert-dir DIR, or use --tls-verify=false"},
		{"reading manifest v1 in h:1/img: manifest unknown", "registry h:1: docker://h:1/img:v1: reading manifest v1 in h:1/img: manifest unknown"},
	} {
		if got := opts.Explain("h:1/img:v1", errors.New(c.in)).Error(); got != c.want {
			t.Errorf("Explain(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}
