package attest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// parseBundle decodes a sigstore bundle annotation (JSON). Only message
// signature bundles (sign-blob style) are accepted: a DSSE envelope would
// sign an in-toto statement, not the formatted digest.
func parseBundle(key, v string) (*bundle.Bundle, error) {
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return nil, fmt.Errorf("%w %s: not a sigstore bundle (JSON object expected)", ErrMalformed, key)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON([]byte(v)); err != nil {
		return nil, fmt.Errorf("%w %s: not a valid sigstore bundle: %s", ErrMalformed, key, oneLine(err))
	}
	if b.GetMessageSignature() == nil {
		return nil, fmt.Errorf("%w %s: sigstore bundle holds no message signature (DSSE envelopes are not accepted)", ErrMalformed, key)
	}
	if b.VerificationMaterial.GetPublicKey() != nil {
		return nil, fmt.Errorf("%w %s: sigstore bundle is signed with a key, not a certificate (use the .cosign annotation for key pairs)", ErrMalformed, key)
	}
	return &b, nil
}

func (sg *Signer) buildSigstoreVerifier() error {
	opts := []verify.VerifierOption{verify.WithObserverTimestamps(1)}
	if sg.TLogThreshold > 0 {
		opts = append(opts, verify.WithTransparencyLog(sg.TLogThreshold))
	}
	if sg.CTLogThreshold > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(sg.CTLogThreshold))
	}
	v, err := verify.NewVerifier(sg.trusted, opts...)
	if err != nil {
		return err
	}
	sg.sverify = v
	return nil
}

// verifySigstore checks a keyless bundle against one sigstore signer, fully
// offline: certificate chain to the trusted root's Fulcio CA, SCTs,
// transparency log inclusion proof or signed entry timestamp, observer
// timestamps, identity, and the signature over the formatted digest.
func (sg *Signer) verifySigstore(b *bundle.Bundle, msg []byte) (string, error) {
	res, err := sg.sverify.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(msg)), verify.WithCertificateIdentity(sg.identity)))
	if err == nil {
		who := ""
		if res.Signature != nil && res.Signature.Certificate != nil {
			who = fmt.Sprintf("identity %q issued by %q", res.Signature.Certificate.SubjectAlternativeName, res.Signature.Certificate.Issuer)
		}
		return who, nil
	}
	var idErr *verify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &idErr) {
		return "", fmt.Errorf("%w: signer %q: sigstore certificate identity not allowed: %s", ErrUntrusted, sg.Name, oneLine(lastErr(idErr)))
	}
	// Tell "trusted, but over another artifact" from "not trusted at all":
	// verify again against the digest the bundle itself claims to sign; if
	// that passes, only the artifact was wrong.
	claimed := b.GetMessageSignature().GetMessageDigest().GetDigest()
	if _, err2 := sg.sverify.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", claimed), verify.WithCertificateIdentity(sg.identity))); err2 == nil {
		return "", fmt.Errorf("%w: sigstore bundle from a trusted identity (signer %q) does not sign this digest: %s", ErrBadSignature, sg.Name, oneLine(err))
	}
	return "", fmt.Errorf("%w: signer %q: sigstore bundle does not verify against the trusted root: %s", ErrUntrusted, sg.Name, oneLine(err))
}

func lastErr(e *verify.ErrNoMatchingCertificateIdentity) error {
	if errs := e.Unwrap(); len(errs) > 0 {
		return errs[len(errs)-1]
	}
	return e
}
