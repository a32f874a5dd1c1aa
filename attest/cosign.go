package attest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// verifyCosign checks a key-pair signature (cosign sign-blob --key) over
// the formatted digest with one public_key signer.
func (sg *Signer) verifyCosign(sig, msg []byte) (string, error) {
	if err := sg.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		return "", errNotThisSigner
	}
	return fmt.Sprintf("%s public key %s", keyType(sg.pub), KeyFingerprint(sg.pub)), nil
}

// SignCosign makes what `cosign sign-blob --key KEY` makes when the blob is
// d's formatted digest: the raw signature (ASN.1 for ECDSA) with the key's
// default sigstore algorithm (ECDSA P-256/SHA-256, P-384/SHA-384, Ed25519,
// RSA PKCS#1 v1.5/SHA-256). The annotation value is its base64.
func SignCosign(d Digest, key crypto.Signer) ([]byte, error) {
	if err := checkKey(key.Public()); err != nil {
		return nil, err
	}
	s, err := signature.LoadDefaultSigner(key)
	if err != nil {
		return nil, err
	}
	return s.SignMessage(bytes.NewReader(d.Message()), options.WithRand(rand.Reader))
}
