package attest

import (
	"bytes"
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

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/youmark/pkcs8"
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
	n, err := countPEM(data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("holds %d PEM PUBLIC KEY blocks, want exactly 1 (one signer per key)", n)
	}
	// As sigstore's cryptoutils.UnmarshalPEMToPublicKey reads it: the
	// first PEM block, a PKIX SubjectPublicKeyInfo.
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("the first PEM block is not a PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
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
	certs, err := certificatesFromPEM(data)
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

// certificatesFromPEM reads every PEM block as a certificate, as sigstore's
// cryptoutils.UnmarshalCertificatesFromPEM does.
func certificatesFromPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("error during PEM decoding")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// ErrWrongPassword: an encrypted private key did not decrypt with the
// password given, whatever its format.
var ErrWrongPassword = errors.New("wrong password")

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
	if strings.HasPrefix(b.Type, "ENCRYPTED") && password == nil {
		return nil, fmt.Errorf("private key is encrypted (%s) and no password was given", b.Type)
	}
	k, err := parsePrivateKey(b, password)
	if err != nil {
		if errors.Is(err, ErrWrongPassword) {
			// The same words for every format: the libraries' own
			// ("decryption failed", "incorrect password", ...) differ.
			return nil, fmt.Errorf("private key: %w", ErrWrongPassword)
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

// parsePrivateKey is sigstore's cryptoutils.UnmarshalPEMToPrivateKey, with
// the libraries it uses, so that cfs-runtime does not link sigstore: cosign
// keys are a JSON envelope of go-securesystemslib's "encrypted" package
// (scrypt + NaCl secretbox) around PKCS#8 DER; "ENCRYPTED PRIVATE KEY" is
// PKCS#8 PBES2 (youmark/pkcs8); legacy "Proc-Type: 4,ENCRYPTED" PEM is
// decrypted by crypto/x509.
func parsePrivateKey(b *pem.Block, password PasswordFunc) (crypto.PrivateKey, error) {
	//lint:ignore SA1019 legacy encrypted PEM is read as sigstore's cryptoutils reads it
	if x509.IsEncryptedPEMBlock(b) {
		if password == nil {
			return nil, errors.New("private key is encrypted, but no password function was provided")
		}
		pw, err := password()
		if err != nil {
			return nil, err
		}
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(b, pw)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, ErrWrongPassword
		} else if err != nil {
			return nil, fmt.Errorf("failed to decrypt legacy PEM block: %w", err)
		}
		// A wrong password can still end in valid padding (1 in 256):
		// then the key does not parse.
		k, err := parsePrivateKey(&pem.Block{Type: b.Type, Bytes: der}, nil)
		if err != nil {
			return nil, ErrWrongPassword
		}
		return k, nil
	}
	switch b.Type {
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		k, err := pkcs8.ParsePKCS8PrivateKey(b.Bytes, pw)
		if err != nil {
			// youmark/pkcs8: what does not parse after decryption.
			if err.Error() == "pkcs8: incorrect password" {
				return nil, ErrWrongPassword
			}
			return nil, fmt.Errorf("failed to decrypt and parse encrypted private key: %w", err)
		}
		return k, nil
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		der := b.Bytes
		if pw != nil {
			if der, err = encrypted.Decrypt(der, pw); err != nil {
				// secretbox's authentication failed: the wrong key.
				if strings.Contains(err.Error(), "decryption failed") {
					return nil, ErrWrongPassword
				}
				return nil, err
			}
		}
		return x509.ParsePKCS8PrivateKey(der)
	}
	return nil, fmt.Errorf("unknown private key PEM file type: %v", b.Type)
}
