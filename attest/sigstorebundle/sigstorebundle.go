// Package sigstorebundle verifies keyless sigstore bundles with sigstore-go
// for the cfs-runtime-sigstore helper. It is the only code of cfs-runtime
// that links sigstore-go (and with it protobuf, grpc, go-openapi...): their
// package initializers cost milliseconds, which the cfs-runtime binary,
// exec'd for every runtime call, must not pay. Package attest execs the
// helper only when a container carries a .sigstore-bundle annotation and the
// policy has a sigstore signer, and speaks helperproto to it.
package sigstorebundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest/internal/helperproto"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// maxRequest bounds the request read from stdin: a bundle annotation is at
// most 256 KiB, trusted roots are tens of KiB.
const maxRequest = 64 << 20

// Serve reads one request from r, handles it and writes the response to w.
// Only a request that cannot be read or a response that cannot be written
// is an error: refusals are part of the response.
func Serve(r io.Reader, w io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(r, maxRequest+1))
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	if len(data) > maxRequest {
		return fmt.Errorf("request larger than %d bytes", maxRequest)
	}
	var req helperproto.Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("decoding request: %w", err)
	}
	resp := Handle(&req)
	return json.NewEncoder(w).Encode(resp)
}

// Handle answers one request. sigstore-go and protobuf are third-party
// parsers fed untrusted input: a panic becomes a malformed-bundle refusal.
func Handle(req *helperproto.Request) (resp helperproto.Response) {
	defer func() {
		if r := recover(); r != nil {
			resp = helperproto.Response{Error: &helperproto.Error{Kind: helperproto.KindMalformed,
				Message: "signature parser failed on this input: " + oneLine(fmt.Errorf("%v", r))}}
		}
	}()
	switch req.Op {
	case helperproto.OpCheckRoot:
		for _, s := range req.Signers {
			res := helperproto.Result{Name: s.Name, OK: true}
			if _, perr := newSigner(s); perr != nil {
				res.OK, res.Error = false, perr
			}
			resp.Results = append(resp.Results, res)
		}
		return resp
	case helperproto.OpVerify:
		b, perr := ParseBundle(req.Bundle)
		if perr != nil {
			return helperproto.Response{Error: perr}
		}
		for _, s := range req.Signers {
			res := helperproto.Result{Name: s.Name}
			sg, perr := newSigner(s)
			if perr == nil {
				res.Detail, res.SignedAt, perr = sg.verify(b, req.Message)
			}
			res.OK, res.Error = perr == nil, perr
			resp.Results = append(resp.Results, res)
			if res.OK {
				break
			}
		}
		return resp
	}
	return helperproto.Response{Error: &helperproto.Error{Kind: helperproto.KindPolicy, Message: fmt.Sprintf("sigstore helper: unknown operation %q", req.Op)}}
}

func malformed(format string, args ...any) *helperproto.Error {
	return &helperproto.Error{Kind: helperproto.KindMalformed, Message: fmt.Sprintf(format, args...)}
}

// ParseBundle decodes a sigstore bundle annotation (JSON). Only message
// signature bundles (sign-blob style) are accepted: a DSSE envelope would
// sign an in-toto statement, not the formatted digest. Messages follow the
// annotation key in attest's ("malformed annotation KEY: ...").
func ParseBundle(v string) (*bundle.Bundle, *helperproto.Error) {
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return nil, malformed("not a sigstore bundle (JSON object expected)")
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON([]byte(v)); err != nil {
		return nil, malformed("not a valid sigstore bundle: %s", oneLine(err))
	}
	if b.GetMessageSignature() == nil {
		return nil, malformed("sigstore bundle holds no message signature (DSSE envelopes are not accepted)")
	}
	if b.VerificationMaterial.GetPublicKey() != nil {
		return nil, malformed("sigstore bundle is signed with a key, not a certificate (use the .cosign annotation for key pairs)")
	}
	return &b, nil
}

// signer is one sigstore signer, ready to verify.
type signer struct {
	name     string
	trusted  *root.TrustedRoot
	verifier *verify.Verifier
	identity verify.CertificateIdentity
}

