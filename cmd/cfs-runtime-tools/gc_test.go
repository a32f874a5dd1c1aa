package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"golang.org/x/sys/unix"
)

// writeMountState makes a state directory look like a running container's
// composefs mount of image digest.
func writeMountState(t *testing.T, stateDir, id, digest string) {
	t.Helper()
	dir := filepath.Join(stateDir, id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	st := map[string]any{"version": 1, "image": "/somewhere/images/" + digest, "digest": digest, "merged": dir + "/merged"}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestGCCommand(t *testing.T) {
	e := newStoreEnv(t)
	kept := e.importTree(t, e.tree)
	t2, t3 := filepath.Join(t.TempDir(), "t2"), filepath.Join(t.TempDir(), "t3")
	writeTree(t, t2, map[string]int{"x": 2000})
	writeTree(t, t3, map[string]int{"y": 3000})
	used, gone := e.importTree(t, t2), e.importTree(t, t3)
	if out, err := runInfo(t, "images", "tag", kept, "web:v1"); err != nil || out != "" {
		t.Fatalf("images tag: %q, %v", out, err)
	}
	writeMountState(t, e.state, "ctr1", used)
	// A leftover state directory without a mount state and without mounts.
	if err := os.MkdirAll(filepath.Join(e.state, "leftover"), 0o711); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(e.store, "images", gone))
	if err != nil {
		t.Fatal(err)
	}
	// Every import keeps its image by the tree's ref: gc removes nothing.
	out, err := runInfo(t, "gc", "--dry-run")
	if want := "would remove 0 images, 0 objects (0 B), 0 provenance records, 0 layer records; kept 3 images\n"; err != nil || out != want {
		t.Fatalf("gc --dry-run with every import's ref: %v\n%s\nwant\n%s", err, out, want)
	}
	// Untagging leaves "used" kept by its container, "gone" by nothing.
	out, err = runInfo(t, "images", "rm", t2, gone[:8])
	want := "removed ref " + t2 + " (image " + used + ")\nremoved ref " + t3 + " (image " + gone + ")\n" +
		"image " + used + " is still kept by container ctr1\n" +
		"gc would now remove 1 images, 2 objects (" + humanSize(fi.Size()+3000) + ")\n"
	if err != nil || out != want {
		t.Fatalf("images rm: %v\n%s\nwant\n%s", err, out, want)
	}
	out, err = runInfo(t, "gc", "--dry-run")
	want = "would remove image " + gone + "\nwould remove 1 images, 2 objects (" + humanSize(fi.Size()+3000) + "), 1 provenance records, 0 layer records; kept 2 images\n"
	if err != nil || out != want {
		t.Fatalf("gc --dry-run: %v\n%s\nwant\n%s", err, out, want)
	}
	out, err = runInfo(t, "gc", "--json")
	var rep struct {
		Images []string
		Kept   []string
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Images) != 1 || rep.Images[0] != gone || len(rep.Kept) != 2 {
		t.Fatalf("gc --json: %v\n%s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(e.store, "images", gone)); err == nil {
		t.Error("gc kept the unused image")
	}
	out, err = runInfo(t, "fsck", "--all")
	if err != nil || strings.Count(out, ": clean (") != 2 {
		t.Errorf("fsck after gc: %v\n%s", err, out)
	}
	if _, err := runInfo(t, "gc", "extra"); exitCode(err) != 2 {
		t.Errorf("gc with an argument: %v", err)
	}
}

// A state directory with something mounted in it but no mount state: gc
// cannot tell which image it uses and removes nothing.
func TestGCMountedWithoutState(t *testing.T) {
	testutil.RequiresRoot(t)
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	dir := filepath.Join(e.state, "ctr2")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	_, err := runInfo(t, "gc")
	want := "gc: container ctr2: " + dir + " has mounts but no readable mount state, so which image it uses is unknown (being created right now? otherwise remove it with `cfs-runtime cleanup ctr2`)"
	if err == nil || err.Error() != want {
		t.Fatalf("gc: %v\nwant %s", err, want)
	}
	if _, err := os.Lstat(filepath.Join(e.store, "images", img)); err != nil {
		t.Error("gc removed the image")
	}
}
