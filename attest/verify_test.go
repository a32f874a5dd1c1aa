package attest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Several signature annotations: every one must be well-formed, one
// trusted signature is enough.
func TestSeveralSignatures(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "release", "ec")
	otherKey, otherCert := keyPair(t, dir, "other", "ec")
	ck, _ := keyPair(t, dir, "ci", "ed25519")
	p := policyFrom(t, dir, certPolicy("release", cert)+fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n", pubKey(t, ck)))
	img := imageFile(t, dir, "image.cfs", 4096)
	d, good := fsveritySign(t, img, key, cert)
	_, untrusted := fsveritySign(t, img, otherKey, otherCert)
	k, _ := LoadPrivateKey([]byte(readFile(t, ck)), nil)
	cos, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}

	// An untrusted PKCS#7 signature next to a trusted cosign one.
	ann := pkcs7Annotations(d, untrusted)
	ann[d.AnnotationKey()+CosignSuffix] = b64(cos)
	v := mustVerify(t, ann, p)
	if v.Kind != CosignSignature || v.Signer != "ci" || !strings.HasPrefix(v.Detail, "Ed25519 public key ") {
		t.Fatalf("verdict %+v", v)
	}
	if want := fmt.Sprintf("composefs digest sha256:%s: cosign signature trusted by signer \"ci\" (%s), enforcement require", d.Hex(), v.Detail); v.String() != want {
		t.Fatalf("String() = %q, want %q", v, want)
	}

	// A malformed one next to a good one: refused, so mistakes surface.
	ann[d.AnnotationKey()+SigSuffix] = b64(good[:len(good)/3])
	_, err = Verify(ann, p)
	wantErr(t, err, ErrMalformed, "fsverity-sha256-12.sig: not a DER PKCS#7 signature")

	// Every signature failing: each reason is given, on one line, and
	// errors.Is finds each sentinel.
	other, _ := ParseDigest(strings.Repeat("12", 32))
	bad := map[string]string{other.AnnotationKey(): other.Hex(), other.AnnotationKey() + SigSuffix: b64(good), other.AnnotationKey() + CosignSuffix: b64(cos)}
	_, err = Verify(bad, p)
	wantErr(t, err, ErrBadSignature, "composefs digest sha256:"+other.Hex()+": bad signature: PKCS#7 signature by certificate \"CN=release\"", "; signature not trusted: cosign signature does not verify")
	wantErr(t, err, ErrUntrusted)
}

// A certificate chain: root CA, intermediate CA, signer. The policy trusts
// the root only; the intermediate comes from the signature (cfs-runtime
// sign embeds the chain) or from the policy's certificates (fsverity sign
// embeds nothing).
func TestIntermediateCA(t *testing.T) {
	dir := t.TempDir()
	rootKey, rootCert := makeCA(t, dir, "root-ca")
	interKey := filepath.Join(dir, "inter.key")
	interCert := filepath.Join(dir, "inter.crt")
	genKey(t, interKey, "ec")
	run(t, nil, "openssl", "req", "-new", "-key", interKey, "-out", interCert+".csr", "-subj", "/CN=intermediate-ca")
	ext := write(t, filepath.Join(dir, "inter.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
	run(t, nil, "openssl", "x509", "-req", "-in", interCert+".csr", "-CA", rootCert, "-CAkey", rootKey, "-CAcreateserial", "-out", interCert, "-days", "10", "-extfile", ext)
	leafKey, leafCert := issue(t, dir, "builder", interKey, interCert)
	img := imageFile(t, dir, "image.cfs", 12345)
	d, fsvSig := fsveritySign(t, img, leafKey, leafCert)

	chainFile := write(t, filepath.Join(dir, "chain.pem"), readFile(t, leafCert)+readFile(t, interCert))
	rootOnly := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"root\"\nca = %q\n", rootCert))
	withChain := policyFrom(t, t.TempDir(), fmt.Sprintf("[[signer]]\nname = \"root\"\nca = %q\ncertificates = %q\n", rootCert, chainFile))

	k, _ := loadKeyCert(t, leafKey, leafCert)
	certs, err := ParseCertificates([]byte(readFile(t, chainFile)))
	if err != nil || len(certs) != 2 {
		t.Fatalf("chain: %d %v", len(certs), err)
	}
	ann, err := Sign(d, k, certs)
	if err != nil {
		t.Fatal(err)
	}
	if v := mustVerify(t, ann, rootOnly); !strings.Contains(v.Detail, "CN=builder") {
		t.Fatalf("verdict %+v", v)
	}
	mustVerify(t, pkcs7Annotations(d, fsvSig), withChain)
	_, err = Verify(pkcs7Annotations(d, fsvSig), rootOnly)
	wantErr(t, err, ErrUntrusted, "no trusted certificate has that issuer and serial")
	// Without the intermediate the chain is incomplete.
	leafOnly := policyFrom(t, t.TempDir(), fmt.Sprintf("[[signer]]\nname = \"root\"\nca = %q\ncertificates = %q\n", rootCert, leafCert))
	_, err = Verify(pkcs7Annotations(d, fsvSig), leafOnly)
	wantErr(t, err, ErrUntrusted, `signer "root": certificate "CN=builder"`, "not issued by a trusted CA of this signer")
}
