// Package verity computes fs-verity file digests exactly as the Linux kernel
// does and talks to the kernel's fs-verity interface.
//
// Digests (digest.go, read.go): a streaming Merkle tree whose memory is
// bounded by the tree depth. Leaf blocks of large writes are hashed on
// GOMAXPROCS goroutines, SHA-256 leaves two at a time with the x86 SHA
// extensions where the CPU has them (sha256x2_amd64.s), and DigestFiles
// digests many files on a worker pool. The results are identical to
// `fsverity digest` and to the kernel's FS_IOC_MEASURE_VERITY.
//
// Kernel (kernel.go): Enable, Measure, IsEnabled and Probe, whose errors
// match sentinels (ErrNotSupported and its reasons ErrKernelNoVerity,
// ErrFSNoVerity, ErrFeatureDisabled; ErrAlreadyEnabled, ErrNotEnabled,
// ErrOpenForWriting) with errors.Is.
package verity

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"
)

// Algorithm is an fs-verity hash algorithm number (FS_VERITY_HASH_ALG_*).
type Algorithm uint8

const (
	SHA256 Algorithm = 1 // FS_VERITY_HASH_ALG_SHA256
	SHA512 Algorithm = 2 // FS_VERITY_HASH_ALG_SHA512
)

// DefaultBlockSize is the Merkle tree block size composefs uses.
const DefaultBlockSize = 4096

// ErrInvalidParams is returned for an unsupported algorithm, block size or salt.
var ErrInvalidParams = errors.New("invalid fs-verity parameters")

// String returns the name fsverity-utils uses ("sha256", "sha512").
func (a Algorithm) String() string {
	switch a {
	case SHA256:
		return "sha256"
	case SHA512:
		return "sha512"
	}
	return fmt.Sprintf("alg%d", uint8(a))
}

// Size is the digest size in bytes.
func (a Algorithm) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

func (a Algorithm) new() hash.Hash {
	if a == SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// Params selects how a digest is computed. The zero value is not valid; use
// NewParams() (defaults: SHA-256, 4096-byte blocks, no salt: what composefs
// uses).
type Params struct {
	Algorithm Algorithm
	BlockSize int
	Salt      []byte
}

// Option changes Params.
type Option func(*Params)

// WithAlgorithm selects the hash algorithm.
func WithAlgorithm(a Algorithm) Option { return func(p *Params) { p.Algorithm = a } }

// WithBlockSize selects the Merkle tree block size (a power of two, 1024..65536).
func WithBlockSize(n int) Option { return func(p *Params) { p.BlockSize = n } }

// WithSalt sets the salt (at most 32 bytes).
func WithSalt(s []byte) Option { return func(p *Params) { p.Salt = append([]byte(nil), s...) } }

// NewParams returns Params with the defaults changed by opts, validated.
func NewParams(opts ...Option) (Params, error) {
	p := Params{Algorithm: SHA256, BlockSize: DefaultBlockSize}
	for _, o := range opts {
		o(&p)
	}
	if p.Algorithm.Size() == 0 {
		return p, fmt.Errorf("%w: unknown hash algorithm %d", ErrInvalidParams, p.Algorithm)
	}
	if p.BlockSize < 1024 || p.BlockSize > 65536 || p.BlockSize&(p.BlockSize-1) != 0 {
		return p, fmt.Errorf("%w: block size %d is not a power of two in 1024..65536", ErrInvalidParams, p.BlockSize)
	}
	if len(p.Salt) > 32 {
		return p, fmt.Errorf("%w: salt of %d bytes is longer than 32", ErrInvalidParams, len(p.Salt))
	}
	return p, nil
}

// Hasher computes an fs-verity digest of the bytes written to it. Memory is
// bounded by the tree depth, not by the amount of data: one block per tree
// level, plus, for large writes, a small buffer of leaf hashes.
//
// Large writes have their leaf blocks hashed by several goroutines (see
// SetConcurrency); the digest does not depend on how the data is split.
type Hasher struct {
	p       Params
	ds      int // digest size
	bs      int // Merkle tree block size
	h       hash.Hash
	salt    []byte // salt zero-padded to the hash's block size, or nil
	buf     []byte // partial leaf block, cap bs
	levels  []level
	size    uint64
	scratch [64]byte

	ph      *pairHasher // SHA-256 leaf blocks two at a time, or nil
	workers int         // goroutines for the leaf level of large writes
	whash   []hash.Hash // per extra worker, reused
	sums    []byte      // leaf hashes of one parallel round
	wg      sync.WaitGroup
}

// level accumulates the hashes of one tree level until they fill a block.
type level struct {
	buf     []byte
	emitted int64 // blocks of this level already hashed into the next one
}

// zeros pads short blocks; a block is at most 65536 bytes.
var zeros [65536]byte

// Variables, not constants, so that tests can make tiny writes take the
// parallel path.
var (
	// parallelMinBytes is the smallest run of leaf blocks worth splitting
	// over goroutines: below it the hand-off costs more than it saves.
	parallelMinBytes = 256 << 10
	// parallelMaxBytes bounds one parallel round, so that a huge Write does
	// not need a huge buffer of leaf hashes.
	parallelMaxBytes = 8 << 20
)

// NewHasher returns a Hasher for the given options.
func NewHasher(opts ...Option) (*Hasher, error) {
	p, err := NewParams(opts...)
	if err != nil {
		return nil, err
	}
	return newHasher(p), nil
}

func newHasher(p Params) *Hasher {
	h := &Hasher{p: p, ds: p.Algorithm.Size(), bs: p.BlockSize, h: p.Algorithm.new()}
	if len(p.Salt) > 0 {
		hbs := h.h.BlockSize()
		h.salt = make([]byte, (len(p.Salt)+hbs-1)/hbs*hbs)
		copy(h.salt, p.Salt)
	}
	h.buf = make([]byte, 0, p.BlockSize)
	h.workers = runtime.GOMAXPROCS(0)
	if p.Algorithm == SHA256 && use2x() {
		h.ph = newPairHasher(h.salt, p.BlockSize)
	}
	return h
}

// SetConcurrency sets how many goroutines hash the leaf blocks of a large
// Write (n <= 0 means GOMAXPROCS, the default). 1 keeps all hashing on the
// calling goroutine.
func (h *Hasher) SetConcurrency(n int) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	h.workers = n
}

