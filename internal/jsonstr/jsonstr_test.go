package jsonstr

import (
	"encoding/json"
	"testing"
)

// Append writes what json.Marshal writes, for any string.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\", "new\nline\ttab\r\b\f", "\x00\x1f\x7f", "é ü 漢字", "\xff\xfe bad", "\xe2\x80", "\u2028\u2029", "</script>&", "\U0001F600"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("Append(%q) = %s, json.Marshal: %s", s, got[1:], want)
		}
	})
}
