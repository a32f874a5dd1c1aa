package attest

import (
	"fmt"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
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

// FuzzMentionsComposefs: a container the runtime front decides itself,
// whose annotations do not mention composefs (policy.MentionsComposefs),
// is one that Verify also finds without any composefs annotation: the
// front's decision is never another than cfs-runtime-mount's.
func FuzzMentionsComposefs(f *testing.F) {
	dir := f.TempDir()
	_, cert := keyPair(f, dir, "release", "ec")
	p := policyFrom(f, dir, "unsigned = \"allow\"\n"+certPolicy("release", cert))
	for _, k := range []string{
		DefaultDigestAnnotation, DefaultDigestAnnotation + ".cosgin", "composefs.merged.erofs.v1.fsverty-sha256-12",
		"compsefs.merged.erofs.v1.fsverity-sha256-12", "composefs.merged.erofs.v1.fsverity_sha256-12", "comXosefs.merXed.erXfs.v1.fsverity-",
		"Composefs.Merged.Erofs.V1.Fsverity-sha256-12.sig", "io.kubernetes.cri.image-name", "", "x.sigstore-bundle",
	} {
		f.Add(k, hex64, "org.opencontainers.image.ref.name")
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2 string) {
		ann := map[string]string{k1: v1, k2: v1}
		if policy.MentionsComposefs(ann) {
			return
		}
		v, err := Verify(ann, p)
		if err != nil || !v.Unsigned || v.IgnoredDigest || v.Rule != `unsigned = "allow"` {
			t.Fatalf("annotations %q: the front would start the container unsigned, Verify says %+v, %v", ann, v, err)
		}
	})
}
