package verity

import (
	"encoding/binary"
)

// Leaf blocks are all the same length and, without a salt, start from the
// same state, so pairs of them can be hashed together: sha256Blocks2x
// overlaps the two computations and is much faster than two crypto/sha256
// calls on CPUs whose SHA instructions have a long latency (AMD Zen).

// use2x reports whether to hash with the two-lane SHA-NI code; tests
// replace it to cover the crypto/sha256 path.
var use2x = have2x

// sha256IV is the SHA-256 initial hash value (FIPS 180-4, 5.3.3).
var sha256IV = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

// pairHasher hashes equal-length blocks two at a time: SHA-256 of
// prefix || block, where prefix (the padded salt) is a multiple of 64 bytes.
type pairHasher struct {
	iv  [8]uint32 // state after the prefix
	pad [64]byte  // the final padding block: bs is a multiple of 64
}

func newPairHasher(prefix []byte, bs int) *pairHasher {
	ph := &pairHasher{iv: sha256IV}
	if len(prefix) > 0 {
		var st [16]uint32
		copy(st[:8], sha256IV[:])
		copy(st[8:], sha256IV[:])
		sha256Blocks2x(&st, &prefix[0], &prefix[0], len(prefix)/64)
		copy(ph.iv[:], st[:8])
	}
	ph.pad[0] = 0x80
	binary.BigEndian.PutUint64(ph.pad[56:], uint64(len(prefix)+bs)*8)
	return ph
}

// sum2 appends SHA-256(prefix || a) and then SHA-256(prefix || b) to out.
// len(a) == len(b) == the bs given to newPairHasher.
func (ph *pairHasher) sum2(a, b, out []byte) []byte {
	var st [16]uint32
	copy(st[:8], ph.iv[:])
	copy(st[8:], ph.iv[:])
	sha256Blocks2x(&st, &a[0], &b[0], len(a)/64)
	sha256Blocks2x(&st, &ph.pad[0], &ph.pad[0], 1)
	for _, v := range st {
		out = binary.BigEndian.AppendUint32(out, v)
	}
	return out
}
