package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/smallstep/pkcs7"
)

// SignPKCS7 must write what `fsverity sign` writes (the kernel's PKCS#7
// parser accepts nothing else: sha256WithRSAEncryption as the SignerInfo's
// algorithm is refused with ENOPKG), except for the embedded certificate.
// These tests compare the two field by field; tests/vm's verity-signatures
// scenario has the kernel itself accept both.

// parseP7 decodes a detached PKCS#7 SignedData in the shape fsverity sign
// writes, strictly: trailing bytes and re-encoding differences fail.
func parseP7(t testing.TB, der []byte) *p7SignedData {
	t.Helper()
	var outer p7ContentInfo
	rest, err := asn1.Unmarshal(der, &outer)
	if err != nil || len(rest) > 0 {
		t.Fatalf("outer ContentInfo: %v (%d trailing bytes)", err, len(rest))
	}
	if !outer.ContentType.Equal(pkcs7.OIDSignedData) || outer.Content.Class != asn1.ClassContextSpecific || outer.Content.Tag != 0 {
		t.Fatalf("not a SignedData: content type %v, content tag %d/%d", outer.ContentType, outer.Content.Class, outer.Content.Tag)
	}
	var sd p7SignedData
	rest, err = asn1.Unmarshal(outer.Content.Bytes, &sd)
	if err != nil || len(rest) > 0 {
		t.Fatalf("SignedData: %v (%d trailing bytes)", err, len(rest))
	}
	again, err := sd.marshal()
	if err != nil || !bytes.Equal(again, der) {
		t.Fatalf("SignedData does not re-encode to the same DER (%v): not canonical, or fields this test does not know", err)
	}
	return &sd
}

// compareP7 checks own (SignPKCS7's) against ref (fsverity sign's) field
// by field, then as bytes with own's certificates removed. ECDSA
// signatures are random: their values are compared by checkP7ECDSA instead,
// and here the rest must be byte for byte equal.
func compareP7(t testing.TB, own, ref []byte, cert *x509.Certificate) {
	t.Helper()
	o, r := parseP7(t, own), parseP7(t, ref)
	if !bytes.Equal(o.Certificates.Bytes, cert.Raw) {
		t.Errorf("certificates: want exactly the signer's certificate embedded")
	}
	if len(r.Certificates.FullBytes) != 0 {
		t.Errorf("fsverity sign embedded certificates: the reference is not what this test expects")
	}
	if len(o.SignerInfos) != 1 || len(r.SignerInfos) != 1 {
		t.Fatalf("signer infos: %d, fsverity sign %d", len(o.SignerInfos), len(r.SignerInfos))
	}
	si, rs := o.SignerInfos[0], r.SignerInfos[0]
	der := func(v any) string {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	for _, f := range []struct {
		name      string
		own, want any
	}{
		{"version", o.Version, r.Version},
		{"digestAlgorithms", der(o.DigestAlgorithms), der(r.DigestAlgorithms)},
		{"contentInfo", der(o.ContentInfo), der(r.ContentInfo)},
		{"signerInfo.version", si.Version, rs.Version},
		{"signerInfo.issuer", hex.EncodeToString(si.IssuerAndSerialNumber.IssuerName.FullBytes), hex.EncodeToString(rs.IssuerAndSerialNumber.IssuerName.FullBytes)},
		{"signerInfo.serial", si.IssuerAndSerialNumber.SerialNumber.String(), rs.IssuerAndSerialNumber.SerialNumber.String()},
		{"signerInfo.digestAlgorithm", der(si.DigestAlgorithm), der(rs.DigestAlgorithm)},
		{"signerInfo.digestEncryptionAlgorithm", si.DigestEncryptionAlgorithm.Algorithm.String() + " " + der(si.DigestEncryptionAlgorithm), rs.DigestEncryptionAlgorithm.Algorithm.String() + " " + der(rs.DigestEncryptionAlgorithm)},
	} {
		if f.own != f.want {
			t.Errorf("%s: cfs-runtime sign writes %v, fsverity sign %v", f.name, f.own, f.want)
		}
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
		o.SignerInfos[0].EncryptedDigest = rs.EncryptedDigest
	}
	o.Certificates = asn1.RawValue{}
	stripped, err := o.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stripped, ref) {
		t.Errorf("without its certificates, cfs-runtime sign's signature is not byte for byte fsverity sign's:\nown %x\nref %x", stripped, ref)
	}
}

