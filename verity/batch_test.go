//go:build !vmtest

package verity

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestBatch: Batch.Digests equals the reference for every parameter set,
// for batches that mix tree shapes (empty, one block, partial last block,
// two tree levels) and odd and even numbers of blocks per level, with the
// two-lane hashing and without, and when the Batch is reused.
func TestBatch(t *testing.T) { forEachImpl(t, testBatch) }

func testBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, ps := range paramSets {
		bs := ps.bs
		per := bs / ps.alg.Size() // hashes per block
		shapes := []int{0, 1, bs - 1, bs, bs + 1, 2 * bs, 3*bs - 5, per * bs, per*bs + 1, 5000}
		b, err := NewBatch(optsOf(t, ps.alg, ps.bs, ps.salt)...)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 12 {
			// Batches of 1..len(shapes) files, in a random order.
			n := round%len(shapes) + 1
			var contents [][]byte
			var want []byte
			for range n {
				size := shapes[r.IntN(len(shapes))]
				if size > 1<<20 {
					size = 1 << 20
				}
				c := randBytes(r, size)
				contents = append(contents, c)
				want = append(want, refDigest(c, ps.alg, ps.bs, mustHex(t, ps.salt))...)
			}
			prefix := []byte("prefix")
			got := b.Digests(contents, prefix)
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("%s/%d: Digests did not append to out", ps.alg, bs)
			}
			if got = got[len(prefix):]; !bytes.Equal(got, want) {
				ds := ps.alg.Size()
				for i := range contents {
					if g, w := got[i*ds:min(len(got), (i+1)*ds)], want[i*ds:(i+1)*ds]; !bytes.Equal(g, w) {
						t.Errorf("%s/%d round %d: file %d of %d (%d bytes): %x, want %x", ps.alg, bs, round, i, n, len(contents[i]), g, w)
					}
				}
				t.FailNow()
			}
		}
	}
}

// TestBatchEmpty: nothing in, nothing out.
func TestBatchEmpty(t *testing.T) {
	b, err := NewBatch()
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Digests(nil, nil); len(got) != 0 {
		t.Fatalf("Digests(nil) = %x", got)
	}
	if _, err := NewBatch(WithBlockSize(1000)); err == nil {
		t.Fatal("NewBatch with a block size of 1000: no error")
	}
}

func BenchmarkBatch(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{1000, 4096, 20000} {
		var contents [][]byte
		total := 0
		for total < 256<<10 {
			contents = append(contents, randBytes(r, size))
			total += size
		}
		b.Run(fmt.Sprintf("size=%d/batch", size), func(b *testing.B) {
			bt, _ := NewBatch()
			out := make([]byte, 0, 32*len(contents))
			b.SetBytes(int64(total))
			for b.Loop() {
				out = bt.Digests(contents, out[:0])
			}
		})
		b.Run(fmt.Sprintf("size=%d/hasher", size), func(b *testing.B) {
			h, _ := NewHasher()
			b.SetBytes(int64(total))
			for b.Loop() {
				for _, c := range contents {
					h.Reset()
					h.Write(c)
					h.Sum()
				}
			}
		})
	}
}

// TestLeaves: a file hashed in pieces with HashLeaves (pieces of whole
// blocks, the last one partial) and finished with SumLeaves has the
// reference digest, whatever the pieces.
func TestLeaves(t *testing.T) { forEachImpl(t, testLeaves) }

func testLeaves(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, ps := range paramSets {
		bs := ps.bs
		per := bs / ps.alg.Size()
		h, err := NewHasher(optsOf(t, ps.alg, ps.bs, ps.salt)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 7, per * bs, per*bs + 1, 2*per*bs + 3*bs} {
			data := randBytes(r, n)
			want := refDigest(data, ps.alg, bs, mustHex(t, ps.salt))
			var leaves []byte
			for rest := data; len(rest) > 0; {
				k := min(len(rest), (1+r.IntN(5))*bs)
				leaves = h.HashLeaves(rest[:k], leaves)
				rest = rest[k:]
			}
			if got := h.SumLeaves(uint64(n), leaves); !bytes.Equal(got, want) {
				t.Fatalf("%s/%d size %d: %x, want %x", ps.alg, bs, n, got, want)
			}
		}
	}
}
