package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// decodeBase64 decodes a signature annotation strictly (standard alphabet,
// padded, no whitespace): anything else is a corrupted annotation.
func decodeBase64(key, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("%w %s: empty value", ErrMalformed, key)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w %s: corrupted base64 at byte %d", ErrMalformed, key, int64(ce))
		}
		return nil, fmt.Errorf("%w %s: %v", ErrMalformed, key, err)
	}
	return b, nil
}

// pkcs7Sig is a parsed PKCS#7 signature with the one signer it names.
type pkcs7Sig struct {
	p7     *pkcs7.PKCS7
	issuer []byte   // DER issuer name of the signer's certificate
	serial *big.Int // serial of the signer's certificate
}

// issuerName renders the signer's issuer for messages.
func (s *pkcs7Sig) issuerName() string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(s.issuer, &rdn); err != nil || len(rest) > 0 {
		return "(unreadable issuer)"
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}

func (s *pkcs7Sig) signerName() string {
	return fmt.Sprintf("issuer %q serial %s", s.issuerName(), bigHex(s.serial))
}

func bigHex(n *big.Int) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprintf("%X", n)
}

// parsePKCS7 decodes a detached PKCS#7 SignedData with exactly one signer
// (what `fsverity sign` makes). msg is the formatted digest; a signature
// that carries content must carry exactly msg.
func parsePKCS7(key string, der []byte, msg []byte) (*pkcs7Sig, error) {
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w %s: not a DER PKCS#7 signature: %s", ErrMalformed, key, oneLine(err))
	}
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("%w %s: PKCS#7 signature has %d signers, want 1", ErrMalformed, key, len(p7.Signers))
	}
	if len(p7.Content) > 0 && !bytes.Equal(p7.Content, msg) {
		return nil, fmt.Errorf("%w: %s: PKCS#7 signature carries content that is not this composefs digest", ErrBadSignature, key)
	}
	ias := p7.Signers[0].IssuerAndSerialNumber
	if ias.SerialNumber == nil || len(ias.IssuerName.FullBytes) == 0 {
		return nil, fmt.Errorf("%w %s: PKCS#7 signer has no issuer and serial number", ErrMalformed, key)
	}
	p7.Content = msg
	return &pkcs7Sig{p7: p7, issuer: ias.IssuerName.FullBytes, serial: ias.SerialNumber}, nil
}

func (s *pkcs7Sig) names(c *x509.Certificate) bool {
	return c.SerialNumber != nil && c.SerialNumber.Cmp(s.serial) == 0 && bytes.Equal(c.RawIssuer, s.issuer)
}

// checkWith verifies the signature with cert's key only (never with a
// certificate the signature carries that merely has the same name).
func (s *pkcs7Sig) checkWith(cert *x509.Certificate) error {
	q := *s.p7
	q.Certificates = []*x509.Certificate{cert}
	return q.Verify()
}

// errNotThisSigner means the signer entry has no certificate for the
// signature; another entry may.
var errNotThisSigner = errors.New("not this signer")

// verifyPKCS7 checks a PKCS#7 signature against one certificates/ca signer.
// It returns who signed, the key id, and the signingTime authenticated
// attribute when the signature has one (zero otherwise).
func (sg *Signer) verifyPKCS7(s *pkcs7Sig, now time.Time) (detail, keyID string, signedAt time.Time, err error) {
	detail, leaf, err := sg.checkPKCS7(s, now)
	if err != nil {
		return "", "", time.Time{}, err
	}
	var t time.Time
	if s.p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &t) == nil {
		signedAt = t
	}
	return detail, KeyFingerprint(leaf.PublicKey), signedAt, nil
}

