package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
	"golang.org/x/sys/unix"
)

// Revocation is one entry of the revocation list: "sha256:HEX" or
// "sha512:HEX" (a composefs digest) or "key:HEX" (the SHA-256 of a
// signer's public key, as KeyFingerprint and `policy check` print it).
type Revocation struct {
	Entry   string
	Comment string
	Line    int
}

// IsKey reports whether the entry revokes a key (else a digest).
func (r Revocation) IsKey() bool { return strings.HasPrefix(r.Entry, "key:") }

// String is "ENTRY (line N: comment)" for messages.
func (r Revocation) String() string {
	if r.Comment != "" {
		return fmt.Sprintf("%s (line %d: %s)", r.Entry, r.Line, r.Comment)
	}
	return fmt.Sprintf("%s (line %d)", r.Entry, r.Line)
}

// RevocationEntry is the entry that revokes digest d: its algorithm and
// hex value, whatever its block size.
func RevocationEntry(d Digest) string { return d.Algorithm.String() + ":" + d.Hex() }

// CanonicalRevocation returns the entry s names: "sha256:HEX",
// "sha512:HEX", "key:HEX" ("key:sha256:HEX" too), hex in lower case.
func CanonicalRevocation(s string) (string, error) {
	kind, h, ok := strings.Cut(s, ":")
	want := 0
	switch kind {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	case "key":
		want = 64
		h = strings.TrimPrefix(h, "sha256:")
	}
	if !ok || want == 0 {
		return "", fmt.Errorf("%q is neither sha256:HEX, sha512:HEX (a composefs digest) nor key:HEX (a key id as `cfs-runtime policy check` prints it)", s)
	}
	h = strings.ToLower(h)
	if len(h) != want {
		return "", fmt.Errorf("%q: want %d hex digits after %s:, got %d", s, want, kind, len(h))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("%q: what follows %s: is not hex", s, kind)
	}
	return kind + ":" + h, nil
}

// ParseRevocations reads a revocation list: one entry a line, an optional
// "# comment" after it; blank lines and lines that are only a comment are
// skipped. Any other line is an error naming it: a mistyped revocation
// must not pass silently.
func ParseRevocations(path string, data []byte) ([]Revocation, error) {
	var out []Revocation
	for i, line := range strings.Split(string(data), "\n") {
		entry, comment, _ := strings.Cut(line, "#")
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		e, err := CanonicalRevocation(entry)
		if err != nil {
			return nil, fmt.Errorf("%w: revocation list %s:%d: %v", ErrPolicy, path, i+1, err)
		}
		out = append(out, Revocation{Entry: e, Comment: strings.TrimSpace(comment), Line: i + 1})
	}
	return out, nil
}

// revocations is the policy's revocation list as a sorted array of the
// SHA-256 of each entry: a lookup is a binary search, and the array is
// what the on-disk index (WithRevocationIndex) holds, so that a create
// does not parse a long list it has seen before.
type revocations struct {
	path   string
	hashes []byte // sorted, 32 bytes each
}

func entryHash(entry string) [32]byte { return sha256.Sum256([]byte(entry)) }

func (r *revocations) has(entry string) bool {
	if r == nil {
		return false
	}
	h := entryHash(entry)
	n := len(r.hashes) / 32
	i := sort.Search(n, func(i int) bool { return bytes.Compare(r.hashes[i*32:i*32+32], h[:]) >= 0 })
	return i < n && bytes.Equal(r.hashes[i*32:i*32+32], h[:])
}

// find re-reads the list for the line that revokes entry (for the
// refusal's message; only a refusal pays for it).
func (r *revocations) find(entry string) Revocation {
	if data, err := rawfile.ReadFile(r.path); err == nil {
		if list, err := ParseRevocations(r.path, data); err == nil {
			for _, x := range list {
				if x.Entry == entry {
					return x
				}
			}
		}
	}
	return Revocation{Entry: entry}
}

