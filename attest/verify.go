package attest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
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
	now func() time.Time
}

// WithTime checks certificate validity at t instead of now (PKCS#7 only:
// sigstore bundles are checked at their own signed timestamps).
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
			// One helper run tries every sigstore signer, in order.
			name, detail, errs := p.verifySigstore(a.Key+BundleSuffix, bun, msg)
			if errs == nil {
				v.Kind, v.Signer, v.Detail = kind, name, detail
				return v, nil
			}
			failures = append(failures, errs...)
		default:
			for _, sg := range p.Signers {
				if verifiesKind(sg.Type) != kind {
					continue
				}
				if err := sg.material(); err != nil {
					return v, err
				}
				var detail string
				var err error
				if kind == PKCS7Signature {
					detail, err = sg.verifyPKCS7(p7, cfg.now())
				} else {
					detail, err = sg.verifyCosign(cos, msg)
				}
				if err == nil {
					v.Kind, v.Signer, v.Detail = kind, sg.Name, detail
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
// (matched as ParseAnnotations matches them, ignoring case).
func hasComposefsKey(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(strings.ToLower(k), DigestAnnotationPrefix) {
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
