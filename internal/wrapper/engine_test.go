package wrapper

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
)

// What create verifies when the engine names the image: the helper is
// asked for exactly that image of this container, in the configured
// stores, and its seal replaces the container's; nothing named, no
// helper; a helper failure refuses the container.
func TestVerifiedAnnotations(t *testing.T) {
	key := attest.DefaultDigestAnnotation
	cfg := config.Defaults()
	cfg.StoreDir = t.TempDir()
	cfg.ContainerdAddress, cfg.ContainerdNamespace, cfg.ContainersStorage = "/run/c.sock", "ns", "/cs"
	for _, tc := range []struct {
		name     string
		ann      string
		answer   *engineimage.Manifest
		fail     error
		wantReq  *engineimage.Request
		want     map[string]string
		wantErr  string
		notAsked bool
	}{
		{
			name:     "podman: nothing named, annotations as they are",
			ann:      `{"io.container.manager": "libpod", "` + key + `": "` + signed + `"}`,
			want:     map[string]string{"io.container.manager": "libpod", key: signed},
			notAsked: true,
		},
		{
			name:   "containerd names a sealed image",
			ann:    `{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "reg/app:1"}`,
			answer: &engineimage.Manifest{Digest: "sha256:m", Config: "sha256:c", Annotations: map[string]string{key: signed, key + ".cosign": "SIG"}},
			wantReq: &engineimage.Request{Image: engineimage.Image{Engine: "containerd", Name: "reg/app:1"}, ContainerID: "ctr1",
				ContainerdAddress: "/run/c.sock", ContainerdNamespace: "ns", StorageRoot: "/cs"},
			want: map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "reg/app:1", key: signed, key + ".cosign": "SIG"},
		},
		{
			name:    "CRI-O names a sealed image; the pod names another digest",
			ann:     `{"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": "reg/app:1", "io.kubernetes.cri-o.ImageRef": "abc", "` + key + `": "` + other + `"}`,
			answer:  &engineimage.Manifest{Annotations: map[string]string{key: signed, key + ".cosign": "SIG"}},
			wantErr: "composefs annotation conflicts with the image's seal: the container's annotation " + key + " names composefs digest " + other + ", but cri-o image reg/app:1 (abc) is sealed with " + signed + " (" + key + "): remove the annotation, or run the image it names",
		},
		{
			name:    "the engine's store cannot be read",
			ann:     `{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "reg/app:1"}`,
			fail:    errors.New("containerd /run/c.sock: image reg/app:1: not found"),
			wantErr: "cannot read the engine's image: containerd image reg/app:1: containerd /run/c.sock: image reg/app:1: not found",
		},
	} {
		dir := t.TempDir()
		writeConfig(t, dir, "rootfs", tc.ann)
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"), bundlejson.JSON)
		if err != nil {
			t.Fatal(err)
		}
		var asked *engineimage.Request
		env := &runtimeEnv{cfg: cfg, log: logging.Discard(), readManifest: func(req *engineimage.Request) (*engineimage.Manifest, error) {
			asked = req
			return tc.answer, tc.fail
		}, containerdImage: func(req *engineimage.Request) (*ctrdapi.ContainerImage, error) {
			return &ctrdapi.ContainerImage{Name: req.Image.Name}, nil // no target: no cache
		}}
		got, err := verifiedAnnotations(env, b, "ctr1")
		if tc.notAsked != (asked == nil) {
			t.Errorf("%s: helper asked: %+v", tc.name, asked)
		}
		if tc.wantReq != nil && *asked != *tc.wantReq {
			t.Errorf("%s: request %+v, want %+v", tc.name, *asked, *tc.wantReq)
		}
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: err = %v\nwant %s", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("%s: = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// When the engine names a sealed image that the store lacks, its bytes
// come from the engine's store (the helper's import, under the import
// lock, expecting the sealed digest), never from the bundle's root
// filesystem; a failed import refuses the container.
func TestEnsureImageFromEngine(t *testing.T) {
	img := engineimage.Image{Engine: engineimage.Containerd, Name: "reg/app:1"}
	for _, tc := range []struct {
		name    string
		present bool
		fail    error
		commit  bool
		wantErr string
		asked   int
	}{
		{name: "in the store already: no helper", present: true},
		{name: "imported", commit: true, asked: 1},
		{name: "import refused", fail: errors.New("layer 1/1 blob sha256:ab: blob does not match its digest"), asked: 1,
			wantErr: "composefs image not available: composefs digest " + signed + " is not in the store /store, and importing containerd image reg/app:1 from the engine's store failed: layer 1/1 blob sha256:ab: blob does not match its digest"},
		{name: "helper claims success, no image", asked: 1,
			wantErr: "composefs image not available: composefs digest " + signed + ": the import of containerd image reg/app:1 from the engine's store left no image in the store /store"},
	} {
		st := &fakeStore{dir: "/store", images: map[string]bool{signed: tc.present}}
		asked := 0
		env := &runtimeEnv{log: logging.Discard(), sealedImage: &engineimage.Request{Image: img, ContainerID: "c1"},
			readManifest: func(req *engineimage.Request) (*engineimage.Manifest, error) {
				asked++
				if !st.locked {
					t.Errorf("%s: import without the import lock", tc.name)
				}
				if req.Op != engineimage.OpImport || req.Store != "/store" || req.Expect != signed || req.Image != img || req.ContainerID != "c1" {
					t.Errorf("%s: request %+v", tc.name, req)
				}
				if tc.commit {
					st.images[signed] = true
				}
				return &engineimage.Manifest{Log: []string{"layer 1/1: processed"}}, tc.fail
			}}
		// A bundle whose root filesystem exists: it must not be used.
		dir := t.TempDir()
		writeConfig(t, dir, dir, `{}`)
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"), bundlejson.JSON)
		if err != nil {
			t.Fatal(err)
		}
		err = ensureImage(env, st, b, digestOf(signed))
		if asked != tc.asked || st.imports != 0 {
			t.Errorf("%s: helper asked %d times, rootfs imports %d", tc.name, asked, st.imports)
		}
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
			t.Errorf("%s: err = %v\nwant %s", tc.name, err, tc.wantErr)
		}
	}
}

