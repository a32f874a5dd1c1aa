package imageref

import (
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// Expected values follow docker/distribution's ParseNormalizedNamed +
// TagNameOnly, which containers/image uses.
func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[::1]:5000/a", "[::1]:5000/a:latest"},
		{"[fe80::1]/a/b:1", "[fe80::1]/a/b:1"},
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"index.docker.io/foo/bar", "docker.io/foo/bar:latest"},
		{"foo/bar", "docker.io/foo/bar:latest"},
		{"localhost/app", "localhost/app:latest"},
		{"localhost:5000/a/b:t", "localhost:5000/a/b:t"},
		{"registry.example.com/app/web@" + dgst, "registry.example.com/app/web@" + dgst},
		{"registry.example.com/app/web:v1@" + dgst, "registry.example.com/app/web@" + dgst},
		{"Registry.Example.com/app", "Registry.Example.com/app:latest"},
		{"quay.io/a__b/c-d.e", "quay.io/a__b/c-d.e:latest"},
		{"quay.io/a---b", "quay.io/a---b:latest"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "foo/Bar", "UPPER", "a//b", "a/b:", "a/b@sha256:xyz", "a/b:-t", "-a.com/b", "a.com:/b", "a/.b", "a/b_", "quay.io/a___b", "a b", "a.com/b:t:u"} {
		if got, err := Normalize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

// The scopes containers/image searches for a reference
// (docker/policyconfiguration.DockerReferenceNamespaces and the identity):
// the reference, its repository, each parent namespace, the registry, then
// "*." and each parent domain of the host without its port.
func TestMatchScope(t *testing.T) {
	ref := "a.b.example.com:5000/ns/sub/repo:v1"
	for _, tc := range []struct {
		scope, ref string
		want       bool
	}{
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", true},
		{"docker.io/library/busybox", "docker.io/library/busybox:latest", true},
		{"docker.io/library", "docker.io/library/busybox:latest", true},
		{"docker.io", "docker.io/library/busybox:latest", true},
		{"*.io", "docker.io/library/busybox:latest", true},
		{"docker.io/library/busybox:notlatest", "docker.io/library/busybox:latest", false},
		{"docker.io/library/busy", "docker.io/library/busybox:latest", false},
		{"docker.io/lib", "docker.io/library/busybox:latest", false},
		{"*.docker.io", "docker.io/library/busybox:latest", false},
		{"busybox", "docker.io/library/busybox:latest", false},
		{ref, ref, true},
		{"a.b.example.com:5000/ns/sub/repo", ref, true},
		{"a.b.example.com:5000/ns/sub", ref, true},
		{"a.b.example.com:5000/ns", ref, true},
		{"a.b.example.com:5000", ref, true},
		{"a.b.example.com", ref, false}, // the port is part of the registry
		{"*.b.example.com", ref, true},
		{"*.example.com", ref, true},
		{"*.com", ref, true},
		{"*.a.b.example.com", ref, false},
		{"*.xample.com", ref, false},
		{"a.b.example.com:5000/ns/sub/repo:v2", ref, false},
		{"a.b.example.com:5000/ns/su", ref, false},
		{"registry.example.com/app/web@" + dgst, "registry.example.com/app/web@" + dgst, true},
		{"registry.example.com/app", "registry.example.com/app/web@" + dgst, true},
		{"registry.example.com/app/web:v1", "registry.example.com/app/web@" + dgst, false},
		{"evil.com/registry.example.com", "evil.com/registry.example.com/app:latest", true},
		{"registry.example.com", "evil.com/registry.example.com/app:latest", false},
		{"*.example.com", "registry.example.com.evil.net/app:latest", false},
		{"*.example.com", "example.com/app:latest", false},
	} {
		if got := MatchScope(tc.scope, tc.ref); got != tc.want {
			t.Errorf("MatchScope(%q, %q) = %v, want %v", tc.scope, tc.ref, got, tc.want)
		}
	}
}

func TestCheckScope(t *testing.T) {
	for _, s := range []string{"docker.io", "localhost", "localhost:5000", "quay.io/ns", "docker.io/library/busybox", "docker.io/library/busybox:1", "*.example.com", "registry.example.com/app/web@" + dgst} {
		if err := CheckScope(s); err != nil {
			t.Errorf("CheckScope(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "busybox", "library/busybox", "docker.io/busybox", "*", "*.", "*.example.com/app", "registry.*.com", "quay.io/app/*", "*.example.com:5000", "quay.io/App", "index.docker.io/a/b"} {
		if err := CheckScope(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckScope(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestFromAnnotations(t *testing.T) {
	for _, tc := range []struct {
		a       map[string]string
		want    string
		wantErr error
	}{
		{nil, "", nil},
		{map[string]string{ContainerdAnnotation: "docker.io/library/busybox:latest"}, "docker.io/library/busybox:latest", nil},
		{map[string]string{CRIOAnnotation: "quay.io/a/b:1"}, "quay.io/a/b:1", nil},
		{map[string]string{RefNameAnnotation: "v1"}, "", nil}, // a bare tag names no repository
		{map[string]string{RefNameAnnotation: "quay.io/a/b"}, "quay.io/a/b:latest", nil},
		{map[string]string{ContainerdAnnotation: "busybox", RefNameAnnotation: "docker.io/library/busybox:latest"}, "docker.io/library/busybox:latest", nil},
		{map[string]string{ContainerdAnnotation: "quay.io/a/b:1", CRIOAnnotation: "quay.io/a/c:1"}, "", ErrConflict},
		{map[string]string{ContainerdAnnotation: "Not/Valid"}, "", ErrInvalid},
	} {
		got, err := FromAnnotations(tc.a)
		if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("FromAnnotations(%v) = %q, %v; want %q, %v", tc.a, got, err, tc.want, tc.wantErr)
		}
	}
}

// FuzzNormalize holds Normalize to docker/distribution's reference
// package (ParseNormalizedNamed + TagNameOnly), which containers/image and
// containerd use: where it accepts, Normalize gives the same name, tag and
// digest; where it refuses, so does Normalize. (Two differences on
// purpose: a reference with both tag and digest keeps the digest only, as
// the digest is what is pulled; and no digest check beyond ALG:HEX with 32
// or more hex digits, as the reference is only matched, never resolved.)
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"busybox", "busybox:1.36", "library/busybox", "docker.io/busybox", "index.docker.io/foo/bar", "localhost/app", "localhost:5000/a/b:t",
		"registry.example.com/app/web@" + dgst, "Registry.Example.com/app", "quay.io/a__b/c-d.e", "quay.io/a---b", "foo/Bar", "a//b", "a/b:", "-a.com/b", "a.com:/b",
		"quay.io/a___b", "a.com/b:t:u", "a.b.example.com:5000/ns/sub/repo:v1", "[::1]:5000/a", "a_b.com/c", "a-.com/c", "localhost:/x", "x:5000/y", "UPPER/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Normalize(s)
		named, rerr := reference.ParseNormalizedNamed(s)
		if rerr != nil {
			if err == nil && !strings.Contains(s, "@") {
				t.Fatalf("Normalize(%q) = %q, distribution refuses: %v", s, got, rerr)
			}
			return
		}
		if _, ok := named.(reference.Digested); ok {
			return // digest checks differ on purpose (see above)
		}
		if reference.Domain(named) == "" {
			// distribution's grammar reads a first component that is
			// not a valid host ("a_b.com/c") as a path without domain;
			// Normalize refuses it as a registry.
			return
		}
		want := reference.TagNameOnly(named).String()
		if err != nil || got != want {
			t.Fatalf("Normalize(%q) = %q, %v; distribution: %q", s, got, err, want)
		}
	})
}
