//go:build linux

package hooks

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
)

// ociHook is the oci-hooks(5) 1.0.0 schema (podman, CRI-O).
type ociHook struct {
	Version string `json:"version"`
	Hook    struct {
		Path    string   `json:"path"`
		Args    []string `json:"args"`
		Env     []string `json:"env"`
		Timeout *int     `json:"timeout"`
	} `json:"hook"`
	When struct {
		Always        *bool             `json:"always"`
		Annotations   map[string]string `json:"annotations"`
		Commands      []string          `json:"commands"`
		HasBindMounts *bool             `json:"hasBindMounts"`
		Or            bool              `json:"or"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// matches is how podman and CRI-O evaluate when.annotations
// (containers/common pkg/hooks/1.0.0 When.Match): for every key pattern,
// some annotation's key must match it and that annotation's value the value
// pattern; both are unanchored Go regular expressions.
func (h ociHook) matches(t *testing.T, annotations map[string]string) bool {
	t.Helper()
	for kp, vp := range h.When.Annotations {
		found := false
		for k, v := range annotations {
			if regexp.MustCompile(kp).MatchString(k) && regexp.MustCompile(vp).MatchString(v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestContribOCIHook(t *testing.T) {
	data, err := os.ReadFile("../contrib/oci-hooks.d/cfs-runtime.json")
	if err != nil {
		t.Fatal(err)
	}
	var h ociHook
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("not oci-hooks(5) 1.0.0 JSON: %v", err)
	}
	if h.Version != "1.0.0" || h.Hook.Path != "/usr/local/bin/cfs-runtime" ||
		len(h.Hook.Args) != 3 || h.Hook.Args[0] != "cfs-runtime" || h.Hook.Args[1] != "hook" || h.Hook.Args[2] != "createRuntime" ||
		len(h.Stages) != 1 || h.Stages[0] != "createRuntime" {
		t.Errorf("hook %+v", h)
	}
	if h.When.Always != nil || h.When.Or || h.When.HasBindMounts != nil || len(h.When.Commands) != 0 || len(h.When.Annotations) != 1 {
		t.Errorf("when %+v: want exactly one annotation condition", h.When)
	}

	digest := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name string
		ann  map[string]string
		runs bool
	}{
		{"digest", map[string]string{attest.DefaultDigestAnnotation: digest, attest.DefaultDigestAnnotation + attest.CosignSuffix: "c2ln"}, true},
		{"sha512-16", map[string]string{attest.DigestAnnotationPrefix + "sha512-16": digest}, true},
		// create refuses these: the hook must run to refuse them too
		{"signature-without-digest", map[string]string{attest.DefaultDigestAnnotation + attest.SigSuffix: "c2ln"}, true},
		{"empty-digest", map[string]string{attest.DefaultDigestAnnotation: ""}, true},
		{"uppercase-key", map[string]string{"Composefs.Merged.EROFS.v1.fsverity-sha256-12": digest}, true},
		{"among-others", map[string]string{"io.podman.annotations.init": "FALSE", attest.DefaultDigestAnnotation: digest}, true},
		// not a composefs digest: the hook does not run
		{"none", map[string]string{}, false},
		{"other-annotations", map[string]string{"io.kubernetes.cri.container-type": "sandbox"}, false},
		{"dots-are-literal", map[string]string{"composefsXmerged.erofs.v1.fsverity-sha256-12": digest}, false},
		{"anchored", map[string]string{"x." + attest.DefaultDigestAnnotation: digest}, false},
		{"other-version", map[string]string{"composefs.merged.erofs.v2.fsverity-sha256-12": digest}, false},
	} {
		if got := h.matches(t, tc.ann); got != tc.runs {
			t.Errorf("%s: hook runs = %v, want %v (annotations %v)", tc.name, got, tc.runs, tc.ann)
		}
	}
}
