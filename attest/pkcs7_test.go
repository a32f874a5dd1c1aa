package attest

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Signatures made by the real `fsverity sign` (fsverity-utils) verify, for
// each key type and each digest variant of the sealing spec.
func TestFsveritySignSelfSigned(t *testing.T) {
	for _, tc := range []struct {
		alg   string
		extra []string
		key   string
	}{
		{"rsa", nil, "composefs.merged.erofs.v1.fsverity-sha256-12"},
		{"ec", nil, "composefs.merged.erofs.v1.fsverity-sha256-12"},
		{"ec384", []string{"--hash-alg=sha512"}, "composefs.merged.erofs.v1.fsverity-sha512-12"},
		{"rsa", []string{"--block-size=65536"}, "composefs.merged.erofs.v1.fsverity-sha256-16"},
		{"ec", []string{"--hash-alg=sha512", "--block-size=65536"}, "composefs.merged.erofs.v1.fsverity-sha512-16"},
	} {
		t.Run(tc.alg+strings.Join(tc.extra, ""), func(t *testing.T) {
			dir := t.TempDir()
			key, cert := keyPair(t, dir, "release", tc.alg)
			img := imageFile(t, dir, "image.cfs", 70000)
			d, sig := fsveritySign(t, img, key, cert, tc.extra...)
			if d.AnnotationKey() != tc.key {
				t.Fatalf("annotation key %s, want %s", d.AnnotationKey(), tc.key)
			}
			p := policyFrom(t, dir, certPolicy("release", cert))
			v := mustVerify(t, pkcs7Annotations(d, sig), p)
			if v.Kind != PKCS7Signature || v.Signer != "release" || v.Unsigned || v.Enforcement != EnforceRequire {
				t.Fatalf("verdict %+v", v)
			}
			if v.Digest.Hex() != d.Hex() || v.Digest.BlockSize != d.BlockSize || v.Digest.Algorithm != d.Algorithm {
				t.Fatalf("verdict digest %s, want %s", v.Digest, d)
			}
			if !strings.Contains(v.Detail, `"CN=release"`) {
				t.Fatalf("detail %q does not name the certificate", v.Detail)
			}
		})
	}
}

// A CA-issued certificate: fsverity sign embeds no certificate, so the
// policy lists the signer's certificate next to the CA; our own signatures
// embed it, so the CA alone is enough.
func TestFsveritySignCAIssued(t *testing.T) {
	dir := t.TempDir()
	caKey, caCert := makeCA(t, dir, "corp-ca")
	key, cert := issue(t, dir, "builder", caKey, caCert)
	img := imageFile(t, dir, "image.cfs", 9000)
	d, sig := fsveritySign(t, img, key, cert)
	ann := pkcs7Annotations(d, sig)

	withLeaf := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"corp\"\nca = %q\ncertificates = %q\n", caCert, cert))
	v := mustVerify(t, ann, withLeaf)
	if v.Signer != "corp" || !strings.Contains(v.Detail, "CN=builder") {
		t.Fatalf("verdict %+v", v)
	}

	caOnly := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"corp\"\nca = %q\n", caCert))
	_, err := Verify(ann, caOnly)
	wantErr(t, err, ErrUntrusted, "composefs digest sha256:"+d.Hex(), `PKCS#7 signature by issuer "CN=corp-ca" serial`, "no trusted certificate has that issuer and serial", `signers tried: "corp"`)

	// cfs-runtime sign embeds the certificate: the CA alone verifies it.
	k, c := loadKeyCert(t, key, cert)
	own, err := SignPKCS7(d, k, c)
	if err != nil {
		t.Fatal(err)
	}
	v = mustVerify(t, pkcs7Annotations(d, own), caOnly)
	if v.Signer != "corp" {
		t.Fatalf("verdict %+v", v)
	}
	// ...and the real fsverity-utils accepts our signature format too: it
	// is what `fsverity enable --signature` would hand to the kernel, so
	// check it parses as PKCS#7 with openssl, detached, over the message.
	sigFile := write(t, filepath.Join(dir, "own.p7s"), string(own))
	msgFile := write(t, filepath.Join(dir, "msg"), string(d.Message()))
	run(t, nil, "openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", sigFile, "-content", msgFile, "-CAfile", caCert, "-purpose", "any", "-out", os.DevNull)

	// A CA that did not issue the certificate.
	_, otherCA := makeCA(t, dir, "other-ca")
	wrongCA := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"other\"\nca = %q\ncertificates = %q\n", otherCA, cert))
	_, err = Verify(ann, wrongCA)
	wantErr(t, err, ErrUntrusted, `signer "other": certificate "CN=builder"`, "not issued by a trusted CA of this signer")

	// The leaf trusted directly, as the kernel's .fs-verity keyring does.
	direct := policyFrom(t, dir, certPolicy("leaf", cert))
	mustVerify(t, ann, direct)
}

