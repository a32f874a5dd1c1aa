package attest

import (
	"errors"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
)

// Sentinel errors; every error from Verify and LoadPolicy wraps one of them
// (test with errors.Is).
var (
	// ErrNoDigest: no composefs digest annotation and no rule allows that,
	// or a signature annotation without its digest annotation.
	ErrNoDigest = errors.New("no composefs digest")
	// ErrConflict: more than one composefs digest annotation.
	ErrConflict = errors.New("conflicting composefs digest annotations")
	// ErrMalformed: an annotation cannot be decoded (bad hex, length,
	// algorithm, base64, PKCS#7 or bundle structure).
	ErrMalformed = errors.New("malformed annotation")
	// ErrUnsigned: a digest without any signature annotation.
	ErrUnsigned = errors.New("composefs digest not signed")
	// ErrUntrusted: the signature was made by nobody the policy trusts
	// (unknown key or certificate, untrusted or expired chain, identity not
	// allowed).
	ErrUntrusted = errors.New("signature not trusted")
	// ErrBadSignature: the signer is trusted but the signature does not
	// verify over this digest (signed another digest, or corrupted).
	ErrBadSignature = errors.New("bad signature")
	// ErrNoPolicy, ErrPolicy, ErrInsecurePolicy: see package policy.
	ErrNoPolicy       = policy.ErrNoPolicy
	ErrPolicy         = policy.ErrPolicy
	ErrInsecurePolicy = policy.ErrInsecurePolicy
	// ErrDigestMismatch: what was measured, built or mounted is not the
	// signed digest. Not returned by Verify: it is the verdict's digest
	// that create and hook mode hold the root filesystem to.
	ErrDigestMismatch = errors.New("composefs digest mismatch")
)

// Sentinels of the rules that apply after a signature verified (issue
// #20): the signer's scopes, the revocation list, the signer's expiry.
var (
	// ErrRevoked: the composefs digest, or the key that signed it, is on
	// the policy's revocation list.
	ErrRevoked = errors.New("revoked")
	// ErrExpired: the signer's not_after has passed, or the signature is
	// older than its max_age (or carries no signing time it can prove).
	ErrExpired = errors.New("signer expired")
	// ErrOutOfScope: the container's image reference is outside every
	// scope of the signer that verified it, or no reference is known.
	ErrOutOfScope = errors.New("image outside the signer's scopes")
)
