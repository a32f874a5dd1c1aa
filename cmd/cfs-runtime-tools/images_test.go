package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "DIGEST SIZE OBJECTS REFS SEALED IN USE" {
		t.Errorf("header %q", lines[0])
	}
	fi, err := os.Stat(filepath.Join(e.store, "images", img))
	if err != nil {
		t.Fatal(err)
	}
	size := humanSize(fi.Size() + 300 + 5000 + 100000)
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != img+" "+size+" 3 web:v1 - yes (ctr1)" {
		t.Errorf("row %q", lines[1])
	}
	out, err = runInfo(t, "images", "--json")
	var rows []struct {
		Digest     string
		Size       int64
		Objects    int
		Refs       []string
		Containers []string
		InUse      bool
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
		t.Fatalf("images --json: %v\n%s", err, out)
	}
	if r := rows[0]; r.Digest != img || r.Objects != 3 || !r.InUse || r.Containers[0] != "ctr1" || r.Refs[0] != "web:v1" || r.Size < 105300 {
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
	if _, err := runInfo(t, "images", "tag", "xyz", "n"); err == nil || !strings.Contains(err.Error(), "not a SHA-256 digest") {
		t.Errorf("tag of a bad digest: %v", err)
	}
}
