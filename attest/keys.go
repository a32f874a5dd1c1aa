package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// minRSABits is the smallest RSA modulus accepted for a trusted key.
const minRSABits = 2048

// checkKey accepts the key types the policy allows: ECDSA P-256/P-384,
// Ed25519 and RSA of at least 2048 bits.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s is not allowed (P-256 or P-384)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("key type %T is not allowed (ECDSA P-256/P-384, Ed25519, RSA >= %d)", pub, minRSABits)
	}
	return nil
}

// KeyFingerprint is the SHA-256 of the key's DER SubjectPublicKeyInfo, as
// hex: what `openssl pkey -pubin -outform der | sha256sum` prints.
func KeyFingerprint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "?"
	}
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

func keyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// countPEM counts PEM blocks of the given type; it also refuses text that is
// not PEM at all, so that a DER file or a typo gets a clear message.
func countPEM(data []byte, typ string) (int, error) {
	n, any := 0, false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		any = true
		if b.Type == typ {
			n++
		}
	}
	if !any {
		return 0, errors.New("no PEM data")
	}
	return n, nil
}

// parsePublicKey reads exactly one PEM public key (a cosign .pub file is
// one) and checks its type and size.
func parsePublicKey(data []byte) (crypto.PublicKey, error) {
	n, err := countPEM(data, string(cryptoutils.PublicKeyPEMType))
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("holds %d PEM PUBLIC KEY blocks, want exactly 1 (one signer per key)", n)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, err
	}
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// parseCertificates reads one or more PEM certificates. Keys are checked
// as for public keys.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	if _, err := countPEM(data, "CERTIFICATE"); err != nil {
		return nil, err
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	for _, c := range certs {
		if err := checkKey(c.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certName(c), err)
		}
	}
	return certs, nil
}

// certName names a certificate in messages: its subject and serial.
func certName(c *x509.Certificate) string {
	subj := c.Subject.String()
	if subj == "" {
		subj = "(empty subject)"
	}
	return fmt.Sprintf("%q (serial %s)", subj, serialHex(c))
}

func serialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return "none"
	}
	return strings.ToUpper(c.SerialNumber.Text(16))
}

// PasswordFunc returns the password of an encrypted private key.
type PasswordFunc func() ([]byte, error)

// LoadPrivateKey parses a PEM private key: PKCS#8, PKCS#1, SEC 1, or a
// cosign/sigstore encrypted key ("ENCRYPTED SIGSTORE PRIVATE KEY", made by
// `cosign generate-key-pair`), decrypted with the password from password.
func LoadPrivateKey(data []byte, password PasswordFunc) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("private key: no PEM data")
	}
	var pf cryptoutils.PassFunc
	if password != nil {
		pf = func(bool) ([]byte, error) { return password() }
	}
	if strings.HasPrefix(b.Type, "ENCRYPTED") && pf == nil {
		return nil, fmt.Errorf("private key is encrypted (%s) and no password was given", b.Type)
	}
	k, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		if strings.Contains(err.Error(), "decryption failed") {
			return nil, fmt.Errorf("private key: wrong password: %w", err)
		}
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	if err := checkKey(s.Public()); err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return s, nil
}
