package attest

import (
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Describe writes the effective policy, defaults filled in, as TOML that
// LoadPolicy accepts, with comments saying what each signer's material is
// (certificate subjects and validity, key fingerprints, trusted root
// contents). `cfs-runtime policy check` prints it.
func (p *Policy) Describe(w io.Writer) {
	fmt.Fprintf(w, "# effective trust policy from %s\n", p.Path)
	fmt.Fprintf(w, "enforcement = %q # %s\n", p.Enforcement, p.Enforcement.Describe())
	if p.AllowUnsigned {
		fmt.Fprintf(w, "unsigned = \"allow\" # containers without a composefs digest start unverified (logged)\n")
	} else {
		fmt.Fprintf(w, "unsigned = \"reject\" # containers without a composefs digest are refused unless an [[allow_unsigned]] rule matches\n")
	}
	if p.SigstoreHelper != "" {
		fmt.Fprintf(w, "sigstore_helper = %q # verifies .sigstore-bundle signatures\n", p.SigstoreHelper)
	}
	p.describeRevoked(w)
	for _, warning := range p.Warnings() {
		fmt.Fprintf(w, "# warning: %s\n", warning)
	}
	for _, s := range p.Signers {
		fmt.Fprintf(w, "\n[[signer]]\nname = %q\n", s.Name)
		fmt.Fprintf(w, "# type: %s (%s)\n", s.Type, describeKind(verifiesKind(s.Type)))
		if err := s.material(); err != nil { // only a DeferParsing load gets here
			fmt.Fprintf(w, "# unusable: %v\n", err)
			continue
		}
		switch s.Type {
		case SignerCertificates, SignerCA:
			if s.CA != "" {
				fmt.Fprintf(w, "ca = %q\n", s.CA)
				for _, c := range s.caCerts {
					fmt.Fprintf(w, "#   CA %s\n", describeCert(c))
				}
			}
			if s.Certificates != "" {
				fmt.Fprintf(w, "certificates = %q\n", s.Certificates)
				for _, c := range s.certs {
					fmt.Fprintf(w, "#   %s\n", describeCert(c))
				}
			}
		case SignerPublicKey:
			fmt.Fprintf(w, "public_key = %q\n", s.PublicKey)
			fmt.Fprintf(w, "#   %s public key sha256:%s\n", keyType(s.pub), KeyFingerprint(s.pub))
		case SignerSigstore:
			fmt.Fprintf(w, "trusted_root = %q\n", s.TrustedRoot)
			fmt.Fprintf(w, "#   %d certificate authorities, %d transparency logs, %d CT logs, %d timestamp authorities\n",
				s.rootSum.cas, s.rootSum.tlogs, s.rootSum.ctlogs, s.rootSum.tsas)
			for _, kv := range [][2]string{{"oidc_issuer", s.OIDCIssuer}, {"oidc_issuer_regexp", s.OIDCIssuerRegexp}, {"subject", s.Subject}, {"subject_regexp", s.SubjectRegexp}} {
				if kv[1] != "" {
					fmt.Fprintf(w, "%s = %q\n", kv[0], kv[1])
				}
			}
			fmt.Fprintf(w, "ct_log_threshold = %d\ntlog_threshold = %d\n", s.CTLogThreshold, s.TLogThreshold)
		}
		s.describeRules(w)
	}
	for _, r := range p.Rules {
		fmt.Fprintf(w, "\n[[allow_unsigned]]\nname = %q\n", r.Name)
		if r.IgnoreDigest {
			fmt.Fprintf(w, "ignore_digest = true # matching containers start unverified even with composefs annotations\n")
		}
		fmt.Fprintf(w, "# every annotation below must be present and its whole value must match\n[allow_unsigned.annotations]\n")
		keys := make([]string, 0, len(r.Annotations))
		for k := range r.Annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			re := r.Annotations[k].String()
			fmt.Fprintf(w, "%q = %q\n", k, re[len("^(?:"):len(re)-len(")$")])
		}
	}
}

func describeKind(k SignatureKind) string {
	switch k {
	case PKCS7Signature:
		return "PKCS#7 " + SigSuffix
	case CosignSignature:
		return CosignSuffix
	}
	return BundleSuffix
}

