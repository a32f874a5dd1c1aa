package verity

import "encoding/binary"

// Batch computes the digests of many small files whose contents are in
// memory. A Hasher pairs the leaf blocks of one file in the two SHA-256
// lanes (sha256x2), but a file of one block has nothing to pair its leaf
// with, and every file ends with its last leaf, its upper tree blocks and
// its descriptor on one lane. A Batch pairs blocks of different files
// instead: all the leaves of the batch, then all the tree blocks of the
// next level, and so on, then all the descriptors, two at a time. Where
// there is no two-lane hashing (another algorithm, another CPU) it digests
// the files one by one.
//
// A Batch reuses its buffers: digesting a batch allocates nothing once
// they have grown. It is not safe for concurrent use.
type Batch struct {
	h     *Hasher     // the parameters, one-lane hashing, the fallback
	dph   *pairHasher // descriptors: 256-byte messages without the salt
	files []batchFile
	blks  [][]byte // the blocks of the current level, every one bs long
	sums  []byte   // their hashes
	tails []byte   // the files' last blocks, zero-padded
	next  []byte   // the blocks of the next level: hashes, zero-padded
	descs []byte   // the descriptors
}

// batchFile is where one file of a batch has got to: its blocks of the
// current level are blks[first:first+n]; n == 0 once its root is known.
type batchFile struct {
	first, n int
	root     [64]byte
}

// descriptorSize is the size of struct fsverity_descriptor.
const descriptorSize = 256

// NewBatch returns a Batch for the given options (those of NewHasher).
func NewBatch(opts ...Option) (*Batch, error) {
	h, err := NewHasher(opts...)
	if err != nil {
		return nil, err
	}
	b := &Batch{h: h}
	if h.ph != nil {
		b.dph = newPairHasher(nil, descriptorSize)
	}
	return b, nil
}

// Digests appends to out the fs-verity digest of each of contents, in
// order: the digest size (Algorithm.Size) each.
func (b *Batch) Digests(contents [][]byte, out []byte) []byte {
	h := b.h
	if h.ph == nil {
		for _, c := range contents {
			h.Reset()
			h.Write(c)
			out = append(out, h.Sum()...)
		}
		return out
	}
	bs, ds := h.bs, h.ds
	// The leaves. The partial last blocks are copied into tails, sized
	// first so that the blocks aliasing it stay valid.
	ntails := 0
	for _, c := range contents {
		if len(c)%bs != 0 {
			ntails++
		}
	}
	b.tails = grow(b.tails, ntails*bs)
	files := b.files[:0]
	blks := b.blks[:0]
	tails := b.tails
	for _, c := range contents {
		f := batchFile{first: len(blks)}
		full := len(c) / bs * bs
		for off := 0; off < full; off += bs {
			blks = append(blks, c[off:off+bs])
		}
		if full < len(c) {
			t := tails[:bs]
			tails = tails[bs:]
			clear(t[copy(t, c[full:]):])
			blks = append(blks, t)
		}
		f.n = len(blks) - f.first // 0 for an empty file: an all-zero root
		files = append(files, f)
	}
	// One level of every file per round: a file whose level has one
	// block has that block's hash as its root; the others' hashes are
	// the blocks of their next level.
	for len(blks) > 0 {
		b.sums = b.hashBlocks(blks, b.sums[:0])
		need := 0
		for i := range files {
			if n := files[i].n; n > 1 {
				need += (n*ds + bs - 1) / bs * bs
			}
		}
		// The current level's blocks may alias b.next: they are hashed,
		// so it can be overwritten.
		b.next = grow(b.next, need)
		next := b.next
		nblks := blks[:0] // files only move down the list: no overwrite ahead
		for i := range files {
			f := &files[i]
			switch {
			case f.n == 0:
				continue
			case f.n == 1:
				copy(f.root[:], b.sums[f.first*ds:(f.first+1)*ds])
				f.n = 0
				continue
			}
			k := (f.n*ds + bs - 1) / bs
			lv := next[:k*bs]
			next = next[k*bs:]
			clear(lv[copy(lv, b.sums[f.first*ds:(f.first+f.n)*ds]):])
			f.first, f.n = len(nblks), k
			for j := range k {
				nblks = append(nblks, lv[j*bs:(j+1)*bs])
			}
		}
		blks = nblks
	}
	// The descriptors, two at a time as well.
	b.descs = grow(b.descs, len(contents)*descriptorSize)
	for i, c := range contents {
		d := b.descs[i*descriptorSize : (i+1)*descriptorSize]
		clear(d)
		d[0] = 1
		d[1] = byte(h.p.Algorithm)
		d[2] = byte(log2(bs))
		d[3] = byte(len(h.p.Salt))
		binary.LittleEndian.PutUint64(d[8:], uint64(len(c)))
		copy(d[16:80], files[i].root[:ds])
		copy(d[80:112], h.p.Salt)
		blks = append(blks, d)
	}
	b.files, b.blks = files[:0], blks[:0]
	for ; len(blks) >= 2; blks = blks[2:] {
		out = b.dph.sum2(blks[0], blks[1], out)
	}
	if len(blks) == 1 {
		h.h.Reset()
		h.h.Write(blks[0])
		out = h.h.Sum(out)
	}
	return out
}

// hashBlocks appends the hashes of blks (each a whole block) to out, two
// at a time.
func (b *Batch) hashBlocks(blks [][]byte, out []byte) []byte {
	h := b.h
	for ; len(blks) >= 2; blks = blks[2:] {
		out = h.ph.sum2(blks[0], blks[1], out)
	}
	if len(blks) == 1 {
		out = h.hashBlock(h.h, blks[0], out)
	}
	return out
}

// grow returns b with length n, reallocated (with room to spare, so that
// batches of slowly growing sizes do not reallocate every time) only when
// too small. The contents are not kept.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, max(n, 2*cap(b)))
	}
	return b[:n]
}
