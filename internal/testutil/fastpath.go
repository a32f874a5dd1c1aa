package testutil

import "testing"

// FastPathCase is an input for a fast decoder that stands in for a library
// (bundle's JSON scan, config's plain TOML) and whether the fast path
// should answer it (false: it leaves the input to the library).
type FastPathCase struct {
	Input string
	Fast  bool
}

// CheckFastPath runs check on every case. check compares the fast decoder
// with the library on one input (failing the test if they differ) and
// reports whether the fast path answered.
func CheckFastPath(t *testing.T, name string, cases []FastPathCase, check func(*testing.T, []byte) bool) {
	t.Helper()
	for _, c := range cases {
		if got := check(t, []byte(c.Input)); got != c.Fast {
			t.Errorf("%s(%q) took the fast path: %v, want %v", name, c.Input, got, c.Fast)
		}
	}
}

// FuzzFastPath fuzzes check, seeded with the cases.
func FuzzFastPath(f *testing.F, cases []FastPathCase, check func(*testing.T, []byte) bool) {
	for _, c := range cases {
		f.Add([]byte(c.Input))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, data) })
}
