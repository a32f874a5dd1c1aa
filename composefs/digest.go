package composefs

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ImageDigest is a composefs digest: the fs-verity digest of the composefs
// (EROFS) image, with the parameters it was computed with.
type ImageDigest struct {
	Algorithm verity.Algorithm
	// BlockSize is the Merkle tree block size: 4096 or 65536.
	BlockSize int
	Value     []byte
}

// Name is the sealing spec's short form, e.g. "fsverity-sha256-12".
func (d ImageDigest) Name() string {
	return fmt.Sprintf("fsverity-%s-%d", d.Algorithm, bits.Len(uint(d.BlockSize))-1)
}

// AnnotationKey is the annotation that carries the digest.
func (d ImageDigest) AnnotationKey() string { return "composefs.merged.erofs.v1." + d.Name() }

// Hex is the lowercase hex digest, the annotation's value.
func (d ImageDigest) Hex() string { return hex.EncodeToString(d.Value) }

// String is "sha256:<hex>" for 4096-byte blocks (as `fsverity digest` prints
// it) and "fsverity-sha256-16:<hex>" otherwise.
func (d ImageDigest) String() string {
	if d.BlockSize == verity.DefaultBlockSize {
		return d.Algorithm.String() + ":" + d.Hex()
	}
	return d.Name() + ":" + d.Hex()
}

// Message returns the bytes every signature covers: struct
// fsverity_formatted_digest ("FSVerity", algorithm, size, digest).
func (d ImageDigest) Message() []byte { return verity.FormattedDigest(d.Algorithm, d.Value) }

// VerityOptions returns the options that compute this kind of digest with
// package verity.
func (d ImageDigest) VerityOptions() []verity.Option {
	return []verity.Option{verity.WithAlgorithm(d.Algorithm), verity.WithBlockSize(d.BlockSize)}
}

// ParseAlgorithm parses a sealing-spec algorithm name such as
// "fsverity-sha256-12" (the "fsverity-" prefix is optional) into the hash
// algorithm and the Merkle tree block size.
func ParseAlgorithm(name string) (verity.Algorithm, int, error) {
	rest := strings.TrimPrefix(name, "fsverity-")
	alg, bits, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, fmt.Errorf("unknown fs-verity algorithm %q (want fsverity-{sha256|sha512}-{12|16})", clip(name))
	}
	var a verity.Algorithm
	switch alg {
	case "sha256":
		a = verity.SHA256
	case "sha512":
		a = verity.SHA512
	default:
		return 0, 0, fmt.Errorf("unknown fs-verity algorithm %q: hash %q is not sha256 or sha512", clip(name), clip(alg))
	}
	switch bits {
	case "12":
		return a, 4096, nil
	case "16":
		return a, 65536, nil
	}
	return 0, 0, fmt.Errorf("unknown fs-verity algorithm %q: block size 2^%s is not 2^12 or 2^16", clip(name), clip(bits))
}

// ParseDigest parses a digest given on a command line: "sha256:<hex>",
// "sha512:<hex>", "fsverity-sha256-16:<hex>" or bare hex (SHA-256 or SHA-512
// by length, 4096-byte blocks).
func ParseDigest(s string) (ImageDigest, error) {
	name, hexval, ok := strings.Cut(s, ":")
	if !ok {
		hexval = s
		name = "fsverity-sha256-12"
		if len(s) == 2*verity.SHA512.Size() {
			name = "fsverity-sha512-12"
		}
	} else if name == "sha256" || name == "sha512" {
		name = "fsverity-" + name + "-12"
	}
	alg, bs, err := ParseAlgorithm(name)
	if err != nil {
		return ImageDigest{}, err
	}
	return ParseDigestValue(alg, bs, hexval)
}

// ParseDigestValue parses the hex value of a digest of a known algorithm
// and block size (an annotation's value).
func ParseDigestValue(alg verity.Algorithm, bs int, s string) (ImageDigest, error) {
	d := ImageDigest{Algorithm: alg, BlockSize: bs}
	want := 2 * alg.Size()
	if prefix, bare, ok := strings.Cut(s, ":"); ok {
		// "sha256:HEX" is how digests are printed and given on command
		// lines; an annotation's value is the hex alone.
		return d, fmt.Errorf("digest %q has the prefix %q: the value is the bare lowercase hex digest (%s), as `cfs-runtime sign --format annotations` prints it", clip(s), clip(prefix+":"), clip(bare))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return d, fmt.Errorf("digest %q is not lowercase hex (byte %d is %q)", clip(s), i, c)
		}
	}
	if len(s) != want {
		return d, fmt.Errorf("digest %q has %d hex digits, %s needs %d", clip(s), len(s), d.Name(), want)
	}
	d.Value, _ = hex.DecodeString(s)
	return d, nil
}

// clip shortens untrusted text for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