// checkP7ECDSA checks the signature value of a PKCS#7 signature with pub
// over msg: ECDSA signatures are random, so compareP7 cannot compare them.
func checkP7ECDSA(t testing.TB, der []byte, pub *ecdsa.PublicKey, hash crypto.Hash, msg []byte) {
	t.Helper()
	h := hash.New()
	h.Write(msg)
	if !ecdsa.VerifyASN1(pub, h.Sum(nil), parseP7(t, der).SignerInfos[0].EncryptedDigest) {
		t.Errorf("ECDSA signature does not verify over the formatted digest with %s", hash)
	}
}

// referenceCases are the signatures of testdata/fsverity-sign (make.sh).
var referenceCases = []struct {
	sig, key       string
	alg            verity.Algorithm
	blockSize      int
	wantAnnotation string
}{
	{"rsa-sha256.p7s", "rsa", verity.SHA256, 4096, "composefs.merged.erofs.v1.fsverity-sha256-12"},
	{"rsa-sha512.p7s", "rsa", verity.SHA512, 4096, "composefs.merged.erofs.v1.fsverity-sha512-12"},
	{"ec256-sha256.p7s", "ec256", verity.SHA256, 4096, "composefs.merged.erofs.v1.fsverity-sha256-12"},
	{"ec384-sha512.p7s", "ec384", verity.SHA512, 65536, "composefs.merged.erofs.v1.fsverity-sha512-16"},
}

const referenceDir = "testdata/fsverity-sign"

// referenceDigest is image's digest of the given kind, computed by package
// verity (which must agree with fsverity; verity's own tests check that).
func referenceDigest(t testing.TB, alg verity.Algorithm, blockSize int) Digest {
	t.Helper()
	d := Digest{Algorithm: alg, BlockSize: blockSize}
	v, err := verity.DigestFile(filepath.Join(referenceDir, "image"), d.VerityOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	d.Value = v
	return d
}

// Against the committed output of fsverity sign: runs without the tool.
func TestSignPKCS7MatchesReference(t *testing.T) {
	for _, tc := range referenceCases {
		t.Run(tc.sig, func(t *testing.T) {
			d := referenceDigest(t, tc.alg, tc.blockSize)
			if d.AnnotationKey() != tc.wantAnnotation {
				t.Fatalf("annotation %s, want %s", d.AnnotationKey(), tc.wantAnnotation)
			}
			key, cert := loadKeyCert(t, filepath.Join(referenceDir, tc.key+".key"), filepath.Join(referenceDir, tc.key+".crt"))
			ref := []byte(readFile(t, filepath.Join(referenceDir, tc.sig)))
			own, err := SignPKCS7(d, key, cert)
			if err != nil {
				t.Fatal(err)
			}
			hash := crypto.SHA256
			if tc.alg == verity.SHA512 {
				hash = crypto.SHA512
			}
			compareP7(t, own, ref, cert)
			if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
				checkP7ECDSA(t, own, pub, hash, d.Message())
				checkP7ECDSA(t, ref, pub, hash, d.Message())
			}
			// Both verify with a policy trusting the certificate.
			dir := t.TempDir()
			c := write(t, filepath.Join(dir, "cert.pem"), readFile(t, filepath.Join(referenceDir, tc.key+".crt")))
			p := policyFrom(t, dir, certPolicy("ref", c))
			for _, sig := range [][]byte{own, ref} {
				if v := mustVerify(t, pkcs7Annotations(d, sig), p); v.Signer != "ref" || v.Kind != PKCS7Signature {
					t.Fatalf("verdict %+v", v)
				}
			}
		})
	}
}