func policyErr(format string, args ...any) *helperproto.Error {
	return &helperproto.Error{Kind: helperproto.KindPolicy, Message: fmt.Sprintf(format, args...)}
}

// newSigner parses the trusted root and identity of one signer; errors read
// as LoadPolicy's would ("signer NAME: trusted_root PATH: ...").
func newSigner(s helperproto.Signer) (*signer, *helperproto.Error) {
	sg := &signer{name: s.Name}
	var err error
	if sg.identity, err = verify.NewShortCertificateIdentity(s.OIDCIssuer, s.OIDCIssuerRegexp, s.Subject, s.SubjectRegexp); err != nil {
		return nil, policyErr("signer %q: identity: %s", s.Name, oneLine(err))
	}
	if sg.trusted, err = root.NewTrustedRootFromJSON([]byte(s.TrustedRoot)); err != nil {
		return nil, policyErr("signer %q: trusted_root %s: not a sigstore trusted root: %s", s.Name, s.TrustedRootPath, oneLine(err))
	}
	opts := []verify.VerifierOption{verify.WithObserverTimestamps(1)}
	if s.TLogThreshold > 0 {
		opts = append(opts, verify.WithTransparencyLog(s.TLogThreshold))
	}
	if s.CTLogThreshold > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(s.CTLogThreshold))
	}
	if sg.verifier, err = verify.NewVerifier(sg.trusted, opts...); err != nil {
		return nil, policyErr("signer %q: trusted_root %s: %s", s.Name, s.TrustedRootPath, oneLine(err))
	}
	return sg, nil
}

// verify checks a keyless bundle against one sigstore signer, fully
// offline: certificate chain to the trusted root's Fulcio CA, SCTs,
// transparency log inclusion proof or signed entry timestamp, observer
// timestamps, identity, and the signature over msg.
func (sg *signer) verify(b *bundle.Bundle, msg []byte) (string, int64, *helperproto.Error) {
	res, err := sg.verifier.Verify(b, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(msg)), verify.WithCertificateIdentity(sg.identity)))
	if err == nil {
		who := ""
		if res.Signature != nil && res.Signature.Certificate != nil {
			who = fmt.Sprintf("identity %q issued by %q", res.Signature.Certificate.SubjectAlternativeName, res.Signature.Certificate.Issuer)
		}
		// The signing time a max_age is checked against: the earliest
		// time the verifier proved (log integration or timestamp).
		var at int64
		for _, ts := range res.VerifiedTimestamps {
			if u := ts.Timestamp.Unix(); u > 0 && (at == 0 || u < at) {
				at = u
			}
		}
		return who, at, nil
	}
	var idErr *verify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &idErr) {
		return "", 0, &helperproto.Error{Kind: helperproto.KindUntrusted,
			Message: fmt.Sprintf("signer %q: sigstore certificate identity not allowed: %s", sg.name, oneLine(lastErr(idErr)))}
	}
	// Tell "trusted, but over another artifact" from "not trusted at all":
	// verify again against the digest the bundle itself claims to sign; if
	// that passes, only the artifact was wrong.
	claimed := b.GetMessageSignature().GetMessageDigest().GetDigest()
	if _, err2 := sg.verifier.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", claimed), verify.WithCertificateIdentity(sg.identity))); err2 == nil {
		return "", 0, &helperproto.Error{Kind: helperproto.KindBadSignature,
			Message: fmt.Sprintf("sigstore bundle from a trusted identity (signer %q) does not sign this digest: %s", sg.name, oneLine(err))}
	}
	return "", 0, &helperproto.Error{Kind: helperproto.KindUntrusted,
		Message: fmt.Sprintf("signer %q: sigstore bundle does not verify against the trusted root: %s", sg.name, oneLine(err))}
}

func lastErr(e *verify.ErrNoMatchingCertificateIdentity) error {
	if errs := e.Unwrap(); len(errs) > 0 {
		return errs[len(errs)-1]
	}
	return e
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
