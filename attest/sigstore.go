package attest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest/internal/helperproto"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
)

// Keyless sigstore bundles are verified by a separate executable,
// cfs-runtime-sigstore (cmd/cfs-runtime-sigstore, package sigstorebundle):
// sigstore-go drags in protobuf, grpc, go-openapi and more, whose package
// initializers alone cost several milliseconds at every start of a binary
// that links them, and cfs-runtime is exec'd for every runtime call (state,
// kill, delete...). attest itself only
//   - checks a bundle annotation's shape with encoding/json, so that an
//     obviously malformed bundle is refused up front like every other
//     malformed annotation, and
//   - checks a trusted root lightly at LoadPolicy (JSON, media type, the
//     certificates and keys parse), so that loading a policy never execs
//     anything;
// and execs the helper, one JSON request on stdin and one JSON response on
// stdout, only when a bundle has to be verified (a container carries one,
// the policy has a sigstore signer, and no other signature verified), or
// when LoadPolicy is asked for the full check (WithSigstoreCheck, `policy
// check`).

// HelperName is the helper executable, looked up next to the running
// executable unless the policy's sigstore_helper or $CFS_RUNTIME_SIGSTORE
// names another.
const HelperName = "cfs-runtime-sigstore"

// HelperEnv overrides the helper's path (tests, and hosts that install it
// elsewhere without saying so in the policy).
const HelperEnv = "CFS_RUNTIME_SIGSTORE"

// helperTimeout bounds one helper run: verification is offline and takes
// milliseconds; a stuck helper must not hang container creation.
const helperTimeout = 30 * time.Second

// TrustedRootMediaType is the only trusted root format sigstore-go reads.
const TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

// jsonObject is a JSON object whose fields are found by their protobuf JSON
// name or their proto name (protojson accepts both): "mediaType" or
// "media_type".
type jsonObject map[string]json.RawMessage

func (o jsonObject) get(name string) (json.RawMessage, bool) {
	if v, ok := o[name]; ok {
		return v, true
	}
	var snake strings.Builder
	for _, r := range name {
		if r >= 'A' && r <= 'Z' {
			snake.WriteByte('_')
			r += 'a' - 'A'
		}
		snake.WriteRune(r)
	}
	v, ok := o[snake.String()]
	return v, ok
}

func (o jsonObject) has(name string) bool {
	v, ok := o.get(name)
	return ok && string(v) != "null"
}