// Against the real fsverity sign, when installed, with fresh keys.
func TestSignPKCS7MatchesFsveritySign(t *testing.T) {
	if _, err := exec.LookPath("fsverity"); err != nil {
		t.Skip("fsverity (fsverity-utils) not installed; TestSignPKCS7MatchesReference compares with its committed output")
	}
	for _, tc := range []struct {
		alg   string
		extra []string
		hash  crypto.Hash
	}{
		{"rsa", nil, crypto.SHA256},
		{"rsa", []string{"--hash-alg=sha512", "--block-size=65536"}, crypto.SHA512},
		{"ec", nil, crypto.SHA256},
		{"ec", []string{"--hash-alg=sha512"}, crypto.SHA512},
		{"ec384", nil, crypto.SHA256},
		{"ec384", []string{"--hash-alg=sha512"}, crypto.SHA512},
	} {
		t.Run(tc.alg+tc.hash.String(), func(t *testing.T) {
			dir := t.TempDir()
			keyPath, certPath := keyPair(t, dir, "release", tc.alg)
			img := imageFile(t, dir, "image.cfs", 20000)
			d, ref := fsveritySign(t, img, keyPath, certPath, tc.extra...)
			key, cert := loadKeyCert(t, keyPath, certPath)
			own, err := SignPKCS7(d, key, cert)
			if err != nil {
				t.Fatal(err)
			}
			compareP7(t, own, ref, cert)
			if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
				checkP7ECDSA(t, own, pub, tc.hash, d.Message())
			}
		})
	}
}

// With a chain, the certificates are the signer's, then the chain's, in
// that order; the rest is unchanged.
func TestSignPKCS7EmbedsChain(t *testing.T) {
	dir := t.TempDir()
	caKey, caCert := makeCA(t, dir, "ca")
	keyPath, certPath := issue(t, dir, "leaf", caKey, caCert)
	key, cert := loadKeyCert(t, keyPath, certPath)
	_, ca := loadKeyCert(t, caKey, caCert)
	d := referenceDigest(t, verity.SHA256, 4096)
	withChain, err := SignPKCS7(d, key, cert, ca)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := SignPKCS7(d, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	sd := parseP7(t, withChain)
	if !bytes.Equal(sd.Certificates.Bytes, append(append([]byte(nil), cert.Raw...), ca.Raw...)) {
		t.Fatal("certificates: want the signer's, then the CA's")
	}
	sd.Certificates.Bytes, sd.Certificates.FullBytes = cert.Raw, nil
	if b, _ := sd.marshal(); !bytes.Equal(b, alone) {
		t.Fatal("with a chain, more than the certificates changed")
	}
}

// What cfs-runtime sign wrote before (sha256WithRSAEncryption, no NULL
// parameters, certificate embedded) was accepted by the userspace check
// and still is: signatures already attached to images keep working.
func TestOldCfsRuntimePKCS7StillVerifies(t *testing.T) {
	old := []byte(readFile(t, filepath.Join(referenceDir, "old-cfs-runtime-rsa.p7s")))
	var outer p7ContentInfo
	if _, err := asn1.Unmarshal(old, &outer); err != nil {
		t.Fatal(err)
	}
	// It is the old form: the signature algorithm is sha256WithRSAEncryption.
	if !bytes.Contains(old, []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}) {
		t.Fatal("old-cfs-runtime-rsa.p7s does not name sha256WithRSAEncryption")
	}
	d := referenceDigest(t, verity.SHA256, 4096)
	dir := t.TempDir()
	c := write(t, filepath.Join(dir, "cert.pem"), readFile(t, filepath.Join(referenceDir, "rsa.crt")))
	v := mustVerify(t, pkcs7Annotations(d, old), policyFrom(t, dir, certPolicy("ref", c)))
	if v.Signer != "ref" {
		t.Fatalf("verdict %+v", v)
	}
	other := Digest{Algorithm: verity.SHA256, BlockSize: 4096, Value: bytes.Repeat([]byte{0xab}, 32)}
	_, err := Verify(pkcs7Annotations(other, old), policyFrom(t, dir, certPolicy("ref", c)))
	wantErr(t, err, ErrBadSignature, "does not verify over this digest")
}
