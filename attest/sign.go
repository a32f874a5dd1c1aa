package attest

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
)

// Sign returns the annotations to attach for digest d: the digest itself
// and, with a certificate, a PKCS#7 signature under <key>.sig (chain
// certificates are embedded after it); without one, a key-pair signature
// under <key>.cosign.
func Sign(d Digest, key crypto.Signer, certs []*x509.Certificate) (map[string]string, error) {
	if len(d.Value) != d.Algorithm.Size() || d.Algorithm.Size() == 0 {
		return nil, errors.New("sign: invalid digest")
	}
	ann := map[string]string{d.AnnotationKey(): d.Hex()}
	if len(certs) > 0 {
		sig, err := SignPKCS7(d, key, certs[0], certs[1:]...)
		if err != nil {
			return nil, err
		}
		ann[d.AnnotationKey()+SigSuffix] = base64.StdEncoding.EncodeToString(sig)
		return ann, nil
	}
	sig, err := SignCosign(d, key)
	if err != nil {
		return nil, fmt.Errorf("cosign signature: %w", err)
	}
	ann[d.AnnotationKey()+CosignSuffix] = base64.StdEncoding.EncodeToString(sig)
	return ann, nil
}

// ParseCertificates parses PEM certificates (for `sign --cert`): the
// signer's certificate first, then any chain to embed.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	return parseCertificates(data)
}
