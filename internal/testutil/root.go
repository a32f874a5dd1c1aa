// Package testutil holds test gating and fixtures shared by the project's packages.
package testutil

import (
	"os"
	"testing"
)

// RequiresRoot skips a test that needs root when not running as root.
// CI runs as root, so these tests always run there.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test requires root")
	}
}
