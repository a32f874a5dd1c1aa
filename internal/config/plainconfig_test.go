package config

import (
	"bytes"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// checkPlainConfig: plainConfig either declines or decodes exactly what
// go-toml's strict decoding does.
func checkPlainConfig(t *testing.T, data []byte) bool {
	t.Helper()
	fast := Defaults()
	if !plainConfig(data, &fast) {
		if fast != Defaults() {
			t.Fatalf("%q: plainConfig declined but changed the config to %+v", data, fast)
		}
		return false
	}
	slow := Defaults()
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&slow); err != nil {
		t.Fatalf("plainConfig accepted %q, go-toml: %v", data, err)
	}
	if fast != slow {
		t.Fatalf("%q: plainConfig %+v, go-toml %+v", data, fast, slow)
	}
	return true
}

var plainConfigCases = []testutil.FastPathCase{
	{Input: "", Fast: true},
	{Input: "# only a comment\n", Fast: true},
	{Input: "runtime = \"/usr/sbin/runc\"\nlog_file = ''\n", Fast: true},
	{Input: "\"policy\" = \"/p\" # comment\n'state_dir' = '/s'\n", Fast: true},
	{Input: "log_level = \"de\\u0062ug\"\nruntime = \"\"\"\n/a\\\n  /b\"\"\"\n", Fast: true},
	{Input: "store_dir = '''/x\ny'''", Fast: true},
	// Declined: go-toml decides (and words the error).
	{Input: "runtime = 1", Fast: false},
	{Input: "runtime = \"a\"\nruntime = \"b\"", Fast: false},
	{Input: "Runtime = \"a\"", Fast: false},
	{Input: "unknown = \"a\"", Fast: false},
	{Input: "runtime.x = \"a\"", Fast: false},
	{Input: "[table]\nruntime = \"a\"", Fast: false},
	{Input: "[[runtime]]", Fast: false},
	{Input: "runtime = \"a", Fast: false},
	{Input: "runtime = [\"a\"]", Fast: false},
}

func TestPlainConfig(t *testing.T) {
	testutil.CheckFastPath(t, "plainConfig", plainConfigCases, checkPlainConfig)
}

func FuzzDecodePlainConfig(f *testing.F) {
	testutil.FuzzFastPath(f, plainConfigCases, checkPlainConfig)
}
