package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/urfave/cli/v2"
)

// storeEnv is a configuration with its own store and state directory.
type storeEnv struct {
	store, state, tree string
}

// newStoreEnv writes a configuration (CFS_RUNTIME_CONFIG) and a tree with
// files of 300, 5000 and 100000 bytes (/a, /b, /c).
func newStoreEnv(t *testing.T) storeEnv {
	t.Helper()
	dir := t.TempDir()
	e := storeEnv{store: filepath.Join(dir, "store"), state: filepath.Join(dir, "state"), tree: filepath.Join(dir, "tree")}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("store_dir = \""+e.store+"\"\nstate_dir = \""+e.state+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CFS_RUNTIME_CONFIG", cfg)
	writeTree(t, e.tree, map[string]int{"a": 300, "b": 5000, "c": 100000})
	return e
}

func writeTree(t *testing.T, tree string, files map[string]int) {
	t.Helper()
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range files {
		b := []byte(strings.Repeat(name+tree, n)[:n])
		if err := os.WriteFile(filepath.Join(tree, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (e storeEnv) importTree(t *testing.T, tree string) string {
	t.Helper()
	out, err := runInfo(t, "import", "--store", e.store, tree)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// object returns the store path of a tree file's object.
func (e storeEnv) object(t *testing.T, file string) (digest, path string) {
	t.Helper()
	d, err := verity.DigestFile(filepath.Join(e.tree, file))
	if err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(d)
	return h, filepath.Join(e.store, "objects", h[:2], h[2:])
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestFsckCommand(t *testing.T) {
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	out, err := runInfo(t, "fsck", img) // the configuration's store
	if err != nil || out != img+": clean (3 objects, 102.8 KiB)\n" {
		t.Fatalf("fsck of a clean image: %q, %v", out, err)
	}
	da, pa := e.object(t, "a")
	db, pb := e.object(t, "b")
	if err := os.WriteFile(pa, []byte(strings.Repeat("X", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pb); err != nil {
		t.Fatal(err)
	}
	bad, _ := verity.DigestFile(pa)
	out, err = runInfo(t, "fsck", "--all")
	if exitCode(err) != fsckExitDamaged {
		t.Fatalf("fsck of a damaged image: exit %d (%v)", exitCode(err), err)
	}
	want := img + ": damaged: 1 missing, 1 corrupt, 0 without fs-verity (of 3 objects)\n" +
		"  missing " + db + " (5000 bytes); used by /b\n" +
		"  corrupt " + da + " (300 bytes): content hashes to " + hex.EncodeToString(bad) + "; used by /a\n"
	if out != want {
		t.Fatalf("fsck printed\n%s\nwant\n%s", out, want)
	}
	out, err = runInfo(t, "fsck", "--json", "sha256:"+img)
	var doc fsckOutput
	if exitCode(err) != fsckExitDamaged || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("fsck --json: exit %d, %q", exitCode(err), out)
	}
	if r := doc.Images[0]; len(r.Missing) != 1 || r.Missing[0].Object != db || len(r.Corrupt) != 1 || doc.Repair != nil {
		t.Fatalf("fsck --json: %+v", doc)
	}

	// Repair from the recorded tree, then clean.
	out, err = runInfo(t, "fsck", "--repair", img)
	if err != nil {
		t.Fatalf("fsck --repair: %v\n%s", err, out)
	}
	for _, line := range []string{
		"fsck: repair needs tree " + e.tree + " (2 objects)\n",
		"fsck: restored object " + da + " from tree " + e.tree + ": /a\n",
		"fsck: restored object " + db + " from tree " + e.tree + ": /b\n",
		img + ": clean (3 objects, 102.8 KiB)\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("fsck --repair output lacks %q:\n%s", line, out)
		}
	}

	// Repair that finds nothing: damage remains, exit 1.
	if err := os.Remove(pb); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	out, err = runInfo(t, "fsck", "--repair", "--source", empty, "--json", img)
	if exitCode(err) != fsckExitDamaged || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &doc) != nil {
		t.Fatalf("repair from an empty tree: exit %d\n%s", exitCode(err), out)
	}
	if doc.Repair == nil || len(doc.Repair.Unresolved) != 1 || doc.Repair.Unresolved[0] != db || len(doc.Images[0].Missing) != 1 {
		t.Errorf("repair from an empty tree: %+v", doc.Repair)
	}
}

func TestFsckCommandErrors(t *testing.T) {
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	other := strings.Repeat("0", 64)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"fsck"}, 2, "fsck: no image given (usage: cfs-runtime fsck [--repair [--source SRC]...] IMAGE...|--all)"},
		{[]string{"fsck", "--all", img}, 2, "fsck: give IMAGE arguments or --all, not both"},
		{[]string{"fsck", "xyz"}, 2, `fsck: no ref named "xyz", and it is not a digest or a digest prefix (at least 4 lower-case hex digits)`},
		{[]string{"fsck", "0000"}, 2, `fsck: no ref or image "0000": not in the store`},
		{[]string{"fsck", "--source", e.tree, img}, 2, "fsck: --source is only for --repair"},
		{[]string{"fsck", "--repair", "--source", "oci:/srv/x", img}, 2, "fsck: --source oci:/srv/x: oci:/srv/x: stat /srv/x: no such file or directory"},
		{[]string{"fsck", "--repair", "--source", "/nonexistent", img}, 2, "fsck: --source /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"fsck", "--store", "/nonexistent", img}, 2, "fsck: store /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"fsck", other}, 2, ""},
	} {
		out, err := runInfo(t, c.args...)
		if exitCode(err) != c.code || (c.msg != "" && err.Error() != c.msg) {
			t.Errorf("%q: exit %d, %v (want %d, %q)\n%s", c.args, exitCode(err), err, c.code, c.msg, out)
		}
	}
	out, _ := runInfo(t, "fsck", other)
	if want := other + ": could not be checked: image " + other + ": not in the store\n"; out != want {
		t.Errorf("fsck of an absent image printed %q, want %q", out, want)
	}
}

// Without a recorded source, repair says what is missing and needs --source.
func TestFsckRepairNoProvenance(t *testing.T) {
	e := newStoreEnv(t)
	img := e.importTree(t, e.tree)
	if err := os.Remove(filepath.Join(e.store, "provenance", img+".json")); err != nil {
		t.Fatal(err)
	}
	db, pb := e.object(t, "b")
	if err := os.Remove(pb); err != nil {
		t.Fatal(err)
	}
	out, err := runInfo(t, "fsck", "--repair", img)
	if exitCode(err) != fsckExitDamaged || !strings.Contains(out, "cfs-runtime: fsck: no recorded source for 1 objects ("+db+"): give --source\n") {
		t.Fatalf("exit %d:\n%s", exitCode(err), out)
	}
	// With a layer record, the layers and their layout are named.
	s, err := store.Open(e.store)
	if err != nil {
		t.Fatal(err)
	}
	layer := "sha256:" + strings.Repeat("1", 64)
	if err := s.SetProvenance(img, []store.Source{{Kind: store.SourceOCILayer, Ref: layer, Layout: "oci:/srv/img:v1", Objects: []string{db}}}); err != nil {
		t.Fatal(err)
	}
	out, err = runInfo(t, "fsck", "--repair", img)
	for _, line := range []string{
		"fsck: repair needs layer " + layer + " of oci:/srv/img:v1 (1 objects)\n",
		"cfs-runtime: fsck: layers " + layer + " of oci:/srv/img:v1 are needed: oci:/srv/img:v1: stat /srv/img: no such file or directory (give the image where it is now, or the layers' tar files, with --source)\n",
	} {
		if exitCode(err) != fsckExitDamaged || !strings.Contains(out, line) {
			t.Errorf("exit %d, output lacks %q:\n%s", exitCode(err), line, out)
		}
	}
}

// Without --source, the engine's store is read before any other recorded
// layout or registry: containers-storage's layers are opened (here:
// reported missing) before the OCI layout's, whatever the plan's order.
func TestPlanSourcesEngineFirst(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "overlay-layers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "overlay-layers", "layers.json"), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	const l1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const l2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	plan := store.RepairPlan{Sources: []store.PlannedSource{
		{Source: store.Source{Kind: store.SourceOCILayer, Ref: l1, Layout: "oci:/nonexistent/layout", Objects: []string{"aa"}}},
		{Source: store.Source{Kind: store.SourceOCILayer, Ref: l2, Layout: "containers-storage:reg/app:1", Objects: []string{"bb"}}},
	}}
	var cfg config.Config
	cfg.ContainersStorage = root
	rep := &fsckRepair{}
	var errw strings.Builder
	sources, err := planSources(&errw, cfg, plan, rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != 0 || len(rep.Errors) != 2 {
		t.Fatalf("sources %v, errors %q", sources, rep.Errors)
	}
	if want := "layers " + l2 + " of containers-storage:reg/app:1 are needed: containers-storage " + root + ": no layer with diff digest " + l2 + " (the image reg/app:1 was removed from it?)"; !strings.HasPrefix(rep.Errors[0], want) {
		t.Errorf("first error %q, want %q...", rep.Errors[0], want)
	}
	if !strings.HasPrefix(rep.Errors[1], "layers "+l1+" of oci:/nonexistent/layout are needed: ") {
		t.Errorf("second error %q", rep.Errors[1])
	}
}
