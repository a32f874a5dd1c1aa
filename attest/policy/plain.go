package policy

import "github.com/cfs-runtime/cfs-runtime/internal/plaintoml"

// plainFile decodes a policy written in the plain subset of TOML without
// go-toml's reflection (see plaintoml.Decode: the policy is read before
// every create). False for anything else, unknown keys and other types
// included: Load then needs a Decoder, which words the errors.
// FuzzPlainPolicy holds the two equal.
func plainFile(data []byte) (File, bool) {
	var pf File
	doc, ok := plaintoml.Decode(data)
	if !ok {
		return pf, false
	}
	for k, v := range doc.Top {
		var dst *string
		switch k {
		case "enforcement":
			dst = &pf.Enforcement
		case "unsigned":
			dst = &pf.Unsigned
		case "sigstore_helper":
			dst = &pf.Helper
		case "revoked":
			dst = &pf.Revoked
		default:
			return pf, false
		}
		if *dst, ok = v.(string); !ok {
			return pf, false
		}
	}
	for name, tables := range doc.Arrays {
		switch name {
		case "signer":
			pf.Signers, ok = plainEach(tables, plainSigner)
		case "allow_unsigned":
			pf.AllowUnsigned, ok = plainEach(tables, plainRule)
		default:
			ok = false
		}
		if !ok {
			return pf, false
		}
	}
	return pf, true
}

// plainEach decodes every table of an array of tables with decode.
func plainEach[T any](tables []plaintoml.Table, decode func(plaintoml.Table) (T, bool)) ([]T, bool) {
	out := make([]T, 0, len(tables))
	for _, t := range tables {
		v, ok := decode(t)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

func plainSigner(t plaintoml.Table) (SignerFile, bool) {
	var s SignerFile
	strings := map[string]*string{
		"name": &s.Name, "certificates": &s.Certificates, "ca": &s.CA, "public_key": &s.PublicKey, "trusted_root": &s.TrustedRoot,
		"oidc_issuer": &s.OIDCIssuer, "oidc_issuer_regexp": &s.OIDCIssuerRegexp, "subject": &s.Subject, "subject_regexp": &s.SubjectRegexp,
		"not_after": &s.NotAfter, "max_age": &s.MaxAge,
	}
	for k, v := range t {
		if k == "scopes" {
			var ok bool
			if s.Scopes, ok = v.([]string); !ok {
				return s, false
			}
			continue
		}
		if dst, ok := strings[k]; ok {
			if *dst, ok = v.(string); !ok {
				return s, false
			}
			continue
		}
		n, isInt := v.(int64)
		if !isInt {
			return s, false
		}
		i := int(n)
		switch k {
		case "ct_log_threshold":
			s.CTLogThreshold = &i
		case "tlog_threshold":
			s.TLogThreshold = &i
		default:
			return s, false
		}
	}
	return s, true
}

func plainRule(t plaintoml.Table) (RuleFile, bool) {
	var r RuleFile
	var ok bool
	for k, v := range t {
		switch k {
		case "name":
			r.Name, ok = v.(string)
		case "annotations":
			r.Annotations, ok = v.(map[string]string)
		case "ignore_digest":
			r.IgnoreDigest, ok = v.(bool)
		default:
			ok = false
		}
		if !ok {
			return r, false
		}
	}
	return r, true
}
