package attest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
)

// Verdict is the outcome of a successful Verify: either a digest signed by a
// trusted signer, or a container allowed without a digest.
type Verdict struct {
	// Digest is the verified composefs digest (nil when Unsigned).
	Digest *Digest
	// Kind is the signature that verified, Signer the policy entry that
	// trusted it, Detail which certificate, key or identity signed.
	Kind   SignatureKind
	Signer string
	Detail string
	// Enforcement is the policy's enforcement level for the mount.
	Enforcement Enforcement
	// Unsigned: no digest annotation, allowed by Rule (an
	// [[allow_unsigned]] name, or `unsigned = "allow"`); or composefs
	// annotations ignored by a rule with ignore_digest (IgnoredDigest).
	Unsigned      bool
	Rule          string
	IgnoredDigest bool
	// KeyID is the SHA-256 of the signing key (PKCS#7, cosign; what a
	// revocation list's key: entries name), SignedAt the signing time the
	// signature proves (zero: none), Reference the image reference the
	// container was checked with ("" = none known).
	//
	// When Verify refuses because a signer's rules (scopes, revocation,
	// expiry) refused a signature it verified, Signer and KeyID name the
	// first such signer, for the audit trail; the error is the refusal.
	KeyID     string
	SignedAt  time.Time
	Reference string
}

// String is a one-line summary for logs.
func (v Verdict) String() string {
	if v.IgnoredDigest {
		return fmt.Sprintf("composefs annotations ignored: allowed unverified by rule %q (ignore_digest)", v.Rule)
	}
	if v.Unsigned {
		return policy.UnsignedVerdict(v.Rule)
	}
	if v.Digest == nil {
		return "no verdict"
	}
	s := fmt.Sprintf("composefs digest %s: %s trusted by signer %q", v.Digest, v.Kind, v.Signer)
	if v.Detail != "" {
		s += " (" + v.Detail + ")"
	}
	return s + fmt.Sprintf(", enforcement %s", v.Enforcement)
}

// VerifyOption changes how Verify works.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	now    func() time.Time
	ref    string
	refErr error
}

// WithReference gives the image reference the container runs (normalised,
// see internal/imageref; "" = none known), or why it cannot be told: a
// signer with scopes then refuses.
func WithReference(ref string, err error) VerifyOption {
	return func(c *verifyConfig) { c.ref, c.refErr = ref, err }
}

// WithTime checks certificate validity (PKCS#7 only: sigstore bundles are
// checked at their own signed timestamps), not_after and max_age at t
// instead of now.
func WithTime(t time.Time) VerifyOption {
	return func(c *verifyConfig) { c.now = func() time.Time { return t } }
}

