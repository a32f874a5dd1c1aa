package composefs

import (
	"encoding/binary"
	"math/bits"
)

// xxh32 is the 32-bit xxHash (XXH32) that EROFS uses for its xattr name
// bloom filter (EROFS_FEATURE_COMPAT_XATTR_FILTER). It is small enough to
// keep here rather than pull in a dependency for one call site.
const (
	xxhPrime1 uint32 = 2654435761
	xxhPrime2 uint32 = 2246822519
	xxhPrime3 uint32 = 3266489917
	xxhPrime4 uint32 = 668265263
	xxhPrime5 uint32 = 374761393
)

func xxh32Round(acc, input uint32) uint32 {
	acc += input * xxhPrime2
	acc = bits.RotateLeft32(acc, 13)
	return acc * xxhPrime1
}

func xxh32(p []byte, seed uint32) uint32 {
	n := len(p)
	var h uint32
	if n >= 16 {
		v1 := seed + xxhPrime1 + xxhPrime2
		v2 := seed + xxhPrime2
		v3 := seed
		v4 := seed - xxhPrime1
		for len(p) >= 16 {
			v1 = xxh32Round(v1, binary.LittleEndian.Uint32(p[0:]))
			v2 = xxh32Round(v2, binary.LittleEndian.Uint32(p[4:]))
			v3 = xxh32Round(v3, binary.LittleEndian.Uint32(p[8:]))
			v4 = xxh32Round(v4, binary.LittleEndian.Uint32(p[12:]))
			p = p[16:]
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) +
			bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = seed + xxhPrime5
	}
	h += uint32(n)
	for len(p) >= 4 {
		h += binary.LittleEndian.Uint32(p) * xxhPrime3
		h = bits.RotateLeft32(h, 17) * xxhPrime4
		p = p[4:]
	}
	for _, b := range p {
		h += uint32(b) * xxhPrime5
		h = bits.RotateLeft32(h, 11) * xxhPrime1
	}
	h ^= h >> 15
	h *= xxhPrime2
	h ^= h >> 13
	h *= xxhPrime3
	h ^= h >> 16
	return h
}
