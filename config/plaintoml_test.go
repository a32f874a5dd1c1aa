package config

import (
	"bytes"
	"reflect"
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

// DecodePlain's values, one of each kind.
func TestDecodePlainValues(t *testing.T) {
	doc, ok := DecodePlain([]byte("s = 'x'\ni = -42\nb = true\nt = { \"a.b\" = \"c\", d = 'e' }\n[[arr]]\nn = 1\n[[arr]]\n[[other]]\nn = 2\n"))
	if !ok {
		t.Fatal("declined")
	}
	want := PlainDoc{
		Top:    PlainTable{"s": "x", "i": int64(-42), "b": true, "t": map[string]string{"a.b": "c", "d": "e"}},
		Arrays: map[string][]PlainTable{"arr": {{"n": int64(1)}, {}}, "other": {{"n": int64(2)}}},
	}
	if !reflect.DeepEqual(doc, want) {
		t.Fatalf("got %#v\nwant %#v", doc, want)
	}
	for _, in := range []string{"i = 1_000", "i = 0x10", "i = 01", "f = 1.5", "d = 1979-05-27", "a = [1]", "t = { a = 1 }", "t = { a.b = 'c' }", "x = 1\n[[x]]", "[[x]]\n[x]", "t = { a = 'b', a = 'c' }"} {
		if _, ok := DecodePlain([]byte(in)); ok {
			t.Errorf("DecodePlain(%q) accepted it", in)
		}
	}
}