// refuse is the refusal for a revoked entry.
func (r *revocations) refuse(what, entry string) error {
	x := r.find(entry)
	where := ""
	if x.Line > 0 {
		where = fmt.Sprintf(" line %d", x.Line)
	}
	if x.Comment != "" {
		where += fmt.Sprintf(" (%s)", x.Comment)
	}
	return fmt.Errorf("%w: %s is revoked by %s%s", ErrRevoked, what, r.path, where)
}

// The index: magic, then the list file's identity (device, inode, size,
// modification and change times in nanoseconds) and path, then the sorted
// hashes. It is valid only for a file with exactly that identity.
const revIndexMagic = "cfsrevo1"

// revIndexName is the index's name in the state directory: a dot file,
// which the state directory's readers (cleanup, images, gc) skip as no
// container's.
const revIndexName = ".revoked-index"

func revStamp(st *unix.Stat_t, path string) []byte {
	b := make([]byte, 0, 8+5*8+2+len(path))
	b = append(b, revIndexMagic...)
	for _, v := range []uint64{st.Dev, st.Ino, uint64(st.Size), uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano())} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(path)))
	return append(b, path...)
}

// loadRevocations reads the revocation list at path after the policy's
// ownership check. With indexDir, it uses the index there when it was made
// from this very file, and writes one when not (best effort).
func loadRevocations(path string, check FileCheck, indexDir string) (*revocations, error) {
	if err := check(path); err != nil {
		if errors.Is(err, ErrInsecurePolicy) {
			return nil, fmt.Errorf("revocation list %s: %w", path, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("revocation list", path, err))
	}
	fd, err := rawfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("revocation list", path, err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("revocation list", path, err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: revocation list %s is not a regular file", ErrPolicy, path)
	}
	stamp := revStamp(&st, path)
	var index string
	if indexDir != "" {
		index = filepath.Join(indexDir, revIndexName)
		if r := mapIndex(index, path, stamp); r != nil {
			return r, nil
		}
	}
	data := make([]byte, st.Size)
	if n, err := rawfile.ReadFull(fd, data); err != nil || int64(n) != st.Size {
		return nil, fmt.Errorf("%w: revocation list %s: changed while read, or unreadable: %v", ErrPolicy, path, err)
	}
	list, err := ParseRevocations(path, data)
	if err != nil {
		return nil, err
	}
	r := &revocations{path: path, hashes: make([]byte, 0, 32*len(list))}
	hs := make([][32]byte, len(list))
	for i, x := range list {
		hs[i] = entryHash(x.Entry)
	}
	sort.Slice(hs, func(i, j int) bool { return bytes.Compare(hs[i][:], hs[j][:]) < 0 })
	for _, h := range hs {
		r.hashes = append(r.hashes, h[:]...)
	}
	if index != "" {
		// Best effort: without an index the next create parses again.
		_ = atomicfile.WriteFile(index, append(stamp, r.hashes...), 0o600, atomicfile.NoDirSync())
	}
	return r, nil
}

// mapIndex maps the index read-only if this user owns it, nobody else can
// write it and it was made from the file with stamp: a lookup then touches
// a few pages of it, not all (nil otherwise).
func mapIndex(index, path string, stamp []byte) *revocations {
	fd, err := rawfile.Open(index)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	n := st.Size - int64(len(stamp))
	if n < 0 || n%32 != 0 || st.Size > 1<<31 {
		return nil
	}
	if n == 0 {
		return &revocations{path: path}
	}
	b, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	if !bytes.Equal(b[:len(stamp)], stamp) {
		unix.Munmap(b)
		return nil
	}
	r := &revocations{path: path, hashes: b[len(stamp):]}
	// The index is replaced by rename, never rewritten: the mapping stays
	// what was checked. It is unmapped when r is gone.
	runtime.AddCleanup(r, func(b []byte) { unix.Munmap(b) }, b)
	return r
}