func loadKeyCert(t testing.TB, keyPath, certPath string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadPrivateKey(kb, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(cb)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k, c
}

func TestPKCS7Refusals(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "release", "rsa")
	otherKey, otherCert := keyPair(t, dir, "intruder", "ec")
	img := imageFile(t, dir, "image.cfs", 5000)
	other := imageFile(t, dir, "other.cfs", 5000)
	d, sig := fsveritySign(t, img, key, cert)
	_, otherSig := fsveritySign(t, other, key, cert)
	p := policyFrom(t, dir, certPolicy("release", cert))
	prefix := "composefs digest sha256:" + d.Hex() + ": "

	t.Run("wrong key", func(t *testing.T) {
		_, intruderSig := fsveritySign(t, img, otherKey, otherCert)
		_, err := Verify(pkcs7Annotations(d, intruderSig), p)
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: PKCS#7 signature by issuer "CN=intruder"`, "no trusted certificate has that issuer and serial", `signers tried: "release"`)
	})
	t.Run("signature over another digest", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, otherSig), p)
		wantErr(t, err, ErrBadSignature, prefix+`bad signature: PKCS#7 signature by certificate "CN=release"`, `(signer "release") does not verify over this digest`)
	})
	t.Run("corrupted base64", func(t *testing.T) {
		ann := pkcs7Annotations(d, sig)
		ann[d.AnnotationKey()+SigSuffix] = "MIIB" + "!!" + ann[d.AnnotationKey()+SigSuffix][6:]
		_, err := Verify(ann, p)
		wantErr(t, err, ErrMalformed, prefix+"malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12.sig: corrupted base64 at byte 4")
	})
	t.Run("truncated PKCS#7", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, sig[:len(sig)/2]), p)
		wantErr(t, err, ErrMalformed, prefix+"malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12.sig: not a DER PKCS#7 signature")
	})
	t.Run("empty signature", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, nil), p)
		wantErr(t, err, ErrMalformed, ".sig: empty value")
	})
	t.Run("not PKCS#7 at all", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, []byte("hello, world")), p)
		wantErr(t, err, ErrMalformed, "not a DER PKCS#7 signature")
	})
	t.Run("expired certificate", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, sig), p, WithTime(time.Now().Add(72*time.Hour)))
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: signer "release": certificate "CN=release" (serial`, "expired on ")
	})
	t.Run("certificate not yet valid", func(t *testing.T) {
		_, err := Verify(pkcs7Annotations(d, sig), p, WithTime(time.Now().Add(-72*time.Hour)))
		wantErr(t, err, ErrUntrusted, "is not valid before ")
	})
	t.Run("expired CA-issued certificate", func(t *testing.T) {
		caKey, caCert := makeCA(t, dir, "ca")
		lk, lc := issue(t, dir, "leaf", caKey, caCert)
		ld, lsig := fsveritySign(t, img, lk, lc)
		cp := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"ca\"\nca = %q\ncertificates = %q\n", caCert, lc))
		_, err := Verify(pkcs7Annotations(ld, lsig), cp, WithTime(time.Now().Add(72*time.Hour)))
		wantErr(t, err, ErrUntrusted, `signer "ca": certificate "CN=leaf"`, "expired or not yet valid")
	})
	t.Run("no PKCS#7 signer in policy", func(t *testing.T) {
		pub := pubKey(t, otherKey)
		kp := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"k\"\npublic_key = %q\n", pub))
		_, err := Verify(pkcs7Annotations(d, sig), kp)
		wantErr(t, err, ErrUntrusted, "composefs.merged.erofs.v1.fsverity-sha256-12.sig: the policy has no signer for a PKCS#7 signature (a [[signer]] with certificates or ca)")
	})
	t.Run("Ed25519 certificate cannot make PKCS#7", func(t *testing.T) {
		ek, ec := keyPair(t, dir, "ed", "ed25519")
		k, c := loadKeyCert(t, ek, ec)
		_, err := SignPKCS7(d, k, c)
		if err == nil || !strings.Contains(err.Error(), "Ed25519 keys are not supported for PKCS#7 signatures") {
			t.Fatalf("Ed25519 PKCS#7: %v", err)
		}
		rk, _ := loadKeyCert(t, key, cert)
		if _, err := SignPKCS7(d, rk, c); err == nil || !strings.Contains(err.Error(), `certificate "CN=ed" (serial`) {
			t.Fatalf("mismatched certificate: %v", err)
		}
	})
	t.Run("one good signer among several", func(t *testing.T) {
		mp := policyFrom(t, dir, certPolicy("intruder", otherCert)+certPolicy("release", cert))
		v := mustVerify(t, pkcs7Annotations(d, sig), mp)
		if v.Signer != "release" {
			t.Fatalf("signer %q", v.Signer)
		}
	})
}

// PKCS#7 made by openssl cms/smime with signed attributes (their default,
// unlike fsverity sign) verifies too; over another digest it does not.
func TestOpenSSLSignedAttributes(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "release", "ec")
	p := policyFrom(t, dir, certPolicy("release", cert))
	d, _ := ParseDigest(hex64)
	other, _ := ParseDigest(strings.Repeat("cd", 32))
	for _, tool := range [][]string{{"cms", "-sign", "-nocerts"}, {"smime", "-sign"}} {
		msg := write(t, filepath.Join(dir, "msg"), string(d.Message()))
		out := filepath.Join(dir, tool[0]+".p7s")
		args := append(append([]string(nil), tool...), "-binary", "-in", msg, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", out)
		run(t, nil, "openssl", args...)
		sig := []byte(readFile(t, out))
		v := mustVerify(t, pkcs7Annotations(d, sig), p)
		if v.Signer != "release" {
			t.Fatalf("%s: verdict %+v", tool[0], v)
		}
		_, err := Verify(pkcs7Annotations(other, sig), p)
		wantErr(t, err, ErrBadSignature, `PKCS#7 signature by certificate "CN=release"`, "does not verify over this digest")
	}
}
