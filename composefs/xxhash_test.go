package composefs

import "testing"

// Reference values of the XXH32 specification (xxhash sanity test vectors).
func TestXXH32(t *testing.T) {
	for _, tc := range []struct {
		in   string
		seed uint32
		want uint32
	}{
		{"", 0, 0x02cc5d05},
		{"", 0x9e3779b1, 0x36b78ae7},
		{"a", 0, 0x550d7456},
		{"abc", 0, 0x32d153ff},
		{"Nobody inspects the spammish repetition", 0, 0xe2293b2f},
	} {
		if got := xxh32([]byte(tc.in), tc.seed); got != tc.want {
			t.Errorf("xxh32(%q, %#x) = %#08x, want %#08x", tc.in, tc.seed, got, tc.want)
		}
	}
}

// The EROFS name filter values quoted in the format notes, computed by the
// reference implementation.
func TestXattrNameFilter(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want uint32
	}{
		{[]string{"trusted.overlay.opaque"}, 0xffefffff},
		{[]string{"trusted.overlay.metacopy", "trusted.overlay.redirect"}, 0x7ffdffff},
	} {
		var xs []wXattr
		for _, k := range tc.keys {
			xs = append(xs, wXattr{key: k})
		}
		if got := nameFilter(xs); got != tc.want {
			t.Errorf("nameFilter(%q) = %#08x, want %#08x", tc.keys, got, tc.want)
		}
	}
}