// Verify decides whether a container with these annotations may start
// under policy p. It returns a Verdict, or an error that wraps one of
// ErrNoDigest, ErrConflict, ErrMalformed, ErrUnsigned, ErrUntrusted,
// ErrBadSignature and says in one line what was wrong; or ErrPolicy /
// ErrInsecurePolicy when a sigstore bundle had to be verified and the
// cfs-runtime-sigstore helper is missing, not trusted or broken.
//
// Every signature annotation present must be well-formed; at least one must
// verify with a signer of the policy. A digest annotation is always
// verified, even when an [[allow_unsigned]] rule would match, unless the
// rule says ignore_digest: then the composefs annotations are not looked at.
func Verify(annotations map[string]string, p *Policy, opts ...VerifyOption) (v Verdict, err error) {
	// The parsers below are third-party code fed untrusted input; should
	// one of them panic, refuse the container with a clear error instead
	// of crashing the runtime.
	defer func() {
		if r := recover(); r != nil {
			v, err = Verdict{}, fmt.Errorf("%w: signature parser failed on this input: %s", ErrMalformed, oneLine(fmt.Errorf("%v", r)))
		}
	}()
	cfg := verifyConfig{now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if p == nil {
		return Verdict{}, fmt.Errorf("%w: no policy loaded", ErrPolicy)
	}
	v = Verdict{Enforcement: p.Enforcement}
	for _, r := range p.Rules {
		if r.IgnoreDigest && hasComposefsKey(annotations) && r.Matches(annotations) {
			v.Unsigned, v.Rule, v.IgnoredDigest = true, r.Name, true
			return v, nil
		}
	}
	a, err := ParseAnnotations(annotations)
	if err != nil {
		return v, err
	}
	if a.Digest == nil {
		// The runtime front decides these containers with the same
		// function (internal/handoff), without this package.
		decl := policy.Policy{Rules: p.Rules, AllowUnsigned: p.AllowUnsigned}
		if rule, ok := decl.Unsigned(annotations); ok {
			v.Unsigned, v.Rule = true, rule
			return v, nil
		}
		return v, fmt.Errorf("%w: no %s annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of %s matches this container", ErrNoDigest, DefaultDigestAnnotation, p.Path)
	}
	d := *a.Digest
	v.Digest = &d
	fail := func(err error) (Verdict, error) {
		return v, fmt.Errorf("composefs digest %s: %w", d, err)
	}
	if len(a.Signatures) == 0 {
		return fail(fmt.Errorf("%w: no %s%s, %s or %s annotation", ErrUnsigned, a.Key, SigSuffix, CosignSuffix, BundleSuffix))
	}
	v.Reference = cfg.ref
	rev, err := p.revocations()
	if err != nil {
		return v, err
	}
	if e := RevocationEntry(d); rev.has(e) {
		return fail(rev.refuse("composefs digest "+d.String(), e))
	}
	msg := d.Message()

	// Decode everything first: a malformed signature annotation is refused
	// even when another one would verify, so that mistakes surface. (Of a
	// sigstore bundle only the JSON shape is checked here; the helper
	// parses it in full when it has to verify it.)
	var (
		p7  *pkcs7Sig
		cos []byte
		bun *sigstoreBundle
	)
	if s, ok := a.Signatures[PKCS7Signature]; ok {
		der, err := decodeBase64(a.Key+SigSuffix, s)
		if err != nil {
			return fail(err)
		}
		if p7, err = parsePKCS7(a.Key+SigSuffix, der, msg); err != nil {
			return fail(err)
		}
	}
	if s, ok := a.Signatures[CosignSignature]; ok {
		if cos, err = decodeBase64(a.Key+CosignSuffix, s); err != nil {
			return fail(err)
		}
		if err := cosignShape(a.Key+CosignSuffix, cos); err != nil {
			return fail(err)
		}
	}
	if s, ok := a.Signatures[SigstoreBundle]; ok {
		if bun, err = parseBundle(a.Key+BundleSuffix, s); err != nil {
			return fail(err)
		}
	}

	var failures []error
	for _, kind := range signatureKinds {
		if _, ok := a.Signatures[kind]; !ok {
			continue
		}
		var tried []string
		before := len(failures)
		for _, sg := range p.Signers {
			if verifiesKind(sg.Type) == kind {
				tried = append(tried, sg.Name)
			}
		}
		switch {
		case len(tried) == 0:
		case kind == SigstoreBundle:
			for _, sg := range p.Signers {
				if sg.Type == SignerSigstore {
					if err := sg.material(); err != nil {
						return v, err
					}
				}
			}
			// One helper run tries every sigstore signer, in order; a
			// signer that verifies but whose rules refuse the container
			// is left out of the next run.
			signers := p.sigstoreSigners()
			for len(signers) > 0 {
				sg, detail, signedAt, rest, errs := p.verifySigstore(a.Key+BundleSuffix, bun, msg, signers)
				if errs != nil {
					failures = append(failures, errs...)
					break
				}
				if err := p.admit(sg, "", signedAt, kind, &cfg, rev); err != nil {
					failures = append(failures, err)
					if v.Signer == "" {
						v.Signer = sg.Name
					}
					signers = rest
					continue
				}
				v.Kind, v.Signer, v.Detail, v.SignedAt = kind, sg.Name, detail, signedAt
				return v, nil
			}
		default:
			for _, sg := range p.Signers {
				if verifiesKind(sg.Type) != kind {
					continue
				}
				if err := sg.material(); err != nil {
					return v, err
				}
				var detail, keyID string
				var signedAt time.Time
				var err error
				if kind == PKCS7Signature {
					detail, keyID, signedAt, err = sg.verifyPKCS7(p7, cfg.now())
				} else {
					detail, keyID, err = sg.verifyCosign(cos, msg)
				}
				if err == nil {
					if err = p.admit(sg, keyID, signedAt, kind, &cfg, rev); err != nil && v.Signer == "" {
						v.Signer, v.KeyID = sg.Name, keyID
					}
				}
				if err == nil {
					v.Kind, v.Signer, v.Detail, v.KeyID, v.SignedAt = kind, sg.Name, detail, keyID, signedAt
					return v, nil
				}
				if !errors.Is(err, errNotThisSigner) {
					failures = append(failures, err)
				}
			}
		}
		if len(tried) == 0 {
			failures = append(failures, fmt.Errorf("%w: %s: the policy has no signer for a %s (%s)", ErrUntrusted, a.Key+kind.Suffix(), kind, signerTypesFor(kind)))
			continue
		}
		if len(failures) > before {
			continue // a signer knew the signature and said why it refused it
		}
		list := strings.Join(quoteAll(tried), ", ")
		switch kind {
		case PKCS7Signature:
			failures = append(failures, fmt.Errorf("%w: PKCS#7 signature by %s: no trusted certificate has that issuer and serial (signers tried: %s)", ErrUntrusted, p7.signerName(), list))
		case CosignSignature:
			failures = append(failures, fmt.Errorf("%w: cosign signature does not verify with any trusted public key (signers tried: %s): made by another key, or over another digest", ErrUntrusted, list))
		}
	}
	return fail(joinErrors(failures))
}

// hasComposefsKey reports whether any annotation key is a composefs one
// (matched as ParseAnnotations matches them, ignoring case, look-alikes
// included: ignore_digest ignores those too).
func hasComposefsKey(annotations map[string]string) bool {
	for k := range annotations {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, DigestAnnotationPrefix) || lookAlike(lk) {
			return true
		}
	}
	return false
}