func describeCert(c *x509.Certificate) string {
	state := ""
	now := time.Now()
	if now.After(c.NotAfter) {
		state = " EXPIRED"
	} else if now.Before(c.NotBefore) {
		state = " NOT YET VALID"
	}
	return fmt.Sprintf("%s %s, valid %s to %s%s, key sha256:%s", certName(c), keyType(c.PublicKey),
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state, KeyFingerprint(c.PublicKey))
}

// describeRules prints the signer's scopes and expiry.
func (s *Signer) describeRules(w io.Writer) {
	if len(s.Scopes) == 0 {
		fmt.Fprintf(w, "# scopes: none: this signer may vouch for any image\n")
	} else {
		q := make([]string, len(s.Scopes))
		for i, sc := range s.Scopes {
			q[i] = fmt.Sprintf("%q", sc)
		}
		fmt.Fprintf(w, "scopes = [%s] # the image reference must be within one of these\n", strings.Join(q, ", "))
	}
	if !s.NotAfter.IsZero() {
		state := "trusted until then"
		if !time.Now().Before(s.NotAfter) {
			state = "EXPIRED: every signature it makes or made is refused"
		}
		fmt.Fprintf(w, "not_after = %q # %s\n", s.NotAfter.UTC().Format(time.RFC3339), state)
	}
	if s.MaxAge > 0 {
		proves := "no signature of this type proves a signing time: every one is refused"
		switch verifiesKind(s.Type) {
		case SigstoreBundle:
			proves = "checked against the bundle's transparency log (or timestamp authority) time"
		case PKCS7Signature:
			proves = "checked against the PKCS#7 signingTime; a signature without one is refused"
		}
		fmt.Fprintf(w, "max_age = %q # %s\n", s.MaxAge.String(), proves)
	}
}

// keyIDs are the key ids the signer's material names (certificates'
// and public keys'; a CA signer's leaves are not known in advance).
func (s *Signer) keyIDs() []string {
	if s.material() != nil {
		return nil
	}
	var ids []string
	if s.pub != nil {
		ids = append(ids, KeyFingerprint(s.pub))
	}
	for _, c := range s.certs {
		ids = append(ids, KeyFingerprint(c.PublicKey))
	}
	return ids
}

// describeRevoked prints the revocation list and whom each entry applies
// to.
func (p *Policy) describeRevoked(w io.Writer) {
	if p.Revoked == "" {
		fmt.Fprintf(w, "# revoked: no revocation list\n")
		return
	}
	list, err := p.Revocations()
	if err != nil {
		fmt.Fprintf(w, "revoked = %q # unusable, every signed container is refused: %v\n", p.Revoked, err)
		return
	}
	entries := "entries"
	if len(list) == 1 {
		entries = "entry"
	}
	fmt.Fprintf(w, "revoked = %q # %d %s\n", p.Revoked, len(list), entries)
	for _, r := range list {
		applies := "every signer"
		if r.IsKey() {
			var names []string
			for _, s := range p.Signers {
				if slices.Contains(s.keyIDs(), strings.TrimPrefix(r.Entry, "key:")) {
					names = append(names, fmt.Sprintf("%q", s.Name))
				}
			}
			applies = "no signer's listed key (a key a CA signer's certificate may carry)"
			if len(names) > 0 {
				applies = "signer " + strings.Join(names, ", ")
			}
		}
		fmt.Fprintf(w, "#   %s: %s\n", r, applies)
	}
}

// Warnings are what `policy check` warns about: a signer without scopes
// beside signers with scopes may vouch for the very images the scopes
// were meant to reserve.
func (p *Policy) Warnings() []string {
	var scoped, unscoped []string
	for _, s := range p.Signers {
		if len(s.Scopes) > 0 {
			scoped = append(scoped, fmt.Sprintf("%q", s.Name))
		} else {
			unscoped = append(unscoped, fmt.Sprintf("%q", s.Name))
		}
	}
	if len(scoped) == 0 || len(unscoped) == 0 {
		return nil
	}
	var out []string
	for _, u := range unscoped {
		out = append(out, fmt.Sprintf("signer %s has no scopes: it may vouch for any image, also those the scopes of %s are meant for", u, strings.Join(scoped, ", ")))
	}
	return out
}
