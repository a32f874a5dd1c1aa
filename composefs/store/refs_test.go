package store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRefsOldForm: refs written before sources were recorded (the digest
// alone) are read, kept by gc and rewritten in the new form when set again.
func TestRefsOldForm(t *testing.T) {
	s := newStore(t)
	d1, d2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	dir := filepath.Join(s.Dir(), "refs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for name, d := range map[string]string{"oci:/srv/layout:app": d1, "busybox": d2, "oci@sha256:0123": d1} {
		p := filepath.Join(dir, url.PathEscape(name))
		if err := os.WriteFile(p, []byte(d+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	refs, err := s.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Name: "busybox", Digest: d2, Source: RefSource{Kind: RefKindTag, Created: mtime}},
		{Name: "oci:/srv/layout:app", Digest: d1, Source: RefSource{Kind: RefKindOCI, Ref: "oci:/srv/layout:app", Created: mtime}},
		{Name: "oci@sha256:0123", Digest: d1, Source: RefSource{Kind: RefKindOCI, Ref: "oci@sha256:0123", Created: mtime}},
	}
	if fmt.Sprint(refs) != fmt.Sprint(want) {
		t.Fatalf("refs:\n%v\nwant\n%v", refs, want)
	}
	m, err := s.Refs()
	if err != nil || len(m) != 3 || m["busybox"] != d2 {
		t.Fatalf("Refs: %v, %v", m, err)
	}
	// Set again from the same source: rewritten in the new form.
	if err := s.SetRef("busybox", d2, RefSource{Kind: RefKindTag}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "busybox"))
	if err != nil || !strings.HasPrefix(string(data), `{"name":"busybox","digest":"`+d2+`","source":{"kind":"tag","ref":"","created":"`) {
		t.Fatalf("rewritten ref: %s, %v", data, err)
	}
}

func TestSetRefKeepsCreated(t *testing.T) {
	s := newStore(t)
	d, other := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.SetRef("/srv/tree", d, RefSource{Kind: RefKindTree, Ref: "/srv/tree", Created: first}); err != nil {
		t.Fatal(err)
	}
	// A re-import of the same tree with the same result: unchanged.
	if err := s.SetRef("/srv/tree", d, RefSource{Kind: RefKindTree, Ref: "/srv/tree"}); err != nil {
		t.Fatal(err)
	}
	r, err := s.LookupRef("/srv/tree")
	if err != nil || !r.Source.Created.Equal(first) {
		t.Fatalf("after a re-import: %+v, %v", r, err)
	}
	// The tree changed: the ref moves, with a new time.
	if err := s.SetRef("/srv/tree", other, RefSource{Kind: RefKindTree, Ref: "/srv/tree"}); err != nil {
		t.Fatal(err)
	}
	r, err = s.LookupRef("/srv/tree")
	if err != nil || r.Digest != other || time.Since(r.Source.Created) > time.Minute {
		t.Fatalf("after a changed tree: %+v, %v", r, err)
	}
}

func TestRefNames(t *testing.T) {
	s := newStore(t)
	d := strings.Repeat("ab", 32)
	long := "/" + strings.Repeat("very/deep/", 60) + "rootfs" // > 200 bytes escaped
	for _, name := range []string{"busybox", "oci:/srv/x:latest", long, "with space/ü"} {
		if err := s.SetRef(name, d, RefSource{Kind: RefKindTag}); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		r, err := s.LookupRef(name)
		if err != nil || r.Name != name || r.Digest != d {
			t.Fatalf("%q: %+v, %v", name, r, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "refs"))
	for _, e := range ents {
		if len(e.Name()) > maxRefFile {
			t.Errorf("ref file name of %d bytes", len(e.Name()))
		}
	}
	refs, err := s.ListRefs()
	if err != nil || len(refs) != 4 || refs[0].Name != long {
		t.Fatalf("ListRefs: %v, %v", refs, err)
	}
	for _, name := range []string{"", ".hidden", "a\nb", strings.Repeat("x", maxRefName+1), d, "sha256:" + d} {
		if err := s.SetRef(name, d, RefSource{}); !errors.Is(err, ErrBadRefName) {
			t.Errorf("SetRef(%q): %v, want ErrBadRefName", name, err)
		}
	}
	if err := s.SetRef("x", "abc", RefSource{}); !errors.Is(err, ErrBadDigest) {
		t.Errorf("SetRef of a bad digest: %v", err)
	}
	// A file under another ref's name is refused, not believed.
	if err := os.Rename(filepath.Join(s.Dir(), "refs", "busybox"), filepath.Join(s.Dir(), "refs", "alpine")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListRefs(); err == nil || !strings.Contains(err.Error(), `holds the ref "busybox", which is not its name`) {
		t.Errorf("misnamed ref file: %v", err)
	}
}

func TestRemoveRef(t *testing.T) {
	s := newStore(t)
	d := strings.Repeat("ab", 32)
	if err := s.SetRef("a", d, RefSource{Kind: RefKindTag}); err != nil {
		t.Fatal(err)
	}
	r, err := s.RemoveRef("a")
	if err != nil || r.Name != "a" || r.Digest != d {
		t.Fatalf("RemoveRef: %+v, %v", r, err)
	}
	if _, err := s.RemoveRef("a"); !errors.Is(err, ErrNoRef) || err.Error() != `no such ref: "a"` {
		t.Fatalf("RemoveRef again: %v", err)
	}
	if refs, err := s.ListRefs(); err != nil || len(refs) != 0 {
		t.Fatalf("refs left: %v, %v", refs, err)
	}
}

func TestResolvePrefix(t *testing.T) {
	s := newStore(t)
	tree, _ := fsckTree(t, 1)
	img, err := s.ImportTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	// Two refs to digests not imported (yet), sharing their first 6 hex
	// digits; one shares img's first digit.
	a := img[:1] + "00000" + strings.Repeat("1", 58)
	b := img[:1] + "00000" + strings.Repeat("2", 58)
	if img[1:6] == "00000" {
		t.Skip("image digest collides with the test's")
	}
	for n, d := range map[string]string{"a": a, "b": b} {
		if err := s.SetRef(n, d, RefSource{Kind: RefKindTag}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ in, want, err string }{
		{img, img, ""},
		{img[:4], img, ""},
		{img[:12], img, ""},
		{a[:7], a, ""},
		{a[:6], "", a[:6] + " matches 2 images; give more hex digits"},
		{img[:1] + "000", "", img[:1] + "000 matches 2 images; give more hex digits"},
		{img[:3], "", `"` + img[:3] + `" is not a digest or a digest prefix (at least 4 lower-case hex digits)`},
		{"ABCDEF01", "", `"ABCDEF01" is not a digest or a digest prefix (at least 4 lower-case hex digits)`},
		{"zzzz", "", `"zzzz" is not a digest or a digest prefix (at least 4 lower-case hex digits)`},
	} {
		got, err := s.ResolvePrefix(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ResolvePrefix(%s): %s, %v; want %s", tc.in, got, err, tc.want)
			}
		} else if err == nil || !strings.HasSuffix(err.Error(), tc.err) {
			t.Errorf("ResolvePrefix(%s): %s, %v; want error %q", tc.in, got, err, tc.err)
		}
	}
	if _, err := s.ResolvePrefix(a[:6]); !errors.Is(err, ErrAmbiguousPrefix) {
		t.Errorf("ambiguous: %v", err)
	}
	var none string
	for _, c := range "0123456789abcdef" {
		if c != rune(img[0]) {
			none = string(c) + "fff"
			break
		}
	}
	if _, err := s.ResolvePrefix(none); !errors.Is(err, ErrNotFound) || err.Error() != "no image digest starts with "+none+": not in the store" {
		t.Errorf("no match: %v", err)
	}

	// Resolve: refs first, then digests with or without their algorithm.
	for _, tc := range []struct{ in, want string }{{"a", a}, {"sha256:" + img[:8], img}, {img[:8], img}} {
		got, _, err := s.Resolve(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%s): %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, _, err := s.Resolve("nope"); err == nil || err.Error() != `no ref named "nope", and it is not a digest or a digest prefix (at least 4 lower-case hex digits)` {
		t.Errorf("Resolve(nope): %v", err)
	}
	if _, _, err := s.Resolve(none); err == nil || err.Error() != `no ref or image "`+none+`": not in the store` {
		t.Errorf("Resolve(%s): %v", none, err)
	}
}

// TestImportTreeAsKeepsFromGC: a tree import is kept by a ref named after
// the tree (or --ref), and gc keeps it until that ref is removed.
func TestImportTreeAsKeepsFromGC(t *testing.T) {
	s := newStore(t)
	tree, _ := fsckTree(t, 1)
	rel, err := filepath.Rel(mustGetwd(t), tree)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.ImportTreeAs(rel, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.LookupRef(tree)
	if err != nil || r.Digest != img || r.Source.Kind != RefKindTree || r.Source.Ref != tree {
		t.Fatalf("ref of the tree: %+v, %v", r, err)
	}
	tree2, _ := fsckTree(t, 2)
	img2, err := s.ImportTreeAs(tree2, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.LookupRef("mine"); err != nil || r.Digest != img2 || r.Source.Ref != tree2 {
		t.Fatalf("--ref mine: %+v, %v", r, err)
	}
	if _, err := s.ImportTreeAs(tree2, ".bad"); !errors.Is(err, ErrBadRefName) {
		t.Fatalf("bad ref name: %v", err)
	}
	rep, err := s.GC()
	if err != nil || len(rep.Images) != 0 || len(rep.Kept) != 2 {
		t.Fatalf("gc with both refs: %+v, %v", rep, err)
	}
	if _, err := s.RemoveRef("mine"); err != nil {
		t.Fatal(err)
	}
	rep, err = s.GC()
	if err != nil || len(rep.Images) != 1 || rep.Images[0] != img2 || !s.HasImage(id(t, img)) {
		t.Fatalf("gc after rm: %+v, %v", rep, err)
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// TestConcurrentRefs: concurrent imports and tags each keep their ref.
func TestConcurrentRefs(t *testing.T) {
	s := newStore(t)
	tree, _ := fsckTree(t, 1)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.ImportTreeAs(tree, fmt.Sprintf("import-%d", i))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			errs <- s.SetRef(fmt.Sprintf("tag-%d", i), strings.Repeat("ab", 32), RefSource{Kind: RefKindTag})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	refs, err := s.Refs()
	if err != nil || len(refs) != 2*n {
		t.Fatalf("%d refs (%v), want %d: %v", len(refs), err, 2*n, refs)
	}
}
