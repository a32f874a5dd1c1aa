package plaintoml

import (
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// Decode's values, one of each kind.
func TestDecodeValues(t *testing.T) {
	doc, ok := Decode([]byte("s = 'x'\ni = -42\nb = true\nt = { \"a.b\" = \"c\", d = 'e' }\n[[arr]]\nn = 1\n[[arr]]\n[[other]]\nn = 2\n"))
	if !ok {
		t.Fatal("declined")
	}
	want := Doc{
		Top:    Table{"s": "x", "i": int64(-42), "b": true, "t": map[string]string{"a.b": "c", "d": "e"}},
		Arrays: map[string][]Table{"arr": {{"n": int64(1)}, {}}, "other": {{"n": int64(2)}}},
	}
	if !reflect.DeepEqual(doc, want) {
		t.Fatalf("got %#v\nwant %#v", doc, want)
	}
	for _, in := range []string{"i = 1_000", "i = 0x10", "i = 01", "f = 1.5", "d = 1979-05-27", "a = [1]", "t = { a = 1 }", "t = { a.b = 'c' }", "x = 1\n[[x]]", "[[x]]\n[x]", "t = { a = 'b', a = 'c' }"} {
		if _, ok := Decode([]byte(in)); ok {
			t.Errorf("Decode(%q) accepted it", in)
		}
	}
}

// checkDecode: Decode either declines or decodes exactly what go-toml
// does.
func checkDecode(t *testing.T, data []byte) bool {
	t.Helper()
	doc, ok := Decode(data)
	if !ok {
		return false
	}
	var slow map[string]any
	if err := toml.Unmarshal(data, &slow); err != nil {
		t.Fatalf("Decode accepted %q, go-toml: %v", data, err)
	}
	if fast := doc.generic(); !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: Decode %#v, go-toml %#v", data, fast, slow)
	}
	return true
}

// generic is the document as go-toml decodes it into a map[string]any.
func (d Doc) generic() map[string]any {
	table := func(t Table) map[string]any {
		m := map[string]any{}
		for k, v := range t {
			switch v := v.(type) {
			case map[string]string:
				inline := map[string]any{}
				for k, s := range v {
					inline[k] = s
				}
				m[k] = inline
			case []string:
				l := []any{}
				for _, s := range v {
					l = append(l, s)
				}
				m[k] = l
			default:
				m[k] = v
			}
		}
		return m
	}
	m := table(d.Top)
	for k, ts := range d.Arrays {
		var l []any
		for _, t := range ts {
			l = append(l, table(t))
		}
		m[k] = l
	}
	return m
}

var decodeCases = []testutil.FastPathCase{
	{Input: "", Fast: true},
	{Input: "\n\n# c\n  \t\n", Fast: true},
	{Input: "a = 'x' # comment ünïcode\r\nb = \"y\"\r\n", Fast: true},
	{Input: "a = 1\nb = -0\nc = +17\nd = 999999999999999999\ne = false\n", Fast: true},
	{Input: "\"quoted key\" = 1\n'lit key' = 2\n\"\" = 3\n-_09aZ = 4", Fast: true},
	{Input: "e = \"\\b\\t\\n\\f\\r\\\"\\\\\\u00e9\\U0001F600 ü\"", Fast: true},
	{Input: "m = \"\"\"\nline 1\n  line 2 \\\n\n   continued \"quoted\" \"\"twice\"\" \\u0041\"\"\"", Fast: true},
	{Input: "m = '''\nraw \\n 'q' ''q'' \n'''", Fast: true},
	{Input: "k = \"\"\"\"\"\"\nl = ''''''", Fast: true},
	{Input: "a = [\n  'x', # one\n  \"y\",\n]\nb = []\nc = [ ]\nt = {}\nu = { a = 'b' , c = \"\"\"d\"\"\" }", Fast: true},
	{Input: "[[ x ]] # c\na = 1\n[[x]]\n[[y]]\nx = 'inner'\n", Fast: true},
	{Input: "tab\t=\t'\tx'\t", Fast: true},
	// Declined: go-toml decides (and words the error).
	{Input: "a = 1\na = 2", Fast: false},
	{Input: "a.b = 1", Fast: false},
	{Input: "[t]\na = 1", Fast: false},
	{Input: "a = 1 b = 2", Fast: false},
	{Input: "a = 1\r", Fast: false},
	{Input: "a = 1 # \x01", Fast: false},
	{Input: "a = 1 # \x7f", Fast: false},
	{Input: "a = '\xff'", Fast: false},
	{Input: "a = \"\x00\"", Fast: false},
	{Input: "a = \"\\e\"", Fast: false},
	{Input: "a = \"\\x41\"", Fast: false},
	{Input: "a = \"\\uD800\"", Fast: false},
	{Input: "a = \"\\U00110000\"", Fast: false},
	{Input: "a = \"\"\"x\"\"\"\"", Fast: false},
	{Input: "a = '''x''''", Fast: false},
	{Input: "a = \"\"\"\r\nx\"\"\"", Fast: false},
	{Input: "a = \"\"\"x \\ y\"\"\"", Fast: false},
	{Input: "a = 'x\ny'", Fast: false},
	{Input: "a = { b = 'c', }", Fast: false},
	{Input: "a = { b = 'c'\n}", Fast: false},
	{Input: "a = ['x' 'y']", Fast: false},
	{Input: "a = [[]]", Fast: false},
	{Input: "a = 1e3", Fast: false},
	{Input: "a = inf", Fast: false},
	{Input: "a = 12:00:00", Fast: false},
	{Input: "a = 1234567890123456789", Fast: false},
	{Input: "a = truex", Fast: false},
	{Input: "\"\"\"a\"\"\" = 1", Fast: false},
	{Input: "\xef\xbb\xbfa = 1", Fast: false},
	{Input: "[[a]]\n[[a.b]]", Fast: false},
	{Input: "[[a]]]", Fast: false},
	{Input: "a = 1\n[[b]]\nc = 2\n[[a]]", Fast: false},
}

func TestDecode(t *testing.T) { testutil.CheckFastPath(t, "Decode", decodeCases, checkDecode) }

func FuzzDecode(f *testing.F) { testutil.FuzzFastPath(f, decodeCases, checkDecode) }
