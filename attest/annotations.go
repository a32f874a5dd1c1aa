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
	"fmt"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/composefs"
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

// Digest is a composefs digest (package composefs owns the type, its
// syntax and its parsing).
type Digest = composefs.ImageDigest

// ParseAlgorithm parses a sealing-spec algorithm name (composefs.ParseAlgorithm).
func ParseAlgorithm(name string) (verity.Algorithm, int, error) {
	return composefs.ParseAlgorithm(name)
}

// ParseDigest parses a digest given on a command line (composefs.ParseDigest).
func ParseDigest(s string) (Digest, error) { return composefs.ParseDigest(s) }

func parseAlgorithm(name string) (verity.Algorithm, int, error) {
	return composefs.ParseAlgorithm(name)
}

func parseDigestValue(alg verity.Algorithm, bs int, s string) (Digest, error) {
	return composefs.ParseDigestValue(alg, bs, s)
}

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
	var typos []string
	for k := range annotations {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, DigestAnnotationPrefix) {
			keys = append(keys, k)
		} else if lookAlike(lk) {
			typos = append(typos, k)
		}
	}
	if len(typos) > 0 {
		// Fail closed: a mistyped key would otherwise make a signed
		// container look unsigned.
		sort.Strings(typos)
		return out, fmt.Errorf("%w %q: %s", ErrMalformed, clip(typos[0]), keyTypo(typos[0]))
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
		name := strings.TrimPrefix(base, DigestAnnotationPrefix)
		if alg, suffix, ok := strings.Cut(name, "."); ok && kind == 0 {
			if _, _, err := parseAlgorithm(alg); err == nil {
				return out, fmt.Errorf("%w %q: unknown signature suffix %q (want %s, %s or %s)", ErrMalformed, clip(k), clip("."+suffix), SigSuffix, CosignSuffix, BundleSuffix)
			}
		}
		if _, _, err := parseAlgorithm(name); err != nil {
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

// keyParts are the dot-separated parts of DigestAnnotationPrefix before
// "fsverity-".
var keyParts = [...]string{"composefs", "merged", "erofs", "v1"}

// lookAlike reports whether a lowercase annotation key that does not start
// with DigestAnnotationPrefix looks like a mistyped composefs annotation:
// it holds two adjacent parts only composefs keys have, or its start is at
// most three edits away from the prefix. Such a key is refused rather than
// ignored. Every look-alike keeps one of the words policy.MentionsComposefs
// looks for intact (three edits cannot break all of compos, merged, erofs
// and verity), so the runtime front never starts one itself
// (FuzzMentionsComposefs).
func lookAlike(lk string) bool {
	for _, part := range []string{"composefs.merged", "merged.erofs", "erofs.v1", "fsverity-sha"} {
		if strings.Contains(lk, part) {
			return true
		}
	}
	const slack = 3
	p := DigestAnnotationPrefix
	for n := len(p) - slack; n <= len(p)+slack && n <= len(lk); n++ {
		if editDistance(lk[:n], p, slack) <= slack {
			return true
		}
	}
	return false
}

// editDistance is the Levenshtein distance of a and b, or max+1 once it is
// known to exceed max.
func editDistance(a, b string, max int) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c = 1 + min(c, prev[j], cur[j-1])
			}
			cur[j] = c
			best = min(best, c)
		}
		if best > max {
			return max + 1
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keyTypo says which part of a look-alike key is wrong and what the keys
// are.
func keyTypo(k string) string {
	const want = "composefs annotation keys are " + DigestAnnotationPrefix + "{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature"
	parts := strings.SplitN(strings.ToLower(k), ".", len(keyParts)+1)
	for i, w := range keyParts {
		if i >= len(parts) {
			break
		}
		if parts[i] != w {
			return fmt.Sprintf("looks like a mistyped composefs annotation: part %d is %q, not %q; %s", i+1, clip(parts[i]), w, want)
		}
	}
	if len(parts) == len(keyParts)+1 && !strings.HasPrefix(parts[len(keyParts)], "fsverity-") {
		return fmt.Sprintf("looks like a mistyped composefs annotation: %q does not start with \"fsverity-\"; %s", clip(parts[len(keyParts)]), want)
	}
	return "looks like a mistyped composefs annotation; " + want
}
