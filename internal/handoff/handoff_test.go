package handoff

import (
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
