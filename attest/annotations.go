// Package attest decides whether a container may start: it reads the composefs
// digest and its signatures from the bundle's annotations, checks them against
// the administrator's trust policy and returns a Verdict. It also makes the
// signatures (for `cfs-runtime sign`).
//
// Annotations are untrusted input: any Kubernetes user can set pod
// annotations. Nothing here ever takes a key, a certificate, a trust root or a
// file path from them; they only carry a digest and signatures, which are
// checked against material named in the root-owned policy file.
package attest

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Annotation keys. The digest key follows the composefs OCI sealing spec:
// composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, where the
// number is log2 of the fs-verity Merkle tree block size. The signature
// annotations are the digest key plus a suffix.
const (
	// DigestAnnotationPrefix starts every digest annotation key.
	DigestAnnotationPrefix = "composefs.merged.erofs.v1.fsverity-"
	// DefaultDigestAnnotation is the key for SHA-256, 4096-byte blocks.
	DefaultDigestAnnotation = DigestAnnotationPrefix + "sha256-12"

	// SigSuffix: base64 of a detached DER PKCS#7 signature over the fs-verity
	// formatted digest, exactly what `fsverity sign` writes (sealing spec).
	SigSuffix = ".sig"
	// CosignSuffix: base64 of an ASN.1/raw signature made with a key pair
	// over the formatted-digest bytes, exactly what
	// `cosign sign-blob --key KEY FILE` prints when FILE holds those bytes.
	CosignSuffix = ".cosign"
	// BundleSuffix: a sigstore bundle (JSON, media type
	// application/vnd.dev.sigstore.bundle.v0.3+json or older) whose message
	// signature covers the formatted-digest bytes (keyless signing).
	BundleSuffix = ".sigstore-bundle"
)

// maxAnnotationValue bounds what is decoded from one annotation, so that a
// hostile annotation cannot make the runtime allocate or parse without limit.
// A PKCS#7 signature is well under 8 KiB; a sigstore bundle with a
// certificate chain, timestamps and inclusion proof is a few KiB.
const maxAnnotationValue = 256 << 10

// SignatureKind says which annotation a signature came from.
type SignatureKind int

const (
	PKCS7Signature  SignatureKind = iota + 1 // <digest key>.sig
	CosignSignature                          // <digest key>.cosign
	SigstoreBundle                           // <digest key>.sigstore-bundle
)

// Suffix returns the annotation key suffix of the kind.
func (k SignatureKind) Suffix() string {
	switch k {
	case PKCS7Signature:
		return SigSuffix
	case CosignSignature:
		return CosignSuffix
	case SigstoreBundle:
		return BundleSuffix
	}
	return ""
}

// String names the kind for messages.
func (k SignatureKind) String() string {
	switch k {
	case PKCS7Signature:
		return "PKCS#7 signature"
	case CosignSignature:
		return "cosign signature"
	case SigstoreBundle:
		return "sigstore bundle"
	}
	return fmt.Sprintf("signature kind %d", int(k))
}

var signatureKinds = []SignatureKind{PKCS7Signature, CosignSignature, SigstoreBundle}

// Digest is a composefs digest: the fs-verity digest of the composefs
// (EROFS) image, with the parameters it was computed with.
type Digest struct {
	Algorithm verity.Algorithm
	// BlockSize is the Merkle tree block size: 4096 or 65536.
	BlockSize int
	Value     []byte
}

// Name is the sealing spec's short form, e.g. "fsverity-sha256-12".
func (d Digest) Name() string {
	return fmt.Sprintf("fsverity-%s-%d", d.Algorithm, log2(d.BlockSize))
}

// AnnotationKey is the annotation that carries the digest.
func (d Digest) AnnotationKey() string { return "composefs.merged.erofs.v1." + d.Name() }

// Hex is the lowercase hex digest, the annotation's value.
func (d Digest) Hex() string { return hex.EncodeToString(d.Value) }

// String is "sha256:<hex>" for 4096-byte blocks (as `fsverity digest` prints
// it) and "fsverity-sha256-16:<hex>" otherwise.
func (d Digest) String() string {
	if d.BlockSize == verity.DefaultBlockSize {
		return d.Algorithm.String() + ":" + d.Hex()
	}
	return d.Name() + ":" + d.Hex()
}