// Reset discards everything written, keeping the parameters and buffers, so
// that one Hasher can digest many files without allocating.
func (h *Hasher) Reset() {
	h.buf = h.buf[:0]
	for i := range h.levels {
		h.levels[i].buf = h.levels[i].buf[:0]
		h.levels[i].emitted = 0
	}
	h.size = 0
}

// Params returns the parameters the Hasher computes with.
func (h *Hasher) Params() Params { return h.p }

// hashBlock returns H(salt || block || zero padding to a full block),
// computed with hh. The result is appended to out.
func (h *Hasher) hashBlock(hh hash.Hash, block, out []byte) []byte {
	hh.Reset()
	if h.salt != nil {
		hh.Write(h.salt)
	}
	hh.Write(block)
	if len(block) < h.bs {
		hh.Write(zeros[:h.bs-len(block)])
	}
	return hh.Sum(out)
}

// push appends sum, the hash of a block one level down, to h.levels[l],
// hashing that level's block into level l+1 whenever it fills up.
func (h *Hasher) push(l int, sum []byte) {
	for {
		if len(h.levels) <= l {
			h.levels = append(h.levels, level{})
		}
		lv := &h.levels[l]
		if lv.buf == nil {
			lv.buf = make([]byte, 0, h.bs)
		}
		lv.buf = append(lv.buf, sum...)
		if len(lv.buf) < h.bs {
			return
		}
		// sum may alias h.scratch; it has been copied into lv.buf above.
		sum = h.hashBlock(h.h, lv.buf, h.scratch[:0])
		lv.buf = lv.buf[:0]
		lv.emitted++
		l++
	}
}

// pushLeaves adds consecutive leaf hashes to level 0.
func (h *Hasher) pushLeaves(sums []byte) {
	for len(sums) > 0 {
		if len(h.levels) == 0 {
			h.levels = append(h.levels, level{})
		}
		lv := &h.levels[0]
		if lv.buf == nil {
			lv.buf = make([]byte, 0, h.bs)
		}
		k := min(len(sums), h.bs-len(lv.buf))
		lv.buf = append(lv.buf, sums[:k]...)
		sums = sums[k:]
		if len(lv.buf) == h.bs {
			s := h.hashBlock(h.h, lv.buf, h.scratch[:0])
			lv.buf = lv.buf[:0]
			lv.emitted++
			h.push(1, s)
		}
	}
}

// hashLeaves hashes the full blocks of p (len(p) is a multiple of bs) and
// adds their hashes to the tree.
func (h *Hasher) hashLeaves(p []byte) {
	for len(p) > 0 {
		n := len(p)
		if h.workers > 1 && n >= parallelMinBytes {
			n = min(n, max(h.bs, parallelMaxBytes/h.bs*h.bs))
			h.hashLeavesParallel(p[:n])
		} else {
			n = min(n, 64*h.bs)
			h.pushLeaves(h.hashRun(h.h, p[:n], h.sumsBuf(n/h.bs)))
		}
		p = p[n:]
	}
}

// hashRun appends to out the hashes of the full blocks of p, using hh or,
// for SHA-256, the two-at-a-time hasher. Safe to run concurrently with
// distinct hh and out.
func (h *Hasher) hashRun(hh hash.Hash, p, out []byte) []byte {
	if h.ph != nil {
		for ; len(p) >= 2*h.bs; p = p[2*h.bs:] {
			out = h.ph.sum2(p[:h.bs], p[h.bs:2*h.bs], out)
		}
	}
	for ; len(p) > 0; p = p[h.bs:] {
		out = h.hashBlock(hh, p[:h.bs], out)
	}
	return out
}

func (h *Hasher) sumsBuf(blocks int) []byte {
	if cap(h.sums) < blocks*h.ds {
		h.sums = make([]byte, 0, blocks*h.ds)
	}
	return h.sums[:0]
}