func (sg *Signer) checkPKCS7(s *pkcs7Sig, now time.Time) (string, *x509.Certificate, error) {
	var leaf *x509.Certificate
	for _, c := range sg.certs {
		if s.names(c) {
			leaf = c
			break
		}
	}
	if sg.Type == SignerCertificates {
		if leaf == nil {
			return "", nil, errNotThisSigner
		}
		if err := checkValidity(leaf, now); err != nil {
			return "", nil, fmt.Errorf("%w: signer %q: %v", ErrUntrusted, sg.Name, err)
		}
	} else {
		// With a CA, the signer's certificate may come from the signature
		// (cfs-runtime sign embeds it) or from the policy's certificates
		// (fsverity sign embeds none). Either way it must chain to the CA.
		if leaf == nil {
			for _, c := range s.p7.Certificates {
				if s.names(c) {
					leaf = c
					break
				}
			}
		}
		if leaf == nil {
			return "", nil, errNotThisSigner
		}
		inter := x509.NewCertPool()
		for _, c := range append(append([]*x509.Certificate(nil), s.p7.Certificates...), sg.certs...) {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: sg.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return "", nil, fmt.Errorf("%w: signer %q: certificate %s: %s", ErrUntrusted, sg.Name, certName(leaf), oneLine(errors.New(describeX509(err))))
		}
		if err := checkKey(leaf.PublicKey); err != nil {
			return "", nil, fmt.Errorf("%w: signer %q: certificate %s: %v", ErrUntrusted, sg.Name, certName(leaf), err)
		}
	}
	if err := s.checkWith(leaf); err != nil {
		var mm *pkcs7.MessageDigestMismatchError
		if errors.As(err, &mm) {
			return "", nil, fmt.Errorf("%w: PKCS#7 signature by certificate %s (signer %q) does not verify over this digest: it signs a message hashing to %X, this digest's formatted digest hashes to %X", ErrBadSignature, certName(leaf), sg.Name, mm.ExpectedDigest, mm.ActualDigest)
		}
		return "", nil, fmt.Errorf("%w: PKCS#7 signature by certificate %s (signer %q) does not verify over this digest (it signs another digest, or was made by another key with the same issuer and serial): %s", ErrBadSignature, certName(leaf), sg.Name, oneLine(err))
	}
	return "certificate " + certName(leaf), leaf, nil
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.After(c.NotAfter) {
		return fmt.Errorf("certificate %s expired on %s", certName(c), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("certificate %s is not valid before %s", certName(c), c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// oneLine flattens a library's error text: refusals are one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// describeX509 shortens crypto/x509 verification errors.
func describeX509(err error) string {
	var ie x509.CertificateInvalidError
	if errors.As(err, &ie) && ie.Reason == x509.Expired {
		return fmt.Sprintf("expired or not yet valid (valid %s to %s)", ie.Cert.NotBefore.UTC().Format(time.RFC3339), ie.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "not issued by a trusted CA of this signer"
	}
	return err.Error()
}

// SignPKCS7 makes what `fsverity sign` makes for d, field for field: a
// detached DER PKCS#7 SignedData over the formatted digest, without signed
// attributes, hashed with the digest's own algorithm (sha256 or sha512),
// AlgorithmIdentifiers with NULL parameters as OpenSSL writes them, and as
// the SignerInfo's signature algorithm rsaEncryption for RSA (PKCS#1 v1.5)
// or ecdsa-with-SHA256/SHA512 for ECDSA. The kernel's PKCS#7 parser
// (crypto/asymmetric_keys/pkcs7_parser.c) accepts only these: it refuses
// sha256WithRSAEncryption there, which smallstep/pkcs7 writes, so
// `fsverity enable --signature` failed with what cfs-runtime signed.
//
// One difference, on purpose: fsverity sign embeds no certificate
// (PKCS7_NOCERTS); SignPKCS7 embeds cert and then chain, so that a policy
// trusting only the CA can find the signer's certificate. The kernel takes
// either: it looks the signer up in the .fs-verity keyring by issuer and
// serial, and with an embedded chain can also reach a CA certificate there.
// Without chain and with the certificates field removed, an RSA signature
// is byte for byte what fsverity sign writes (PKCS#1 v1.5 is
// deterministic); ECDSA signatures differ only in the random signature.
//
// Ed25519 keys are refused: fsverity sign cannot make them (OpenSSL's
// PKCS#7 code does not sign with Ed25519) and the kernel's PKCS#7 and X.509
// parsers do not know the algorithm.
func SignPKCS7(d Digest, key crypto.Signer, cert *x509.Certificate, chain ...*x509.Certificate) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		return nil, errors.New("PKCS#7: Ed25519 keys are not supported for PKCS#7 signatures: neither fsverity sign nor the kernel's PKCS#7 parser knows them (use RSA or ECDSA, or sign with a key pair: cosign form)")
	}
	if err := checkKey(key.Public()); err != nil {
		return nil, err
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("PKCS#7: certificate %s is not for this private key", certName(cert))
	}
	hash, digestOID := crypto.SHA256, pkcs7.OIDDigestAlgorithmSHA256
	if d.Algorithm == verity.SHA512 {
		hash, digestOID = crypto.SHA512, pkcs7.OIDDigestAlgorithmSHA512
	}
	// As OpenSSL's PKCS7_SIGNER_INFO_set: RSA names the key algorithm
	// (with NULL parameters), ECDSA the signature algorithm for the hash
	// (without parameters).
	var sigAlg pkix.AlgorithmIdentifier
	switch key.Public().(type) {
	case *rsa.PublicKey:
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: pkcs7.OIDEncryptionAlgorithmRSA, Parameters: asn1.NullRawValue}
	case *ecdsa.PublicKey:
		sigAlg = pkix.AlgorithmIdentifier{Algorithm: pkcs7.OIDDigestAlgorithmECDSASHA256}
		if hash == crypto.SHA512 {
			sigAlg.Algorithm = pkcs7.OIDDigestAlgorithmECDSASHA512
		}
	default:
		return nil, fmt.Errorf("PKCS#7: key type %T is not supported", key.Public())
	}
	h := hash.New()
	h.Write(d.Message())
	// crypto.Hash as the options: PKCS#1 v1.5 for RSA, ASN.1 for ECDSA.
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("PKCS#7: %w", err)
	}
	digestAlg := pkix.AlgorithmIdentifier{Algorithm: digestOID, Parameters: asn1.NullRawValue}
	sd := p7SignedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{digestAlg},
		ContentInfo:      p7ContentInfo{ContentType: pkcs7.OIDData},
		SignerInfos: []p7SignerInfo{{
			Version:                   1,
			IssuerAndSerialNumber:     p7IssuerAndSerial{IssuerName: asn1.RawValue{FullBytes: cert.RawIssuer}, SerialNumber: cert.SerialNumber},
			DigestAlgorithm:           digestAlg,
			DigestEncryptionAlgorithm: sigAlg,
			EncryptedDigest:           sig,
		}},
	}
	var certs []byte
	for _, c := range append([]*x509.Certificate{cert}, chain...) {
		certs = append(certs, c.Raw...)
	}
	sd.Certificates = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: certs}
	return sd.marshal()
}

// The PKCS#7 (RFC 2315) structures SignPKCS7 writes, in the shape
// fsverity sign writes them: detached content, no attributes.
type p7ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"optional"`
}

type p7SignedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      p7ContentInfo
	Certificates     asn1.RawValue  `asn1:"optional,tag:0"` // [0] IMPLICIT SET OF Certificate
	SignerInfos      []p7SignerInfo `asn1:"set"`
}

type p7IssuerAndSerial struct {
	IssuerName   asn1.RawValue
	SerialNumber *big.Int
}

type p7SignerInfo struct {
	Version                   int
	IssuerAndSerialNumber     p7IssuerAndSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
}

// marshal wraps the SignedData in its ContentInfo ([0] EXPLICIT).
func (sd *p7SignedData) marshal() ([]byte, error) {
	inner, err := asn1.Marshal(*sd)
	if err != nil {
		return nil, fmt.Errorf("PKCS#7: %w", err)
	}
	return asn1.Marshal(p7ContentInfo{
		ContentType: pkcs7.OIDSignedData,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner},
	})
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}
