package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
)

func TestImagesCommand(t *testing.T) {
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	writeMountState(t, e.state, "ctr1", img)
	out, err := runInfo(t, "images", "tag", img, "web:v1")
	if err != nil || out != "" {
		t.Fatalf("images tag: %q, %v", out, err)
	}
	other := strings.Repeat("1", 64)
	out, err = runInfo(t, "images", "tag", "sha256:"+other, "later")
	if err != nil || out != "cfs-runtime: note: image "+other+" is not in the store "+e.store+" yet; gc keeps it once it is imported\n" {
		t.Fatalf("images tag of an absent image: %q, %v", out, err)
	}
	out, err = runInfo(t, "images")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("images: %v\n%s", err, out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "DIGEST SIZE OBJECTS REFS SOURCE CREATED SEALED IN USE" {
		t.Errorf("header %q", lines[0])
	}
	fi, err := os.Stat(filepath.Join(e.store, "images", img))
	if err != nil {
		t.Fatal(err)
	}
	size := humanSize(fi.Size() + 300 + 5000 + 100000)
	// The import's ref (the tree) and the tag; the source of the newer
	// (the tree's when both were made in the same second); not sealed.
	f := strings.Fields(lines[1])
	if len(f) != 11 || strings.Join(f[:6], " ") != img+" "+size+" 3 "+e.tree+", web:v1" ||
		(f[6] != e.tree && f[6] != "tag") || strings.Join(f[8:], " ") != "- yes (ctr1)" {
		t.Errorf("row %q", lines[1])
	}
	if created, err := time.Parse(time.RFC3339, f[7]); err != nil || time.Since(created) > time.Minute {
		t.Errorf("CREATED %q: %v", f[7], err)
	}
	out, err = runInfo(t, "images", "--json")
	var rows []struct {
		Digest     string
		Size       int64
		Objects    int
		Refs       []string
		RefSources []store.Ref
		Source     string
		Created    *time.Time
		Containers []string
		InUse      bool
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
		t.Fatalf("images --json: %v\n%s", err, out)
	}
	if r := rows[0]; r.Digest != img || r.Objects != 3 || !r.InUse || r.Containers[0] != "ctr1" || r.Refs[1] != "web:v1" || r.Size < 105300 ||
		r.Created == nil || len(r.RefSources) != 2 || r.RefSources[0].Source != (store.RefSource{Kind: "tree", Ref: e.tree, Created: r.RefSources[0].Source.Created}) {
		t.Errorf("images --json: %+v", r)
	}
	if _, err := runInfo(t, "images", "untag", "web:v1", "later"); err != nil {
		t.Fatal(err)
	}
	if _, err := runInfo(t, "images", "untag", "web:v1"); err == nil || err.Error() != `images untag: no ref named "web:v1" in the store `+e.store {
		t.Errorf("untag of an absent ref: %v", err)
	}
	for _, c := range [][]string{{"images", "tag", img}, {"images", "untag"}, {"images", "bogus"}} {
		if _, err := runInfo(t, c...); exitCode(err) != 2 {
			t.Errorf("%q: %v", c, err)
		}
	}
	if _, err := runInfo(t, "images", "tag", "xyz", "n"); err == nil || err.Error() != `images tag: "xyz" is not a digest or a digest prefix (at least 4 lower-case hex digits)` {
		t.Errorf("tag of a bad digest: %v", err)
	}
	// A prefix names the image.
	if _, err := runInfo(t, "images", "tag", img[:6], "short"); err != nil {
		t.Fatal(err)
	}
	if out, err := runInfo(t, "images", "rm", "short"); err != nil || !strings.HasPrefix(out, "removed ref short (image "+img+")\nimage "+img+" is still kept by ref "+e.tree+", container ctr1\ngc would now remove 0 images") {
		t.Errorf("images rm short: %v\n%s", err, out)
	}
}

func TestImagesRm(t *testing.T) {
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	for _, n := range []string{"a", "b"} {
		if _, err := runInfo(t, "images", "tag", img, n); err != nil {
			t.Fatal(err)
		}
	}
	// Two refs to absent images whose digests share 5 hex digits.
	x, y := "abcde"+strings.Repeat("1", 59), "abcde"+strings.Repeat("2", 59)
	if img[:4] == "abcd" {
		t.Skip("digest collides with the test's")
	}
	runInfo(t, "images", "tag", x, "x")
	runInfo(t, "images", "tag", y, "y")
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"images", "rm"}, 2, "images rm: want at least one REF or IMAGE (usage: cfs-runtime images rm REF|IMAGE...)"},
		{[]string{"images", "rm", "abcde"}, 1, "images rm: ambiguous digest prefix: abcde matches 2 images; give more hex digits"},
		{[]string{"images", "rm", "nope"}, 1, `images rm: no ref named "nope", and it is not a digest or a digest prefix (at least 4 lower-case hex digits)`},
		{[]string{"images", "rm", "a", "ffff0000"}, 1, `images rm: no ref or image "ffff0000": not in the store`},
		{[]string{"images", "rm", "a", strings.Repeat("f", 64)}, 1, `images rm: no ref or image "` + strings.Repeat("f", 64) + `": not in the store`},
	} {
		out, err := runInfo(t, c.args...)
		if exitCode(err) != c.code || err.Error() != c.msg {
			t.Errorf("%q: exit %d, %v (want %d, %q)\n%s", c.args, exitCode(err), err, c.code, c.msg, out)
		}
	}
	// Nothing was removed by the refused commands.
	refs, _ := runInfo(t, "images", "--json")
	if strings.Count(refs, `"name"`) != 3 {
		t.Fatalf("refs after refused rm:\n%s", refs)
	}
	// By digest prefix: every ref of the image goes.
	out, err := runInfo(t, "images", "rm", "sha256:"+img[:10], "abcde1")
	want := "removed ref " + e.tree + " (image " + img + ")\nremoved ref a (image " + img + ")\nremoved ref b (image " + img + ")\nremoved ref x (image " + x + ")\n" +
		"gc would now remove 1 images, 4 objects ("
	if err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("images rm: %v\n%s\nwant\n%s", err, out, want)
	}
	out, err = runInfo(t, "images", "rm", img)
	if err != nil || !strings.HasPrefix(out, "image "+img+" has no ref\ngc would now remove 1 images") {
		t.Fatalf("images rm of an image without refs: %v\n%s", err, out)
	}
	if out, err := runInfo(t, "gc"); err != nil || !strings.Contains(out, "removed image "+img) {
		t.Fatalf("gc: %v\n%s", err, out)
	}
}
