package verity

// Helpers shared by the host tests and the vmtest (real kernel) tests.

import (
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

const emptyDigest = "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randBytes returns n pseudo-random bytes from r.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
