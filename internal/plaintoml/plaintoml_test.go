package plaintoml

import (
	"reflect"
	"testing"
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
