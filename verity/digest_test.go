//go:build !vmtest

package verity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

func TestEmptyFile(t *testing.T) {
	d, err := DigestReader(bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(d); got != emptyDigest {
		t.Fatalf("empty digest = %s, want %s", got, emptyDigest)
	}
	p := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = DigestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(d); got != emptyDigest {
		t.Fatalf("DigestFile(empty) = %s, want %s", got, emptyDigest)
	}
}

func TestFormattedDigest(t *testing.T) {
	d := mustHex(t, emptyDigest)
	got := FormattedDigest(SHA256, d)
	want := append([]byte("FSVerity\x01\x00\x20\x00"), d...)
	if !bytes.Equal(got, want) {
		t.Fatalf("FormattedDigest = %x, want %x", got, want)
	}
	d512 := bytes.Repeat([]byte{0xab}, 64)
	got = FormattedDigest(SHA512, d512)
	if hex.EncodeToString(got[:12]) != "465356657269747902004000" || !bytes.Equal(got[12:], d512) || len(got) != 76 {
		t.Fatalf("FormattedDigest(SHA512) = %x", got)
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		msg  string
	}{
		{[]Option{WithAlgorithm(3)}, "invalid fs-verity parameters: unknown hash algorithm 3"},
		{[]Option{WithBlockSize(512)}, "invalid fs-verity parameters: block size 512 is not a power of two in 1024..65536"},
		{[]Option{WithBlockSize(3000)}, "invalid fs-verity parameters: block size 3000 is not a power of two in 1024..65536"},
		{[]Option{WithBlockSize(131072)}, "invalid fs-verity parameters: block size 131072 is not a power of two in 1024..65536"},
		{[]Option{WithSalt(make([]byte, 33))}, "invalid fs-verity parameters: salt of 33 bytes is longer than 32"},
	} {
		_, err := NewHasher(tc.opts...)
		if !errors.Is(err, ErrInvalidParams) || err.Error() != tc.msg {
			t.Errorf("NewHasher error = %v, want %q", err, tc.msg)
		}
		if err := DigestFiles(context.Background(), []string{"x"}, func(FileDigest) error { return nil }, tc.opts...); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("DigestFiles error = %v, want ErrInvalidParams", err)
		}
	}
}

