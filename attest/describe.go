package attest

import (
	"crypto/x509"
	"fmt"
	"io"
	"sort"
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
