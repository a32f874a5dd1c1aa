package attest

import (
	"fmt"
	"testing"
	"time"
)

// FuzzVerifySignatures feeds arbitrary signature annotations to Verify with
// a policy trusting every signer type. Nothing may panic, every refusal is
// one line wrapping a sentinel, and nothing fuzzed is ever trusted.
func FuzzVerifySignatures(f *testing.F) {
	dir := f.TempDir()
	key, cert := keyPair(f, dir, "release", "ec")
	pub := pubKey(f, key)
	vs := newVirtualSigstore(f, dir)
	p := policyFrom(f, dir, certPolicy("release", cert)+
		fmt.Sprintf("[[signer]]\nname = \"key\"\npublic_key = %q\n", pub)+
		sigstorePolicy("keyless", vs.root, fmt.Sprintf("subject = %q", testIdentity)))

	img := imageFile(f, dir, "image.cfs", 3000)
	d, sig := fsveritySign(f, img, key, cert)
	other, _ := ParseDigest(hex64)
	k, _ := LoadPrivateKey([]byte(readFile(f, key)), nil)
	cos, _ := SignCosign(other, k)
	f.Add(sig, []byte(b64(cos)), []byte(vs.bundle(f, testIdentity, testIssuer, other.Message())), uint8(7))
	f.Add(sig[:len(sig)-1], []byte("AAAA"), []byte("{}"), uint8(1))
	f.Add([]byte{0x30, 0x80, 0, 0}, []byte(""), []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`), uint8(4))

	f.Fuzz(func(t *testing.T, p7 []byte, cosign []byte, bundle []byte, which uint8) {
		ann := map[string]string{d.AnnotationKey(): d.Hex()}
		if which&1 != 0 {
			ann[d.AnnotationKey()+SigSuffix] = b64(p7)
		}
		if which&2 != 0 {
			ann[d.AnnotationKey()+CosignSuffix] = string(cosign)
		}
		if which&4 != 0 {
			ann[d.AnnotationKey()+BundleSuffix] = string(bundle)
		}
		v, err := Verify(ann, p)
		if err == nil {
			// Only the untouched real signature may verify.
			if v.Kind != PKCS7Signature || string(p7) != string(sig) {
				t.Fatalf("fuzzed signature trusted: %+v", v)
			}
			return
		}
		for _, c := range err.Error() {
			if c == '\n' {
				t.Fatalf("multi-line error: %q", err)
			}
		}
	})
}

// FuzzParsePKCS7 exercises the PKCS#7 parser directly with raw DER.
func FuzzParsePKCS7(f *testing.F) {
	dir := f.TempDir()
	key, cert := keyPair(f, dir, "release", "rsa")
	img := imageFile(f, dir, "image.cfs", 100)
	d, sig := fsveritySign(f, img, key, cert)
	f.Add(sig)
	f.Add(sig[:40])
	f.Add([]byte{})
	p := policyFrom(f, dir, certPolicy("release", cert))
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := parsePKCS7("k.sig", der, d.Message())
		if err != nil {
			return
		}
		_ = s.signerName()
		for _, sg := range p.Signers {
			_, _, _, _ = sg.verifyPKCS7(s, time.Now())
		}
	})
}