// hashLeavesParallel splits the blocks of p into one contiguous run per
// worker; each writes its hashes into its own part of h.sums, so the order
// of the leaves is kept without any locking.
func (h *Hasher) hashLeavesParallel(p []byte) {
	blocks := len(p) / h.bs
	w := min(h.workers, blocks)
	for len(h.whash) < w-1 {
		h.whash = append(h.whash, h.p.Algorithm.new())
	}
	sums := h.sumsBuf(blocks)[:blocks*h.ds]
	per := (blocks + w - 1) / w
	for i := 1; i < w; i++ {
		lo, hi := i*per, min((i+1)*per, blocks)
		if lo >= hi {
			break
		}
		h.wg.Add(1)
		go func(hh hash.Hash, lo, hi int) {
			defer h.wg.Done()
			h.hashRun(hh, p[lo*h.bs:hi*h.bs], sums[lo*h.ds:lo*h.ds])
		}(h.whash[i-1], lo, hi)
	}
	h.hashRun(h.h, p[:min(per, blocks)*h.bs], sums[:0])
	h.wg.Wait()
	h.pushLeaves(sums)
}

// Write adds data; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	h.size += uint64(n)
	if len(h.buf) > 0 {
		k := copy(h.buf[len(h.buf):h.bs], p)
		h.buf = h.buf[:len(h.buf)+k]
		p = p[k:]
		if len(h.buf) < h.bs {
			return n, nil
		}
		h.pushLeaves(h.hashBlock(h.h, h.buf, h.scratch[:0]))
		h.buf = h.buf[:0]
	}
	full := len(p) / h.bs * h.bs
	h.hashLeaves(p[:full])
	h.buf = append(h.buf, p[full:]...)
	return n, nil
}

// HashLeaves appends to out the hashes of the Merkle tree leaves of data:
// one per block, the last block zero-padded, pairs of blocks in the two
// SHA-256 lanes, all on the calling goroutine. It lets a big file be
// hashed in pieces by several goroutines, each with its own Hasher: data
// is the piece, starting at a block boundary of the file; SumLeaves then
// finishes the digest from all the leaves. HashLeaves does not change h's
// own state.
func (h *Hasher) HashLeaves(data, out []byte) []byte {
	full := len(data) / h.bs * h.bs
	out = h.hashRun(h.h, data[:full], out)
	if full < len(data) {
		out = h.hashBlock(h.h, data[full:], out)
	}
	return out
}

// SumLeaves resets h and returns the digest of a file of size bytes whose
// leaf hashes, in order, are leaves (from HashLeaves: one per block).
func (h *Hasher) SumLeaves(size uint64, leaves []byte) []byte {
	h.Reset()
	h.pushLeaves(leaves)
	h.size = size
	return h.Sum()
}

// rootHash finishes the tree. An empty input has an all-zero root hash.
func (h *Hasher) rootHash() []byte {
	root := make([]byte, h.ds)
	if h.size == 0 {
		return root
	}
	if len(h.buf) > 0 {
		h.pushLeaves(h.hashBlock(h.h, h.buf, h.scratch[:0]))
		h.buf = h.buf[:0]
	}
	for i := 0; i < len(h.levels); i++ {
		lv := &h.levels[i]
		// A level that never filled a block and holds one hash is the top.
		// (Levels above it may exist, empty, from before a Reset.)
		if lv.emitted == 0 && len(lv.buf) == h.ds {
			copy(root, lv.buf)
			return root
		}
		if len(lv.buf) > 0 {
			s := h.hashBlock(h.h, lv.buf, h.scratch[:0])
			lv.buf = lv.buf[:0]
			lv.emitted++
			h.push(i+1, s)
		}
	}
	return root
}

// Sum finishes the computation and returns the fs-verity file digest: the
// hash of the fs-verity descriptor. Call Reset before using the Hasher again.
func (h *Hasher) Sum() []byte {
	return DescriptorDigest(h.p, h.size, h.rootHash())
}

// DescriptorDigest hashes a struct fsverity_descriptor (version 1, no signature).
func DescriptorDigest(p Params, size uint64, root []byte) []byte {
	var d [256]byte
	d[0] = 1
	d[1] = byte(p.Algorithm)
	d[2] = byte(log2(p.BlockSize))
	d[3] = byte(len(p.Salt))
	binary.LittleEndian.PutUint64(d[8:], size)
	copy(d[16:80], root)
	copy(d[80:112], p.Salt)
	hh := p.Algorithm.new()
	hh.Write(d[:])
	return hh.Sum(nil)
}

func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// FormattedDigest returns struct fsverity_formatted_digest: the message that
// fs-verity signatures (PKCS#7 from `fsverity sign`) sign.
func FormattedDigest(a Algorithm, digest []byte) []byte {
	b := make([]byte, 12+len(digest))
	copy(b, "FSVerity")
	binary.LittleEndian.PutUint16(b[8:], uint16(a))
	binary.LittleEndian.PutUint16(b[10:], uint16(len(digest)))
	copy(b[12:], digest)
	return b
}
