//go:build amd64 && !purego

package verity

import (
	"os"
	"strings"
	"testing"
)

// have2x agrees with the flags the kernel reports in /proc/cpuinfo.
func TestHave2xMatchesCPUInfo(t *testing.T) {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo: %v", err)
	}
	var flags []string
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	has := func(f string) bool {
		for _, x := range flags {
			if x == f {
				return true
			}
		}
		return false
	}
	want := has("ssse3") && has("sse4_1") && has("sha_ni")
	if got := have2x(); got != want {
		t.Fatalf("have2x() = %v, /proc/cpuinfo flags say %v (%d flags)", got, want, len(flags))
	}
}