func (o jsonObject) object(name string) (jsonObject, error) {
	var sub jsonObject
	if v, ok := o.get(name); ok && string(v) != "null" {
		if err := json.Unmarshal(v, &sub); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return sub, nil
}

func (o jsonObject) objects(name string) ([]jsonObject, error) {
	var list []jsonObject
	if v, ok := o.get(name); ok && string(v) != "null" {
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return list, nil
}

func (o jsonObject) str(name string) string {
	var s string
	if v, ok := o.get(name); ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

// bytesField decodes a protobuf bytes field: base64, standard or URL
// alphabet, padded or not (as protojson reads it).
func (o jsonObject) bytesField(name string) ([]byte, error) {
	s := o.str(name)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: not base64", name)
}

// sigstoreBundle is a bundle annotation that passed the shape check; the
// helper parses it fully.
type sigstoreBundle struct {
	json string
}

// parseBundle checks the shape of a sigstore bundle annotation (JSON). Only
// message signature bundles (sign-blob style) are accepted: a DSSE
// envelope would sign an in-toto statement, not the formatted digest. The
// helper parses the bundle fully (protobuf) before verifying it, with the
// same messages.
func parseBundle(key, v string) (*sigstoreBundle, error) {
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		return nil, fmt.Errorf("%w %s: not a sigstore bundle (JSON object expected)", ErrMalformed, key)
	}
	bad := func(err error) error {
		return fmt.Errorf("%w %s: not a valid sigstore bundle: %s", ErrMalformed, key, oneLine(err))
	}
	var b jsonObject
	if err := json.Unmarshal([]byte(v), &b); err != nil {
		return nil, bad(err)
	}
	if mt := b.str("mediaType"); !strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle") {
		return nil, bad(fmt.Errorf("unsupported media type %q", mt))
	}
	vm, err := b.object("verificationMaterial")
	if err != nil {
		return nil, bad(err)
	}
	if vm == nil {
		return nil, bad(errors.New("no verificationMaterial"))
	}
	if !b.has("messageSignature") {
		return nil, fmt.Errorf("%w %s: sigstore bundle holds no message signature (DSSE envelopes are not accepted)", ErrMalformed, key)
	}
	if vm.has("publicKey") {
		return nil, fmt.Errorf("%w %s: sigstore bundle is signed with a key, not a certificate (use the .cosign annotation for key pairs)", ErrMalformed, key)
	}
	return &sigstoreBundle{json: v}, nil
}

// trustedRootSummary is what the light check of a trusted root found.
type trustedRootSummary struct {
	cas, tlogs, ctlogs, tsas int
}

// checkTrustedRoot checks a trusted root without sigstore-go: a JSON object
// of the one media type sigstore-go reads, whose certificates and log keys
// parse. Counts are as sigstore-go's (logs are keyed by their log ID).
func checkTrustedRoot(data []byte) (trustedRootSummary, error) {
	var sum trustedRootSummary
	var tr jsonObject
	if err := json.Unmarshal(data, &tr); err != nil {
		return sum, err
	}
	if mt := tr.str("mediaType"); mt != TrustedRootMediaType {
		return sum, fmt.Errorf("unsupported TrustedRoot media type: %s", mt)
	}
	logs := func(name string) (int, error) {
		list, err := tr.objects(name)
		if err != nil {
			return 0, err
		}
		ids := map[string]bool{}
		for i, l := range list {
			pk, err := l.object("publicKey")
			if err != nil || pk == nil {
				return 0, fmt.Errorf("%s[%d]: no publicKey", name, i)
			}
			der, err := pk.bytesField("rawBytes")
			if err != nil {
				return 0, fmt.Errorf("%s[%d].publicKey: %w", name, i, err)
			}
			// PKIX, or PKCS#1 (keyDetails PKCS1_RSA_PKCS1V5, the
			// sigstore staging instance's log).
			if _, err := x509.ParsePKIXPublicKey(der); err != nil {
				if _, err1 := x509.ParsePKCS1PublicKey(der); err1 != nil {
					return 0, fmt.Errorf("%s[%d].publicKey: %w", name, i, err)
				}
			}
			id, err := l.object("logId")
			if err != nil || id == nil {
				return 0, fmt.Errorf("%s[%d]: no logId", name, i)
			}
			kid, err := id.bytesField("keyId")
			if err != nil {
				return 0, fmt.Errorf("%s[%d].logId: %w", name, i, err)
			}
			ids[string(kid)] = true
		}
		return len(ids), nil
	}
	authorities := func(name string) (int, error) {
		list, err := tr.objects(name)
		if err != nil {
			return 0, err
		}
		for i, a := range list {
			chain, err := a.object("certChain")
			if err != nil || chain == nil {
				return 0, fmt.Errorf("%s[%d]: no certChain", name, i)
			}
			certs, err := chain.objects("certificates")
			if err != nil || len(certs) == 0 {
				return 0, fmt.Errorf("%s[%d].certChain: no certificates", name, i)
			}
			for j, c := range certs {
				der, err := c.bytesField("rawBytes")
				if err == nil {
					_, err = x509.ParseCertificate(der)
				}
				if err != nil {
					return 0, fmt.Errorf("%s[%d].certChain.certificates[%d]: %w", name, i, j, err)
				}
			}
		}
		return len(list), nil
	}
	var err error
	if sum.tlogs, err = logs("tlogs"); err != nil {
		return sum, err
	}
	if sum.ctlogs, err = logs("ctlogs"); err != nil {
		return sum, err
	}
	if sum.cas, err = authorities("certificateAuthorities"); err != nil {
		return sum, err
	}
	if sum.tsas, err = authorities("timestampAuthorities"); err != nil {
		return sum, err
	}
	return sum, nil
}

// helperPath resolves the helper: $CFS_RUNTIME_SIGSTORE, else the policy's
// sigstore_helper, else cfs-runtime-sigstore next to this executable.
func (p *Policy) helperPath() (string, error) {
	if h := os.Getenv(HelperEnv); h != "" {
		return h, nil
	}
	if p.SigstoreHelper != "" {
		return p.SigstoreHelper, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("%w: sigstore signers need the %s helper, and the path of this executable is unknown: %w", ErrPolicy, HelperName, err)
	}
	return filepath.Join(filepath.Dir(exe), HelperName), nil
}

// runHelper runs the helper on one request. Errors wrap ErrPolicy (or
// ErrInsecurePolicy): the helper is missing, not trusted or broken.
func (p *Policy) runHelper(req *helperproto.Request) (*helperproto.Response, error) {
	path, err := p.helperPath()
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: sigstore helper %s: %s", ErrPolicy, path, fmt.Sprintf(format, args...))
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fail("not found: install %s next to cfs-runtime, or name it with sigstore_helper in the policy or $%s", HelperName, HelperEnv)
		}
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("sigstore helper", path, err))
	}
	// The helper decides trust: it is held to the same ownership rules as
	// the policy and the keys.
	if p.check != nil {
		if err := p.check(path); err != nil {
			if errors.Is(err, ErrInsecurePolicy) {
				return nil, fmt.Errorf("sigstore helper: %w", err)
			}
			return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("sigstore helper", path, err))
		}
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // it did not start: not executable, ...
			return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("sigstore helper", path, err))
		}
		if msg := oneLine(errors.New(stderr.String())); msg != "" {
			return nil, fail("%v: %s", err, msg)
		}
		return nil, fail("%v", err)
	}
	var resp helperproto.Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return nil, fail("unreadable response: %v", err)
	}
	return &resp, nil
}

