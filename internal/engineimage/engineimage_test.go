package engineimage

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	key    = "composefs.merged.erofs.v1.fsverity-sha256-12"
	sealed = "aa00000000000000000000000000000000000000000000000000000000000000"
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
		{"cri-o sandbox", map[string]string{"io.container.manager": "cri-o", CRIOContainerType: "sandbox", CRIOImageName: "registry.k8s.io/pause:3.9", CRIOImageRef: "e6f1"}, Image{}, false},
		{"cri-o, ref only", map[string]string{"io.container.manager": "cri-o", CRIOImageRef: "d43285"}, Image{Engine: CRIO, Ref: "d43285"}, true},
		// Without the engine's own marks: a hand-made bundle names no image.
		{"image-name alone", map[string]string{ContainerdImageName: "reg/app:1"}, Image{}, false},
		{"cri-o ImageName alone", map[string]string{CRIOImageName: "reg/app:1", CRIOImageRef: "d43285"}, Image{}, false},
		{"cri-o keys under podman", map[string]string{"io.container.manager": "libpod", CRIOImageName: "reg/app:1"}, Image{}, false},
		{"podman", map[string]string{"io.container.manager": "libpod", key: sealed, "io.podman.annotations.init": "FALSE"}, Image{}, false},
		{"none", nil, Image{}, false},
	} {
		got, ok := FromAnnotations(tc.ann)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: FromAnnotations = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// The front may use the package: it links nothing outside the standard
// library's errors and fmt.
func TestSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, ".") && p != "github.com/cfs-runtime/cfs-runtime/internal/engineimage" {
			t.Errorf("engineimage links %s", p)
		}
	}
}