func signerTypesFor(kind SignatureKind) string {
	switch kind {
	case PKCS7Signature:
		return "a [[signer]] with certificates or ca"
	case CosignSignature:
		return "a [[signer]] with public_key"
	}
	return "a [[signer]] with trusted_root"
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// multiError joins failures on one line and unwraps to each of them, so
// that errors.Is finds every sentinel involved.
type multiError []error

func (m multiError) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiError) Unwrap() []error { return m }

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return fmt.Errorf("%w: no signature verified", ErrUntrusted)
	case 1:
		return errs[0]
	}
	return multiError(errs)
}

// maxClockSkew is how far ahead of this host's clock a signing time may be.
const maxClockSkew = 5 * time.Minute

// admit applies the rules that follow a verified signature by signer sg:
// the key's revocation, the signer's not_after and max_age, its scopes.
func (p *Policy) admit(sg *Signer, keyID string, signedAt time.Time, kind SignatureKind, cfg *verifyConfig, rev *revocations) error {
	if keyID != "" && rev.has("key:"+keyID) {
		return rev.refuse(fmt.Sprintf("key %s of signer %q", keyID, sg.Name), "key:"+keyID)
	}
	now := cfg.now()
	if !sg.NotAfter.IsZero() && !now.Before(sg.NotAfter) {
		return fmt.Errorf("%w: signer %q is not trusted after %s (not_after)", ErrExpired, sg.Name, sg.NotAfter.UTC().Format(time.RFC3339))
	}
	if sg.MaxAge > 0 {
		if signedAt.IsZero() {
			return fmt.Errorf("%w: signer %q has max_age %s, but this %s proves no signing time (see docs/policy.md: only sigstore bundles and PKCS#7 signatures with a signingTime do)", ErrExpired, sg.Name, sg.MaxAge, describeKind(kind))
		}
		// A signing time ahead of the clock (beyond a few minutes of
		// skew) would keep a signature young forever: a PKCS#7
		// signingTime is whatever the key holder wrote.
		if signedAt.After(now.Add(maxClockSkew)) {
			return fmt.Errorf("%w: signer %q: signature claims to be made %s, in the future (max_age needs a signing time that has passed)", ErrExpired, sg.Name, signedAt.UTC().Format(time.RFC3339))
		}
		if age := now.Sub(signedAt); age > sg.MaxAge {
			return fmt.Errorf("%w: signer %q: signature made %s is %s old, older than its max_age %s", ErrExpired, sg.Name, signedAt.UTC().Format(time.RFC3339), age.Round(time.Second), sg.MaxAge)
		}
	}
	if len(sg.Scopes) == 0 {
		return nil
	}
	scopes := strings.Join(quoteAll(sg.Scopes), ", ")
	switch {
	case cfg.refErr != nil:
		return fmt.Errorf("%w: signer %q is limited to scopes %s, and the container's image reference cannot be told: %v", ErrOutOfScope, sg.Name, scopes, cfg.refErr)
	case cfg.ref == "":
		return fmt.Errorf("%w: signer %q is limited to scopes %s, and no image reference is known for this container (the engine sets none of %s, %s, %s)", ErrOutOfScope, sg.Name, scopes, imageref.ContainerdAnnotation, imageref.CRIOAnnotation, imageref.RefNameAnnotation)
	}
	for _, sc := range sg.Scopes {
		if imageref.MatchScope(sc, cfg.ref) {
			return nil
		}
	}
	return fmt.Errorf("%w: image %s is outside the scopes of signer %q (%s)", ErrOutOfScope, cfg.ref, sg.Name, scopes)
}
