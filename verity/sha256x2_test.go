//go:build !vmtest

package verity

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

func TestPairHasher(t *testing.T) {
	if !have2x() {
		t.Skip("no SHA extensions on this CPU: the crypto/sha256 path is used")
	}
	r := rand.New(rand.NewPCG(9, 9))
	for _, bs := range []int{64, 1024, 4096, 65536} {
		for _, saltLen := range []int{0, 1, 32} {
			prefix := make([]byte, (saltLen+63)/64*64)
			copy(prefix, randBytes(r, saltLen))
			ph := newPairHasher(prefix, bs)
			a, b := randBytes(r, bs), randBytes(r, bs)
			got := ph.sum2(a, b, nil)
			wa := sha256.Sum256(append(append([]byte{}, prefix...), a...))
			wb := sha256.Sum256(append(append([]byte{}, prefix...), b...))
			if !bytes.Equal(got, append(wa[:], wb[:]...)) {
				t.Fatalf("bs %d salt %d: %x, want %x %x", bs, saltLen, got, wa, wb)
			}
		}
	}
}

func BenchmarkLeafPairs(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 1)), 8<<20)
	b.Run("sha256x2", func(b *testing.B) {
		if !have2x() {
			b.Skip("no SHA extensions")
		}
		ph := newPairHasher(nil, 4096)
		out := make([]byte, 0, 64)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			for off := 0; off < len(data); off += 8192 {
				out = ph.sum2(data[off:off+4096], data[off+4096:off+8192], out[:0])
			}
		}
	})
	b.Run("crypto-sha256", func(b *testing.B) {
		h := sha256.New()
		out := make([]byte, 0, 64)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			for off := 0; off < len(data); off += 4096 {
				h.Reset()
				h.Write(data[off : off+4096])
				out = h.Sum(out[:0])
			}
		}
	})
}
