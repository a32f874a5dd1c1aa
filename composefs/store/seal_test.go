package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A seal is recorded per image, shown by Images, and removed by gc with
// its image.
func TestSeal(t *testing.T) {
	g := newGCStore(t)
	s := g.s
	if seal, err := s.Seal(g.refd); err != nil || seal != nil {
		t.Fatalf("no seal yet: %+v, %v", seal, err)
	}
	want := Seal{Source: "docker://r/img:v1", Manifest: "sha256:00", Signatures: []string{"cosign"}, Verified: true, Signer: "test", KeyID: "ab"}
	for _, d := range []string{g.refd, g.unused} {
		if err := s.SetSeal(d, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Seal(g.refd)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("Seal = %+v, %v", got, err)
	}
	infos, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if sealed := info.Seal != nil; sealed != (info.Digest == g.refd || info.Digest == g.unused) {
			t.Errorf("image %s: seal %+v", info.Digest, info.Seal)
		}
	}
	if err := s.SetSeal("not-a-digest", want); err == nil {
		t.Error("SetSeal took an invalid digest")
	}
	if _, err := s.GC(WithInUse(func() ([]string, error) { return []string{g.used}, nil })); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "seals", g.unused+".json")); !os.IsNotExist(err) {
		t.Errorf("gc kept the seal of the removed image %s: %v", g.unused, err)
	}
	if seal, _ := s.Seal(g.refd); seal == nil {
		t.Error("gc removed the seal of a kept image")
	}
}