// paramSets are the parameter combinations every cross-check runs.
var paramSets = []struct {
	alg  Algorithm
	bs   int
	salt string // hex
}{
	{SHA256, 4096, ""},
	{SHA512, 4096, ""},
	{SHA256, 1024, "01"},
	{SHA512, 1024, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}, // 32 bytes
	{SHA256, 65536, "deadbeef"},
	{SHA512, 8192, "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829"[:64]},
	{SHA256, 2048, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
}

func optsOf(t testing.TB, alg Algorithm, bs int, salt string) []Option {
	return []Option{WithAlgorithm(alg), WithBlockSize(bs), WithSalt(mustHex(t, salt))}
}

// crossSizes are the sizes around every tree-shape boundary at 4096-byte
// SHA-256 blocks (128 hashes per block), plus random ones.
func crossSizes(r *rand.Rand) []int {
	sizes := []int{0, 1, 4095, 4096, 4097, 128*4096 - 1, 128 * 4096, 128*4096 + 1,
		128*128*4096 - 1, 128*128*4096 + 1}
	for range 8 {
		sizes = append(sizes, r.IntN(3<<20))
	}
	return sizes
}

// TestCrossCheckFsverity compares DigestFile, DigestFiles, the reference
// implementation and `fsverity digest` (fsverity-utils) on the same files.
func TestCrossCheckFsverity(t *testing.T) {
	if _, err := exec.LookPath("fsverity"); err != nil {
		t.Fatalf("fsverity-utils is required (apt-get install fsverity): %v", err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	sizes := crossSizes(r)
	var paths []string
	data := map[string][]byte{}
	for i, n := range sizes {
		p := filepath.Join(dir, fmt.Sprintf("f%02d-%d", i, n))
		b := randBytes(r, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		data[p] = b
	}
	for _, ps := range paramSets {
		name := fmt.Sprintf("%s-%d-salt%d", ps.alg, ps.bs, len(ps.salt)/2)
		t.Run(name, func(t *testing.T) {
			args := []string{"digest", "--hash-alg=" + ps.alg.String(), fmt.Sprintf("--block-size=%d", ps.bs)}
			if ps.salt != "" {
				args = append(args, "--salt="+ps.salt)
			}
			out, err := exec.Command("fsverity", append(args, paths...)...).Output()
			if err != nil {
				t.Fatalf("fsverity %v: %v", args, err)
			}
			want := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				d, p, ok := strings.Cut(line, " ")
				if !ok {
					t.Fatalf("bad fsverity output line %q", line)
				}
				want[p] = d
			}
			opts := optsOf(t, ps.alg, ps.bs, ps.salt)
			n := 0
			err = DigestFiles(context.Background(), paths, func(fd FileDigest) error {
				if fd.Path != paths[n] {
					t.Errorf("DigestFiles result %d is %s, want %s", n, fd.Path, paths[n])
				}
				n++
				if fd.Err != nil {
					return fd.Err
				}
				if got := ps.alg.String() + ":" + hex.EncodeToString(fd.Digest); got != want[fd.Path] {
					t.Errorf("%s: DigestFiles %s, fsverity %s", fd.Path, got, want[fd.Path])
				}
				return nil
			}, opts...)
			if err != nil || n != len(paths) {
				t.Fatalf("DigestFiles: %v after %d of %d", err, n, len(paths))
			}
			// All files in one Batch (its blocks of different files paired).
			b, err := NewBatch(opts...)
			if err != nil {
				t.Fatal(err)
			}
			var contents [][]byte
			for _, p := range paths {
				contents = append(contents, data[p])
			}
			sums := b.Digests(contents, nil)
			for i, p := range paths {
				ds := ps.alg.Size()
				if got := ps.alg.String() + ":" + hex.EncodeToString(sums[i*ds:(i+1)*ds]); got != want[p] {
					t.Errorf("%s: Batch %s, fsverity %s", p, got, want[p])
				}
			}
			for _, p := range paths {
				b := data[p]
				if len(b) > 4<<20 && ps.bs != 4096 {
					continue // the reference is slow; the boundaries matter at 4096
				}
				ref := ps.alg.String() + ":" + hex.EncodeToString(refDigest(b, ps.alg, ps.bs, mustHex(t, ps.salt)))
				if ref != want[p] {
					t.Errorf("%s: reference %s, fsverity %s", p, ref, want[p])
				}
				// One byte at a time through a reader that never fills a block.
				if len(b) <= 3*ps.bs {
					d, err := DigestReader(iotest.OneByteReader(bytes.NewReader(b)), opts...)
					if err != nil {
						t.Fatal(err)
					}
					if got := ps.alg.String() + ":" + hex.EncodeToString(d); got != want[p] {
						t.Errorf("%s: one byte at a time %s, fsverity %s", p, got, want[p])
					}
				}
			}
		})
	}
}

// TestSplitInvariance: the digest must not depend on how the data is cut
// into writes, nor on whether the leaves are hashed in parallel.
func TestSplitInvariance(t *testing.T) {
	forEachImpl(t, testSplitInvariance)
}

// forEachImpl runs test with the two-at-a-time SHA-256 leaf hashing (when
// the CPU has it) and with crypto/sha256 only.
func forEachImpl(t *testing.T, test func(*testing.T)) {
	impls := []bool{false}
	if have2x() {
		impls = append(impls, true)
	}
	for _, on := range impls {
		t.Run(fmt.Sprintf("sha256x2=%v", on), func(t *testing.T) {
			old := use2x
			use2x = func() bool { return on }
			defer func() { use2x = old }()
			test(t)
		})
	}
}

func testSplitInvariance(t *testing.T) {
	setParallel(t, 2*1024, 5*1024)
	r := rand.New(rand.NewPCG(7, 7))
	for _, ps := range paramSets {
		for _, n := range []int{0, 1, 1023, 1024, 1025, 40000, 300000, 1 << 20} {
			b := randBytes(r, n)
			want := refDigest(b, ps.alg, ps.bs, mustHex(t, ps.salt))
			for _, workers := range []int{1, 2, 3, 8} {
				h, err := NewHasher(optsOf(t, ps.alg, ps.bs, ps.salt)...)
				if err != nil {
					t.Fatal(err)
				}
				h.SetConcurrency(workers)
				for round := range 2 { // the second round checks Reset
					h.Reset()
					rest := b
					for len(rest) > 0 {
						k := min(len(rest), 1+r.IntN(3*ps.bs+7000))
						h.Write(rest[:k])
						rest = rest[k:]
					}
					if got := h.Sum(); !bytes.Equal(got, want) {
						t.Fatalf("%s/%d size %d workers %d round %d: %x, want %x", ps.alg, ps.bs, n, workers, round, got, want)
					}
				}
			}
		}
	}
}

// setParallel lowers the parallel thresholds so small inputs exercise the
// parallel leaf path, restoring them after the test.
func setParallel(t testing.TB, minBytes, maxBytes int) {
	oldMin, oldMax := parallelMinBytes, parallelMaxBytes
	parallelMinBytes, parallelMaxBytes = minBytes, maxBytes
	t.Cleanup(func() { parallelMinBytes, parallelMaxBytes = oldMin, oldMax })
}

func TestDigestFilesErrors(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 50 {
		p := filepath.Join(dir, fmt.Sprint(i))
		if i != 20 {
			if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, i*1000), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		paths = append(paths, p)
	}
	// Every file is reported in order, the missing one with its error.
	var got []string
	err := DigestFiles(context.Background(), paths, func(fd FileDigest) error {
		if fd.Err != nil {
			got = append(got, fd.Err.Error())
			return nil
		}
		got = append(got, fd.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[19] != paths[19] || got[21] != paths[21] ||
		got[20] != "open "+paths[20]+": no such file or directory" {
		t.Fatalf("DigestFiles reported %q", got)
	}
	// An error from fn ends the run and is returned.
	stop := errors.New("stop here")
	n := 0
	err = DigestFiles(context.Background(), paths, func(fd FileDigest) error {
		n++
		if fd.Err != nil {
			return stop
		}
		return nil
	})
	if err != stop || n != 21 {
		t.Fatalf("DigestFiles = %v after %d calls, want %v after 21", err, n, stop)
	}
	// A cancelled context ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = DigestFiles(ctx, paths, func(FileDigest) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DigestFiles(cancelled) = %v", err)
	}
	if err := DigestFiles(context.Background(), nil, func(FileDigest) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
}

type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrClosedPipe
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestDigestReaderError(t *testing.T) {
	if _, err := DigestReader(&errReader{n: 10000}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("DigestReader = %v, want the reader's error", err)
	}
	// The pipelined reader (large files, several cores) reports it too,
	// and otherwise agrees with the plain one.
	h, _ := NewHasher()
	h.SetConcurrency(2)
	if _, err := h.readPipelined(&errReader{n: 5<<20 + 3}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("readPipelined = %v, want the reader's error", err)
	}
	data := randBytes(rand.New(rand.NewPCG(1, 1)), 9<<20+5)
	for _, n := range []int{0, 1, readChunk, 9<<20 + 5} {
		h.Reset()
		if k, err := h.readPipelined(bytes.NewReader(data[:n])); err != nil || k != int64(n) {
			t.Fatalf("readPipelined(%d bytes) = %d, %v", n, k, err)
		}
		if got, want := h.Sum(), refDigest(data[:n], SHA256, 4096, nil); !bytes.Equal(got, want) {
			t.Fatalf("readPipelined(%d bytes): %x, want %x", n, got, want)
		}
	}
	if _, err := DigestFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DigestFile(missing) = %v", err)
	}
}

// TestImageVectors: the fs-verity digests of the golden composefs images.
func TestImageVectors(t *testing.T) {
	files, err := filepath.Glob("../testdata/vectors/out/*/image.fsverity")
	if err != nil || len(files) != 15 {
		t.Fatalf("found %d image.fsverity files (%v), want 15", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		d, err := DigestFile(filepath.Join(filepath.Dir(f), "image.cfs"))
		if err != nil {
			t.Fatal(err)
		}
		if got := "sha256:" + hex.EncodeToString(d); got != want {
			t.Errorf("%s: %s, want %s", f, got, want)
		}
	}
}

// TestTreeVectors rebuilds every vector's tree from its recipe and checks
// each regular file against file-fsverity.txt (made by `fsverity digest`).
func TestTreeVectors(t *testing.T) {
	testutil.RequiresRoot(t)
	recipes, err := filepath.Glob("../testdata/vectors/recipes/*.sh")
	if err != nil || len(recipes) != 15 {
		t.Fatalf("found %d recipes (%v), want 15", len(recipes), err)
	}
	vecdir, err := filepath.Abs("../testdata/vectors")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, recipe := range recipes {
		name := strings.TrimSuffix(filepath.Base(recipe), ".sh")
		t.Run(name, func(t *testing.T) {
			tree := filepath.Join(t.TempDir(), "tree")
			cmd := exec.Command("bash", "-c", `set -e; umask 022; mkdir "$T"; chmod 0755 "$T"; . ./lib.sh; . "recipes/$R.sh"`)
			cmd.Dir = vecdir
			cmd.Env = append(os.Environ(), "T="+tree, "R="+name)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("recipe %s: %v\n%s", name, err, out)
			}
			f, err := os.Open(filepath.Join(vecdir, "out", name, "file-fsverity.txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var paths, want []string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				d, p, ok := strings.Cut(sc.Text(), " ")
				if !strings.HasPrefix(d, "sha256:") && len(paths) > 0 {
					// A file name with a newline in it (09-names).
					paths[len(paths)-1] += "\n" + sc.Text()
					continue
				}
				if !ok {
					t.Fatalf("bad line %q", sc.Text())
				}
				paths = append(paths, filepath.Join(tree, p))
				want = append(want, d)
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			i := 0
			err = DigestFiles(context.Background(), paths, func(fd FileDigest) error {
				if fd.Err != nil {
					return fd.Err
				}
				if got := "sha256:" + hex.EncodeToString(fd.Digest); got != want[i] {
					t.Errorf("%s: %s, want %s", fd.Path, got, want[i])
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			total += i
		})
	}
	if total < 1000 {
		t.Fatalf("checked only %d files", total)
	}
	t.Logf("checked %d files", total)
}

// gen is the vectors' content generator (lib.sh): the AES-128-CTR keystream
// with key 000102..0f and IV = seed as big-endian u64, then zeros.
func gen(n int, seed uint64) []byte {
	key := mustHexP("000102030405060708090a0b0c0d0e0f")
	blk, _ := aes.NewCipher(key)
	iv := make([]byte, 16)
	for i := range 8 {
		iv[i] = byte(seed >> (56 - 8*i))
	}
	b := make([]byte, n)
	cipher.NewCTR(blk, iv).XORKeyStream(b, b)
	return b
}

func mustHexP(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestLargeFileVectors checks 05-large-files without root, regenerating the
// content in Go.
func TestLargeFileVectors(t *testing.T) {
	for _, tc := range []struct {
		size int
		seed uint64
		want string
	}{
		{1048576, 1, "da286ea6642c252551f309b6ec3765b0863bdace3e74c0ee6d3bee12b3f1794d"},
		{1048577, 2, "eed0b48fedc2770500335cbb97bb11923f8fadbb3f89faf5d78775438b21abb7"},
		{5242881, 3, "a50c05f4072af6969a3070019ef1dfd6116961259ce569d9902e95660e0b3309"},
	} {
		d, err := DigestReader(bytes.NewReader(gen(tc.size, tc.seed)))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(d); got != tc.want {
			t.Errorf("gen %d %d: %s, want %s", tc.size, tc.seed, got, tc.want)
		}
	}
}

// FuzzDigest compares the streaming, parallel Hasher with refDigest on
// arbitrary data, parameters and write sizes.
func FuzzDigest(f *testing.F) {
	setParallel(f, 2048, 3*4096)
	f.Add([]byte{}, uint8(0), uint8(2), []byte{}, uint16(0), uint8(1))
	f.Add([]byte("hello"), uint8(1), uint8(0), []byte("salt"), uint16(3), uint8(2))
	f.Add(bytes.Repeat([]byte{1}, 5000), uint8(0), uint8(0), []byte{}, uint16(4096), uint8(3))
	f.Add(bytes.Repeat([]byte{2}, 70000), uint8(0), uint8(0), []byte{9}, uint16(1000), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, algSel, bsSel uint8, salt []byte, chunk uint16, workers uint8) {
		// Bit 7 of workers turns the two-at-a-time SHA-256 path off.
		old := use2x
		on := have2x() && workers&0x80 == 0
		use2x = func() bool { return on }
		defer func() { use2x = old }()
		alg := SHA256
		if algSel%2 == 1 {
			alg = SHA512
		}
		bs := 1024 << (bsSel % 3) // 1024, 2048, 4096: small blocks make deep trees from small inputs
		if len(salt) > 32 {
			salt = salt[:32]
		}
		h, err := NewHasher(WithAlgorithm(alg), WithBlockSize(bs), WithSalt(salt))
		if err != nil {
			t.Fatal(err)
		}
		h.SetConcurrency(int(workers&3) + 1)
		step := int(chunk)%(3*bs) + 1
		for rest := data; len(rest) > 0; {
			k := min(step, len(rest))
			h.Write(rest[:k])
			rest = rest[k:]
		}
		got, want := h.Sum(), refDigest(data, alg, bs, salt)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s/%d salt %x len %d step %d: %x, want %x", alg, bs, salt, len(data), step, got, want)
		}
	})
}

func BenchmarkHasher(b *testing.B) {
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 64<<20)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			h, _ := NewHasher()
			h.SetConcurrency(workers)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h.Reset()
				for off := 0; off < len(data); off += readChunk {
					h.Write(data[off : off+readChunk])
				}
				h.Sum()
			}
		})
	}
}

// TestReset: one Hasher reused for inputs of falling and rising size, as
// DigestFiles' workers do, must forget the previous tree's shape.
func TestReset(t *testing.T) { forEachImpl(t, testReset) }

func testReset(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	h, err := NewHasher()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{128*128*4096 + 1, 4096, 0, 5000, 128*4096 + 1, 1, 128 * 4096, 4097} {
		b := randBytes(r, n)
		h.Reset()
		h.Write(b)
		if got, want := h.Sum(), refDigest(b, SHA256, 4096, nil); !bytes.Equal(got, want) {
			t.Fatalf("size %d after reuse: %x, want %x", n, got, want)
		}
	}
}
