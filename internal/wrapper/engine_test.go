package wrapper

import (
	"errors"
	"maps"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
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
			ann:     `{"io.kubernetes.cri-o.ImageName": "reg/app:1", "io.kubernetes.cri-o.ImageRef": "abc", "` + key + `": "` + other + `"}`,
			answer:  &engineimage.Manifest{Annotations: map[string]string{key: signed, key + ".cosign": "SIG"}},
			wantErr: "composefs annotation conflicts with the image's seal: the container's annotation " + key + " names composefs digest " + other + ", but cri-o image reg/app:1 (abc) is sealed with " + signed + " (" + key + "): remove the annotation, or run the image it names",
		},
		{
			name:    "the engine's store cannot be read",
			ann:     `{"io.kubernetes.cri.image-name": "reg/app:1"}`,
			fail:    errors.New("containerd /run/c.sock: image reg/app:1: not found"),
			wantErr: "cannot read the engine's image: containerd image reg/app:1: containerd /run/c.sock: image reg/app:1: not found",
		},
	} {
		dir := t.TempDir()
		writeConfig(t, dir, "rootfs", tc.ann)
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var asked *engineimage.Request
		env := &runtimeEnv{cfg: cfg, log: logging.Discard(), readManifest: func(req *engineimage.Request) (*engineimage.Manifest, error) {
			asked = req
			return tc.answer, tc.fail
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
		b, err := bundle.Load(dir, filepath.Join(dir, "config.json"))
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
