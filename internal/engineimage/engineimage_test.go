package engineimage

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
)

const (
	key    = attest.DigestAnnotationPrefix + "sha256-12"
	sealed = "aa00000000000000000000000000000000000000000000000000000000000000"
	other  = "bb00000000000000000000000000000000000000000000000000000000000000"
)

// What the engines put in config.json, as seen with real ones: containerd
// 1.6.20's CRI (crictl), CRI-O's documented keys, podman 4.3.1 (which
// copies the manifest's annotations and names no image).
func TestFromAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want Image
		ok   bool
	}{
		{"containerd container", map[string]string{ContainerdContainerType: "container", ContainerdImageName: "127.0.0.1:5000/app:1", "io.kubernetes.cri.sandbox-id": "x"},
			Image{Engine: Containerd, Name: "127.0.0.1:5000/app:1"}, true},
		{"containerd sandbox", map[string]string{ContainerdContainerType: "sandbox", "io.kubernetes.cri.sandbox-id": "x"}, Image{}, false},
		{"containerd sandbox claiming an image", map[string]string{ContainerdContainerType: "sandbox", ContainerdImageName: "app:1"}, Image{}, false},
		{"cri-o", map[string]string{CRIOImageName: "docker.io/library/app:1", CRIOImageRef: "d4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93", "io.container.manager": "cri-o"},
			Image{Engine: CRIO, Name: "docker.io/library/app:1", Ref: "d4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93"}, true},
		{"cri-o sandbox", map[string]string{CRIOContainerType: "sandbox", CRIOImageName: "registry.k8s.io/pause:3.9", CRIOImageRef: "e6f1"}, Image{}, false},
		{"cri-o, ref only", map[string]string{CRIOImageRef: "d43285"}, Image{Engine: CRIO, Ref: "d43285"}, true},
		{"podman", map[string]string{"io.container.manager": "libpod", key: sealed, "io.podman.annotations.init": "FALSE"}, Image{}, false},
		{"none", nil, Image{}, false},
	} {
		got, ok := FromAnnotations(tc.ann)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: FromAnnotations = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSeal(t *testing.T) {
	img := Image{Engine: Containerd, Name: "reg/app:1"}
	imageSeal := map[string]string{key: sealed, key + attest.CosignSuffix: "SIG-OF-IMAGE", "org.opencontainers.image.title": "app"}
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
			want:      map[string]string{"io.kubernetes.cri.image-name": "reg/app:1", key: sealed, key + attest.CosignSuffix: "SIG-OF-IMAGE"},
			sealed:    true,
		},
		{
			name:      "the container repeats the digest: the image's signatures count",
			container: map[string]string{key: sealed, key + attest.SigSuffix: "SIG-OF-POD"},
			image:     imageSeal,
			want:      map[string]string{key: sealed, key + attest.CosignSuffix: "SIG-OF-IMAGE"},
			sealed:    true,
		},
		{
			name:      "the container names another digest",
			container: map[string]string{key: other, key + attest.CosignSuffix: "SIG-OF-OTHER"},
			image:     imageSeal,
			err:       "composefs annotation conflicts with the image's seal: the container's annotation " + key + " names composefs digest " + other + ", but containerd image reg/app:1 is sealed with " + sealed + " (" + key + "): remove the annotation, or run the image it names",
			conflict:  true,
		},
		{
			name:      "the same hex under another algorithm is another digest",
			container: map[string]string{attest.DigestAnnotationPrefix + "sha256-16": sealed},
			image:     imageSeal,
			err:       "names composefs digest " + sealed + ", but containerd image reg/app:1 is sealed with " + sealed + " (" + key + ")",
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
		got, isSealed, err := Seal(img, tc.container, tc.image)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.err)
			}
			if errors.Is(err, ErrConflict) != tc.conflict {
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
