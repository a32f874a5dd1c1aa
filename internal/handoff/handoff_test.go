package handoff

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// DeleteTarget finds the container's composefs state directory, which
// decides whether delete needs cfs-runtime-mount.
func TestDeleteTarget(t *testing.T) {
	state := t.TempDir()
	os.Mkdir(filepath.Join(state, "c1"), 0o700)
	for _, tc := range []struct {
		args  []string
		id    string
		force bool
		dir   string
	}{
		{[]string{"delete", "c1"}, "c1", false, filepath.Join(state, "c1")},
		{[]string{"--root", "/r", "delete", "--force", "c1"}, "c1", true, filepath.Join(state, "c1")},
		{[]string{"delete", "-f", "c1"}, "c1", true, filepath.Join(state, "c1")},
		{[]string{"delete", "c2"}, "c2", false, ""},       // no composefs state: the runtime's alone
		{[]string{"delete", "../c1"}, "../c1", false, ""}, // not an id
		{[]string{"delete"}, "", false, ""},
	} {
		id, force, dir := DeleteTarget(oci.Parse(tc.args), state)
		if id != tc.id || force != tc.force || dir != tc.dir {
			t.Errorf("%q: %q %v %q, want %q %v %q", tc.args, id, force, dir, tc.id, tc.force, tc.dir)
		}
	}
}

// The front takes a runtime configured by path without a stat, and words a
// runtime that is not one as Read does, when exec has failed; a runtime
// that is the front itself (the path it was exec'd by) is located with
// stats, and refused, before anything is exec'd.
func TestReadUnchecked(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	use := func(runtime string) *oci.Invocation {
		t.Helper()
		body := "runtime = \"" + runtime + "\"\nstore_dir = \"" + dir + "/store\"\nstate_dir = \"" + dir + "/state\"\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return oci.Parse([]string{"--cfs-config", cfg, "state", "c1"})
	}

	inv := use(dir + "/runc")
	_, want := Read(inv, nil)
	if !errors.Is(want, oci.ErrRuntimeNotFound) {
		t.Fatalf("Read: %v, want %v", want, oci.ErrRuntimeNotFound)
	}
	c, err := readUnchecked(inv)
	if err != nil || !c.unchecked || c.Runtime.Path() != dir+"/runc" {
		t.Fatalf("readUnchecked: %+v, %v", c, err)
	}
	if err := c.checkRuntime(); err == nil || err.Error() != want.Error() {
		t.Errorf("checkRuntime: %v, want Read's %v", err, want)
	}

	if c, err := readUnchecked(use(oci.ExecFn())); !errors.Is(err, oci.ErrRuntimeIsSelf) {
		t.Errorf("configured as the test binary itself: %+v, %v; want %v", c, err, oci.ErrRuntimeIsSelf)
	}
	if c, err := readUnchecked(use("sh")); err != nil || c.unchecked {
		t.Errorf("configured by name: %+v, %v; want it located", c, err)
	}
}