// A warm create of an image CRI-O names by its id runs no helper: the
// seal is cached in the store by that id. A cache entry of another image
// id is not used; the conflict rule applies to a cached seal too.
func TestSealCache(t *testing.T) {
	key := attest.DefaultDigestAnnotation
	const id = "d4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93"
	cfg := config.Defaults()
	cfg.StoreDir = t.TempDir()
	asked := 0
	env := &runtimeEnv{cfg: cfg, log: logging.Discard(), readManifest: func(req *engineimage.Request) (*engineimage.Manifest, error) {
		asked++
		return &engineimage.Manifest{Digest: "sha256:m", Config: "sha256:" + id, Annotations: map[string]string{key: signed, key + ".cosign": "SIG", "other": "x"}}, nil
	}}
	create := func(ann string) (map[string]string, error) {
		t.Helper()
		dir := t.TempDir()
		writeConfig(t, dir, "rootfs", ann)
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"), bundlejson.JSON)
		if err != nil {
			t.Fatal(err)
		}
		return verifiedAnnotations(env, b, "c1")
	}
	crio := `{"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": "reg/app:1", "io.kubernetes.cri-o.ImageRef": "` + id + `"}`
	want := map[string]string{"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": "reg/app:1", "io.kubernetes.cri-o.ImageRef": id, key: signed, key + ".cosign": "SIG"}
	for i := 1; i <= 2; i++ {
		got, err := create(crio)
		if err != nil || !maps.Equal(got, want) || asked != 1 {
			t.Fatalf("create %d: %v, %v; helper asked %d times", i, got, err, asked)
		}
	}
	entry := filepath.Join(cfg.StoreDir, "engine-seals", "cri-o-"+id)
	if data, err := os.ReadFile(entry); err != nil || strings.Contains(string(data), `"other"`) {
		t.Fatalf("cache entry %s: %s, %v (want the seal only)", entry, data, err)
	}
	if _, err := create(strings.TrimSuffix(crio, "}") + `, "` + key + `": "` + other + `"}`); !errors.Is(err, engineimage.ErrConflict) {
		t.Fatalf("cached seal, another digest in the annotations: %v", err)
	}
	// An entry that is not of this image id is not used.
	if err := os.WriteFile(entry, []byte(`{"config": "sha256:`+other+`", "annotations": {"`+key+`": "`+other+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := create(crio); err != nil || got[key] != signed || asked != 2 {
		t.Fatalf("entry of another id: %v, %v; helper asked %d times", got, err, asked)
	}
}

// containerd passes no image id: create reads the image record's target
// from containerd's records (no helper) and caches the seal by it. A
// target moved to another image (a tag pulled again) misses; so does an
// entry of another image id; failing to read the records refuses.
func TestContainerdSealCache(t *testing.T) {
	key := attest.DefaultDigestAnnotation
	const (
		t1  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		t2  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		id1 = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		id2 = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	)
	cfg := config.Defaults()
	cfg.StoreDir = t.TempDir()
	// containerd's records: the tag's target and image id.
	target, id := t1, id1
	var lookupErr error
	seals := map[string]string{t1: signed, t2: other}
	asked := 0
	env := &runtimeEnv{cfg: cfg, log: logging.Discard(),
		containerdImage: func(req *engineimage.Request) (*ctrdapi.ContainerImage, error) {
			return &ctrdapi.ContainerImage{Name: req.Image.Name, ImageID: id, Lookup: id, Target: ctrdapi.Descriptor{Digest: target}}, lookupErr
		},
		readManifest: func(req *engineimage.Request) (*engineimage.Manifest, error) {
			asked++
			return &engineimage.Manifest{Digest: "sha256:m", Config: id, Target: target, Annotations: map[string]string{key: seals[target]}}, nil
		}}
	create := func() (map[string]string, error) {
		t.Helper()
		dir := t.TempDir()
		writeConfig(t, dir, "rootfs", `{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "reg/app:1"}`)
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"), bundlejson.JSON)
		if err != nil {
			t.Fatal(err)
		}
		return verifiedAnnotations(env, b, "c1")
	}
	for i := 1; i <= 2; i++ {
		got, err := create()
		if err != nil || got[key] != signed || asked != 1 {
			t.Fatalf("create %d: %v, %v; helper asked %d times", i, got, err, asked)
		}
	}
	entry := filepath.Join(cfg.StoreDir, "engine-seals", "containerd-"+strings.TrimPrefix(t1, "sha256:"))
	if data, err := os.ReadFile(entry); err != nil || !strings.Contains(string(data), `"target":"`+t1+`"`) {
		t.Fatalf("cache entry %s: %s, %v", entry, data, err)
	}
	// The tag moved: another target, the helper asked, its seal used.
	target, id = t2, id2
	if got, err := create(); err != nil || got[key] != other || asked != 2 {
		t.Fatalf("moved tag: %v, %v; helper asked %d times", got, err, asked)
	}
	// The container's record names another image id than the entry's.
	target, id = t1, id2
	if _, err := create(); err != nil || asked != 3 {
		t.Fatalf("entry of another image id: %v; helper asked %d times", err, asked)
	}
	// An entry that does not state its target is not used.
	target, id = t1, id1
	if err := os.WriteFile(entry, []byte(`{"config": "`+id1+`", "annotations": {"`+key+`": "`+other+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := create(); err != nil || got[key] != signed || asked != 4 {
		t.Fatalf("entry without a target: %v, %v; helper asked %d times", got, err, asked)
	}
	// containerd's records unreadable: refused, cached or not.
	lookupErr = errors.New("containerd /run/c.sock: container c1: Unavailable: gone")
	if _, err := create(); err == nil || err.Error() != "cannot read the engine's image: containerd image reg/app:1: containerd /run/c.sock: container c1: Unavailable: gone" {
		t.Fatalf("records unreadable: %v", err)
	}
}

func TestSealedAnnotations(t *testing.T) {
	img := engineimage.Image{Engine: engineimage.Containerd, Name: "reg/app:1"}
	key := attest.DefaultDigestAnnotation
	imageSeal := map[string]string{key: signed, key + attest.CosignSuffix: "SIG-OF-IMAGE", "org.opencontainers.image.title": "app"}
	for _, tc := range []struct {
		name      string
		container map[string]string
		image     map[string]string
		want      map[string]string
		sealed    bool
		err       string
		conflict  bool
	}{
		{
			name:      "sealed image, no composefs annotations on the container",
			container: map[string]string{"io.kubernetes.cri.image-name": "reg/app:1"},
			image:     imageSeal,
			want:      map[string]string{"io.kubernetes.cri.image-name": "reg/app:1", key: signed, key + attest.CosignSuffix: "SIG-OF-IMAGE"},
			sealed:    true,
		},
		{
			name:      "the container repeats the digest: the image's signatures count",
			container: map[string]string{key: signed, key + attest.SigSuffix: "SIG-OF-POD"},
			image:     imageSeal,
			want:      map[string]string{key: signed, key + attest.CosignSuffix: "SIG-OF-IMAGE"},
			sealed:    true,
		},
		{
			name:      "the container names another digest",
			container: map[string]string{key: other, key + attest.CosignSuffix: "SIG-OF-OTHER"},
			image:     imageSeal,
			err:       "composefs annotation conflicts with the image's seal: the container's annotation " + key + " names composefs digest " + other + ", but containerd image reg/app:1 is sealed with " + signed + " (" + key + "): remove the annotation, or run the image it names",
			conflict:  true,
		},
		{
			name:      "the same hex under another algorithm is another digest",
			container: map[string]string{attest.DigestAnnotationPrefix + "sha256-16": signed},
			image:     imageSeal,
			err:       "names composefs digest " + signed + ", but containerd image reg/app:1 is sealed with " + signed + " (" + key + ")",
			conflict:  true,
		},
		{
			name:      "an image without a seal: the container's annotations as they are",
			container: map[string]string{key: other, key + attest.CosignSuffix: "SIG"},
			image:     map[string]string{"org.opencontainers.image.title": "app"},
			want:      map[string]string{key: other, key + attest.CosignSuffix: "SIG"},
		},
		{
			name:      "a malformed seal in the image is refused",
			container: map[string]string{},
			image:     map[string]string{key: "NOT-HEX"},
			err:       "containerd image reg/app:1: seal in its manifest: malformed annotation " + key + ": digest \"NOT-HEX\" is not lowercase hex",
		},
		{
			name:      "a malformed composefs annotation on the container is refused",
			container: map[string]string{key: "NOT-HEX"},
			image:     imageSeal,
			err:       "malformed annotation " + key + ": digest \"NOT-HEX\"",
		},
	} {
		got, isSealed, err := sealedAnnotations(img, tc.container, tc.image)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.err)
			}
			if errors.Is(err, engineimage.ErrConflict) != tc.conflict {
				t.Errorf("%s: errors.Is(ErrConflict) = %v", tc.name, !tc.conflict)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !maps.Equal(got, tc.want) || isSealed != tc.sealed {
			t.Errorf("%s: Seal = %v, %v; want %v, %v", tc.name, got, isSealed, tc.want, tc.sealed)
		}
	}
}
