package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// Key-pair signatures (the .cosign annotation) are checked with the standard
// library, exactly as sigstore/sigstore's signature verifiers check them, so
// that cfs-runtime does not link sigstore (see package sigstorebundle for
// why). What `cosign sign-blob --key` makes, as measured with cosign 2.x:
//
//   - ECDSA: ASN.1 (r, s) over SHA-256 of the message, whatever the curve
//     (cosign loads every key with SHA-256; a P-384 signature over SHA-384
//     does not verify with `cosign verify-blob`).
//   - Ed25519: pure Ed25519 over the message itself.
//   - RSA: PKCS#1 v1.5 over SHA-256 (cosign never makes PSS with key files).
//
// For P-384 a signature over SHA-384 (sigstore's algorithm registry default,
// signature.LoadDefaultVerifier, and what earlier cfs-runtime versions made)
// is accepted as well: a signature over one hash cannot be passed off as one
// over the other. Like sigstore's ECDSAVerifier, an ECDSA signature that is
// not ASN.1 is read as IEEE P1363 (r || s).

// cosignHashes returns the hashes a key-pair signature by pub may be made
// over, the one cosign uses first; crypto.Hash(0) means the raw message
// (Ed25519).
func cosignHashes(pub crypto.PublicKey) []crypto.Hash {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return []crypto.Hash{crypto.SHA256, crypto.SHA384}
		}
		return []crypto.Hash{crypto.SHA256}
	case *rsa.PublicKey:
		return []crypto.Hash{crypto.SHA256}
	}
	return []crypto.Hash{0}
}

// verifyKeySignature reports whether sig is pub's signature over msg, as
// sigstore's ECDSAVerifier, ED25519Verifier and RSAPKCS1v15Verifier decide.
func verifyKeySignature(pub crypto.PublicKey, sig, msg []byte) bool {
	for _, h := range cosignHashes(pub) {
		digest := msg
		if h != 0 {
			hh := h.New()
			hh.Write(msg)
			digest = hh.Sum(nil)
		}
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			if verifyECDSA(k, digest, sig) {
				return true
			}
		case ed25519.PublicKey:
			if ed25519.Verify(k, msg, sig) {
				return true
			}
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(k, h, digest, sig) == nil {
				return true
			}
		}
	}
	return false
}

// verifyECDSA accepts ASN.1 signatures and, failing that encoding, IEEE
// P1363 ones, as sigstore's ECDSAVerifier does.
func verifyECDSA(k *ecdsa.PublicKey, digest, sig []byte) bool {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &rs); err == nil {
		return ecdsa.VerifyASN1(k, digest, sig)
	}
	if len(sig) == 0 || len(sig) > 132 || len(sig)%2 != 0 {
		return false
	}
	r := new(big.Int).SetBytes(sig[:len(sig)/2])
	s := new(big.Int).SetBytes(sig[len(sig)/2:])
	return ecdsa.Verify(k, digest, r, s)
}

// verifyCosign checks a key-pair signature (cosign sign-blob --key) over
// the formatted digest with one public_key signer.
func (sg *Signer) verifyCosign(sig, msg []byte) (detail, keyID string, err error) {
	if !verifyKeySignature(sg.pub, sig, msg) {
		return "", "", errNotThisSigner
	}
	keyID = KeyFingerprint(sg.pub)
	return fmt.Sprintf("%s public key %s", keyType(sg.pub), keyID), keyID, nil
}

// SignCosign makes what `cosign sign-blob --key KEY` makes when the blob is
// d's formatted digest: ECDSA (ASN.1) over SHA-256 for P-256 and P-384,
// Ed25519 over the message, RSA PKCS#1 v1.5 over SHA-256. The annotation
// value is its base64.
func SignCosign(d Digest, key crypto.Signer) ([]byte, error) {
	pub := key.Public()
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	h := cosignHashes(pub)[0]
	msg := d.Message()
	if h == 0 {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	hh := h.New()
	hh.Write(msg)
	sig, err := key.Sign(rand.Reader, hh.Sum(nil), h)
	if err != nil {
		return nil, err
	}
	if !verifyKeySignature(pub, sig, msg) {
		return nil, errors.New("the key made a signature that does not verify with its public key")
	}
	return sig, nil
}

// cosignShape refuses a cosign signature that no key could have made: not
// an ECDSA signature (ASN.1 SEQUENCE of r and s, nothing after it), nor
// the 64 bytes of an Ed25519 one, nor the 256, 384 or 512 bytes of an RSA
// one. A truncated or corrupted annotation is then reported as such,
// instead of as a signature by another key.
func cosignShape(key string, sig []byte) error {
	var ecdsaSig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &ecdsaSig); err == nil && len(rest) == 0 {
		return nil
	}
	switch len(sig) {
	case ed25519.SignatureSize, 256, 384, 512:
		return nil
	}
	return fmt.Errorf("%w %s: %d bytes are neither an ECDSA (ASN.1) nor an Ed25519 or RSA signature: truncated or corrupted; pass the value `cfs-runtime sign` printed", ErrMalformed, key, len(sig))
}