// Message returns the bytes every signature covers: struct
// fsverity_formatted_digest ("FSVerity", algorithm, size, digest).
func (d Digest) Message() []byte { return verity.FormattedDigest(d.Algorithm, d.Value) }

// VerityOptions returns the options that compute this kind of digest with
// package verity.
func (d Digest) VerityOptions() []verity.Option {
	return []verity.Option{verity.WithAlgorithm(d.Algorithm), verity.WithBlockSize(d.BlockSize)}
}

func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// ParseAlgorithm parses a sealing-spec algorithm name such as
// "fsverity-sha256-12" (the "fsverity-" prefix is optional) into the hash
// algorithm and the Merkle tree block size.
func ParseAlgorithm(name string) (verity.Algorithm, int, error) {
	return parseAlgorithm(name)
}

func parseAlgorithm(name string) (verity.Algorithm, int, error) {
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
func ParseDigest(s string) (Digest, error) {
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
	alg, bs, err := parseAlgorithm(name)
	if err != nil {
		return Digest{}, err
	}
	return parseDigestValue(alg, bs, hexval)
}

func parseDigestValue(alg verity.Algorithm, bs int, s string) (Digest, error) {
	d := Digest{Algorithm: alg, BlockSize: bs}
	want := 2 * alg.Size()
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

// Annotated is what the annotations say, before any trust decision: at most
// one digest and the signatures attached to it.
type Annotated struct {
	// Key is the digest annotation key ("" when there is none).
	Key    string
	Digest *Digest
	// Signatures maps each kind present to its raw annotation value.
	Signatures map[SignatureKind]string
}

// ParseAnnotations extracts the composefs digest and its signatures. It
// fails on anything ambiguous or malformed: an unknown algorithm, a digest
// that is not lowercase hex of the right length, two digest annotations, a
// signature without its digest. Values are not decoded here beyond the
// digest; see Verify.
func ParseAnnotations(annotations map[string]string) (Annotated, error) {
	var out Annotated
	keys := make([]string, 0, 4)
	for k := range annotations {
		if strings.HasPrefix(strings.ToLower(k), DigestAnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // deterministic messages
	digests := map[string]string{}
	sigs := map[string]map[SignatureKind]string{}
	for _, k := range keys {
		if k != strings.ToLower(k) {
			return out, fmt.Errorf("%w %q: composefs annotation keys are lowercase", ErrMalformed, clip(k))
		}
		v := annotations[k]
		if len(v) > maxAnnotationValue {
			return out, fmt.Errorf("%w %s: value of %d bytes is larger than %d", ErrMalformed, k, len(v), maxAnnotationValue)
		}
		base, kind := k, SignatureKind(0)
		for _, sk := range signatureKinds {
			if b, ok := strings.CutSuffix(k, sk.Suffix()); ok {
				base, kind = b, sk
				break
			}
		}
		if _, _, err := parseAlgorithm(strings.TrimPrefix(base, DigestAnnotationPrefix)); err != nil {
			return out, fmt.Errorf("%w %q: %v", ErrMalformed, clip(k), err)
		}
		if kind == 0 {
			digests[k] = v
			continue
		}
		if sigs[base] == nil {
			sigs[base] = map[SignatureKind]string{}
		}
		sigs[base][kind] = v
	}
	if len(digests) > 1 {
		names := make([]string, 0, len(digests))
		for k := range digests {
			names = append(names, fmt.Sprintf("%s=%s", k, clip(digests[k])))
		}
		sort.Strings(names)
		return out, fmt.Errorf("%w: %s: only one composefs digest annotation may be given", ErrConflict, strings.Join(names, ", "))
	}
	for base, m := range sigs {
		if _, ok := digests[base]; !ok {
			for _, sk := range signatureKinds {
				if _, ok := m[sk]; ok {
					return out, fmt.Errorf("%w: annotation %s%s is a signature without its digest annotation %s", ErrNoDigest, base, sk.Suffix(), base)
				}
			}
		}
	}
	for k, v := range digests {
		alg, bs, _ := parseAlgorithm(strings.TrimPrefix(k, DigestAnnotationPrefix))
		d, err := parseDigestValue(alg, bs, v)
		if err != nil {
			return out, fmt.Errorf("%w %s: %v", ErrMalformed, k, err)
		}
		out.Key, out.Digest, out.Signatures = k, &d, sigs[k]
	}
	if out.Signatures == nil {
		out.Signatures = map[SignatureKind]string{}
	}
	return out, nil
}
