//go:build !vmtest

package verity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
)

// refDigest is a plain fs-verity implementation written from the kernel's
// documentation (Documentation/filesystems/fsverity.rst), sharing no code
// with the package: it builds the whole Merkle tree in memory, level by
// level, and hashes the descriptor.
func refDigest(data []byte, alg Algorithm, blockSize int, salt []byte) []byte {
	newHash := func() hash.Hash {
		if alg == SHA512 {
			return sha512.New()
		}
		return sha256.New()
	}
	ds := newHash().Size()
	// The salt is zero-padded to a multiple of the hash's input block size.
	var paddedSalt []byte
	if len(salt) > 0 {
		hbs := newHash().BlockSize()
		paddedSalt = make([]byte, (len(salt)+hbs-1)/hbs*hbs)
		copy(paddedSalt, salt)
	}
	hashLevel := func(level []byte) []byte {
		var out []byte
		for off := 0; off < len(level); off += blockSize {
			block := make([]byte, blockSize) // zero padded
			copy(block, level[off:min(off+blockSize, len(level))])
			h := newHash()
			h.Write(paddedSalt)
			h.Write(block)
			out = h.Sum(out)
		}
		return out
	}
	root := make([]byte, ds) // an empty file has an all-zero root hash
	if len(data) > 0 {
		level := data
		for {
			level = hashLevel(level)
			if len(level) == ds {
				root = level
				break
			}
		}
	}
	// struct fsverity_descriptor
	desc := make([]byte, 256)
	desc[0] = 1 // version
	desc[1] = byte(alg)
	lg := 0
	for 1<<lg < blockSize {
		lg++
	}
	desc[2] = byte(lg)
	desc[3] = byte(len(salt))
	// desc[4:8]: sig_size, 0
	binary.LittleEndian.PutUint64(desc[8:16], uint64(len(data)))
	copy(desc[16:16+64], root)
	copy(desc[80:80+32], salt)
	h := newHash()
	h.Write(desc)
	return h.Sum(nil)
}