// helperSigner is the request form of one sigstore signer.
func (sg *Signer) helperSigner() helperproto.Signer {
	return helperproto.Signer{
		Name: sg.Name, TrustedRootPath: sg.TrustedRoot, TrustedRoot: string(sg.rootJSON),
		OIDCIssuer: sg.OIDCIssuer, OIDCIssuerRegexp: sg.OIDCIssuerRegexp, Subject: sg.Subject, SubjectRegexp: sg.SubjectRegexp,
		CTLogThreshold: sg.CTLogThreshold, TLogThreshold: sg.TLogThreshold,
	}
}

// helperError turns a helper refusal into attest's error: the sentinel of
// its kind, then the helper's message (which reads as it always has).
func helperError(key string, e *helperproto.Error) error {
	switch e.Kind {
	case helperproto.KindMalformed:
		return fmt.Errorf("%w %s: %s", ErrMalformed, key, e.Message)
	case helperproto.KindBadSignature:
		return fmt.Errorf("%w: %s", ErrBadSignature, e.Message)
	case helperproto.KindUntrusted:
		return fmt.Errorf("%w: %s", ErrUntrusted, e.Message)
	}
	return fmt.Errorf("%w: %s", ErrPolicy, e.Message)
}

// sigstoreSigners are the policy's sigstore signers, in order.
func (p *Policy) sigstoreSigners() []*Signer {
	var out []*Signer
	for _, sg := range p.Signers {
		if sg.Type == SignerSigstore {
			out = append(out, sg)
		}
	}
	return out
}

// verifySigstore checks a bundle against signers, in order, in one helper
// run. It returns the signer that trusted it, who signed, the
// transparency log's (or timestamp authority's) time, and the signers
// after it; or every signer's refusal.
func (p *Policy) verifySigstore(key string, b *sigstoreBundle, msg []byte, signers []*Signer) (sg *Signer, detail string, signedAt time.Time, rest []*Signer, failures []error) {
	req := &helperproto.Request{Op: helperproto.OpVerify, Bundle: b.json, Message: msg}
	for _, sg := range signers {
		req.Signers = append(req.Signers, sg.helperSigner())
	}
	resp, err := p.runHelper(req)
	if err != nil {
		return nil, "", time.Time{}, nil, []error{err}
	}
	if resp.Error != nil {
		return nil, "", time.Time{}, nil, []error{helperError(key, resp.Error)}
	}
	for _, r := range resp.Results {
		if r.OK {
			for i, sg := range signers {
				if sg.Name == r.Name {
					if r.SignedAt > 0 {
						signedAt = time.Unix(r.SignedAt, 0)
					}
					return sg, r.Detail, signedAt, signers[i+1:], nil
				}
			}
			return nil, "", time.Time{}, nil, []error{fmt.Errorf("%w: sigstore helper named an unknown signer %q", ErrPolicy, r.Name)}
		}
		if r.Error != nil {
			failures = append(failures, helperError(key, r.Error))
		}
	}
	if len(failures) == 0 {
		failures = append(failures, fmt.Errorf("%w: sigstore helper returned no verdict", ErrPolicy))
	}
	return nil, "", time.Time{}, nil, failures
}

// checkSigstore has the helper fully parse every sigstore signer's trusted
// root and identity (WithSigstoreCheck).
func (p *Policy) checkSigstore() error {
	req := &helperproto.Request{Op: helperproto.OpCheckRoot}
	for _, sg := range p.Signers {
		if sg.Type == SignerSigstore {
			if err := sg.material(); err != nil {
				return err
			}
			req.Signers = append(req.Signers, sg.helperSigner())
		}
	}
	if len(req.Signers) == 0 {
		return nil
	}
	resp, err := p.runHelper(req)
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return helperError("", resp.Error)
	}
	for _, r := range resp.Results {
		if !r.OK && r.Error != nil {
			return fmt.Errorf("%w: %s: %s", ErrPolicy, p.Path, r.Error.Message)
		}
	}
	if len(resp.Results) != len(req.Signers) {
		return fmt.Errorf("%w: sigstore helper checked %d of %d signers", ErrPolicy, len(resp.Results), len(req.Signers))
	}
	return nil
}
