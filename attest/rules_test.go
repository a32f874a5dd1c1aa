package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/smallstep/pkcs7"
)

// ecKey makes a P-256 key and writes its public key to dir/name.pub.
func ecKey(t testing.TB, dir, name string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, write(t, filepath.Join(dir, name+".pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

func cosignSigned(t testing.TB, d Digest, k *ecdsa.PrivateKey) map[string]string {
	t.Helper()
	sig, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return cosignAnnotations(d, b64(sig))
}

func testDigest(t testing.TB, b byte) Digest {
	t.Helper()
	d, err := ParseDigest(strings.Repeat(fmt.Sprintf("%02x", b), 32))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ref(t testing.TB, s string) VerifyOption {
	t.Helper()
	r, err := imageref.Normalize(s)
	if err != nil {
		t.Fatal(err)
	}
	return WithReference(r, nil)
}

func TestSignerScopes(t *testing.T) {
	dir := t.TempDir()
	appKey, appPub := ecKey(t, dir, "app")
	wildKey, wildPub := ecKey(t, dir, "wild")
	anyKey, anyPub := ecKey(t, dir, "any")
	p := policyFrom(t, dir, fmt.Sprintf(`[[signer]]
name = "app"
public_key = %q
scopes = ["registry.example.com/app", "docker.io/library/busybox:1.36"]

[[signer]]
name = "wild"
public_key = %q
scopes = ["*.example.org"]

[[signer]]
name = "any"
public_key = %q
`, appPub, wildPub, anyPub))
	if got := strings.Join(p.Signers[0].Scopes, " "); got != "registry.example.com/app docker.io/library/busybox:1.36" {
		t.Fatalf("scopes = %q", got)
	}
	d := testDigest(t, 1)
	byApp, byWild, byAny := cosignSigned(t, d, appKey), cosignSigned(t, d, wildKey), cosignSigned(t, d, anyKey)
	for _, tc := range []struct {
		name string
		ann  map[string]string
		opt  VerifyOption
		want error
		frag []string
	}{
		{"repository", byApp, ref(t, "registry.example.com/app/web:v1"), nil, nil},
		{"namespace by digest", byApp, ref(t, "registry.example.com/app/sub/web@sha256:"+strings.Repeat("ab", 32)), nil, nil},
		{"short name with tag", byApp, ref(t, "busybox:1.36"), nil, nil},
		{"other tag", byApp, ref(t, "busybox:latest"), ErrOutOfScope, []string{`image docker.io/library/busybox:latest is outside the scopes of signer "app"`}},
		{"prefix is not a namespace", byApp, ref(t, "registry.example.com/application:v1"), ErrOutOfScope, []string{"registry.example.com/application:v1", `"app"`}},
		{"other registry", byApp, ref(t, "evil.example.com/app/web:v1"), ErrOutOfScope, nil},
		{"no reference", byApp, WithReference("", nil), ErrOutOfScope, []string{`signer "app" is limited to scopes`, "no image reference is known", imageref.ContainerdAnnotation}},
		{"reference unknowable", byApp, WithReference("", imageref.ErrConflict), ErrOutOfScope, []string{"cannot be told", "conflicting"}},
		{"wildcard subdomain", byWild, ref(t, "a.b.example.org:5000/x:1"), nil, nil},
		{"wildcard not the domain itself", byWild, ref(t, "example.org/x:1"), ErrOutOfScope, []string{`signer "wild"`}},
		{"unscoped signer, any image", byAny, ref(t, "quay.io/x/y:1"), nil, nil},
		{"unscoped signer, no reference", byAny, WithReference("", nil), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(tc.ann, p, tc.opt)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantErr(t, err, tc.want, tc.frag...)
			// The signer whose rules refused is named, for the audit.
			want := "app"
			if reflect.DeepEqual(tc.ann, byWild) {
				want = "wild"
			}
			if v.Signer != want || len(v.KeyID) != 64 {
				t.Fatalf("verdict names signer %q key %q, want %q", v.Signer, v.KeyID, want)
			}
		})
	}
	// A signature both signers verify: the one whose scope matches wins.
	pub2 := write(t, filepath.Join(dir, "app2.pub"), readFile(t, appPub))
	p2 := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"a\"\npublic_key = %q\nscopes = [\"quay.io/a\"]\n\n[[signer]]\nname = \"b\"\npublic_key = %q\nscopes = [\"quay.io/b\"]\n", appPub, pub2))
	if v := mustVerify(t, byApp, p2, ref(t, "quay.io/b/x")); v.Signer != "b" {
		t.Fatalf("signer = %q, want b", v.Signer)
	}
	_, err := Verify(byApp, p2, ref(t, "quay.io/c/x"))
	wantErr(t, err, ErrOutOfScope, `signer "a"`, `signer "b"`)
}

func TestScopeErrors(t *testing.T) {
	dir := t.TempDir()
	_, pub := ecKey(t, dir, "k")
	for _, tc := range []struct{ scopes, frag string }{
		{`["busybox"]`, `policy.toml:4: key signer[0].scopes: scope 1: invalid image reference: scope "busybox": not a registry`},
		{`["quay.io", "docker.io/busybox"]`, `scope 2: invalid image reference: scope "docker.io/busybox" is not fully expanded: write "docker.io/library/busybox"`},
		{`["registry.example.com/app/*"]`, `"*" is only allowed as a leading "*." of a host name`},
		{`["quay.io/.*"]`, `scope 1:`},
	} {
		path := write(t, filepath.Join(dir, "policy.toml"), fmt.Sprintf("[[signer]]\nname = \"k\"\npublic_key = %q\nscopes = %s\n", pub, tc.scopes))
		_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())))
		wantErr(t, err, ErrPolicy, tc.frag)
	}
}

func TestRevocation(t *testing.T) {
	dir := t.TempDir()
	k, pub := ecKey(t, dir, "ci")
	k2, pub2 := ecKey(t, dir, "ci2")
	d1, d2, d3 := testDigest(t, 1), testDigest(t, 2), testDigest(t, 3)
	keyID := ""
	{
		p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n", pub))
		keyID = mustVerify(t, cosignSigned(t, d1, k), p).KeyID
	}
	if len(keyID) != 64 {
		t.Fatalf("key id %q", keyID)
	}
	list := write(t, filepath.Join(dir, "revoked.txt"), fmt.Sprintf("# revoked images\n%s # CVE-2026-1\n\n  key:%s   # leaked key\n", d1, strings.ToUpper(keyID)))
	p := policyFrom(t, dir, fmt.Sprintf("revoked = %q\n\n[[signer]]\nname = \"ci\"\npublic_key = %q\n\n[[signer]]\nname = \"ci2\"\npublic_key = %q\n", list, pub, pub2))
	_, err := Verify(cosignSigned(t, d1, k2), p)
	wantErr(t, err, ErrRevoked, "composefs digest "+d1.String()+": "+ErrRevoked.Error()+": composefs digest "+d1.String()+" is revoked by "+list+" line 2 (CVE-2026-1)")
	_, err = Verify(cosignSigned(t, d2, k), p)
	wantErr(t, err, ErrRevoked, fmt.Sprintf(`key %s of signer "ci" is revoked by %s line 4 (leaked key)`, keyID, list))
	if v := mustVerify(t, cosignSigned(t, d2, k2), p); v.Signer != "ci2" {
		t.Fatalf("verdict %v", v)
	}
	if ok, err := p.IsRevoked(d3.String()); ok || err != nil {
		t.Fatalf("IsRevoked(d3) = %v, %v", ok, err)
	}
	got, err := p.Revocations()
	if err != nil || len(got) != 2 || got[1].Entry != "key:"+keyID || got[1].Comment != "leaked key" || got[0].Line != 2 {
		t.Fatalf("Revocations() = %+v, %v", got, err)
	}

	// A line that is not an entry refuses every signed container.
	write(t, list, d1.String()+"\nsha256:abc\n")
	p = policyFrom(t, dir, fmt.Sprintf("revoked = %q\n\n[[signer]]\nname = \"ci\"\npublic_key = %q\n", list, pub))
	_, err = Verify(cosignSigned(t, d2, k2), p)
	wantErr(t, err, ErrPolicy, "revocation list "+list+":2: \"sha256:abc\": want 64 hex digits")
	// So does a missing list, and one others may write.
	os.Remove(list)
	p = policyFrom(t, dir, fmt.Sprintf("revoked = %q\n\n[[signer]]\nname = \"ci\"\npublic_key = %q\n", list, pub))
	_, err = Verify(cosignSigned(t, d2, k), p)
	wantErr(t, err, ErrPolicy, "revocation list "+list)
	write(t, list, "")
	os.Chmod(list, 0o666)
	_, err = LoadPolicy(filepath.Join(dir, "policy.toml"), WithFileCheck(RequireOwner(os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	p = loadPolicy(t, filepath.Join(dir, "policy.toml"))
	_, err = Verify(cosignSigned(t, d2, k), p)
	wantErr(t, err, ErrInsecurePolicy, "revocation list "+list, "writable by")
}

// The index is used while the list is unchanged and rebuilt when it
// changes, whichever way it is changed.
func TestRevocationIndex(t *testing.T) {
	dir := t.TempDir()
	idx := t.TempDir()
	list := write(t, filepath.Join(dir, "revoked.txt"), testDigest(t, 1).String()+"\n")
	check := RequireOwner(os.Getuid())
	load := func() *revocations {
		t.Helper()
		r, err := loadRevocations(list, check, idx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := load(); !r.has(testDigest(t, 1).String()) {
		t.Fatal("not revoked")
	}
	if _, err := os.Stat(filepath.Join(idx, revIndexName)); err != nil {
		t.Fatal(err)
	}
	// Proof that the index is what is read: a planted index (same stamp)
	// answers.
	b, _ := os.ReadFile(filepath.Join(idx, revIndexName))
	h := entryHash(testDigest(t, 9).String())
	planted := append(append([]byte(nil), b[:len(b)-32]...), h[:]...)
	os.WriteFile(filepath.Join(idx, revIndexName), planted, 0o600)
	if r := load(); !r.has(testDigest(t, 9).String()) || r.has(testDigest(t, 1).String()) {
		t.Fatal("index not used")
	}
	// Appending in place (same inode) changes size and times.
	f, _ := os.OpenFile(list, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(testDigest(t, 2).String() + "\n")
	f.Close()
	if r := load(); !r.has(testDigest(t, 1).String()) || !r.has(testDigest(t, 2).String()) || r.has(testDigest(t, 9).String()) {
		t.Fatal("index not rebuilt after append")
	}
	// Rewriting to the same size in place changes the times.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(list, []byte(testDigest(t, 3).String()+"\n"+testDigest(t, 2).String()+"\n"), 0o644)
	if r := load(); r.has(testDigest(t, 1).String()) || !r.has(testDigest(t, 3).String()) {
		t.Fatal("index not rebuilt after rewrite")
	}
	// An index others could write is ignored.
	os.Chmod(filepath.Join(idx, revIndexName), 0o666)
	os.WriteFile(filepath.Join(idx, revIndexName), planted, 0o666)
	if r := load(); r.has(testDigest(t, 9).String()) {
		t.Fatal("group/world-writable index used")
	}
}

func TestCanonicalRevocation(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"sha256:" + h:                  "sha256:" + h,
		"sha256:" + strings.ToUpper(h): "sha256:" + h,
		"key:" + h:                     "key:" + h,
		"key:sha256:" + h:              "key:" + h,
		"sha512:" + h + h:              "sha512:" + h + h,
	} {
		if got, err := CanonicalRevocation(in); got != want || err != nil {
			t.Errorf("CanonicalRevocation(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", h, "sha256:" + h[:62], "sha512:" + h, "key:" + h + "00", "md5:" + h, "sha256:" + h[:62] + "zz"} {
		if got, err := CanonicalRevocation(in); err == nil {
			t.Errorf("CanonicalRevocation(%q) = %q, want error", in, got)
		}
	}
}

// pkcs7WithTime signs d's message with a PKCS#7 that carries a signingTime
// (smallstep/pkcs7 adds one, as openssl cms -sign does).
func pkcs7WithTime(t testing.TB, dir string, d Digest) (map[string]string, string) {
	t.Helper()
	k, _ := ecKey(t, dir, "p7")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "p7"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sd, err := pkcs7.NewSignedData(d.Message())
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(cert, k, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return pkcs7Annotations(d, sig), write(t, filepath.Join(dir, "p7.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	k, pub := ecKey(t, dir, "ci")
	d := testDigest(t, 1)
	p7ann, p7cert := pkcs7WithTime(t, dir, d)
	p := policyFrom(t, dir, fmt.Sprintf(`[[signer]]
name = "old"
public_key = %q
not_after = "2026-01-01"

[[signer]]
name = "fresh"
certificates = %q
max_age = "1d"
`, pub, p7cert))
	if got := p.Signers[0].NotAfter; !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("not_after = %v", got)
	}
	cos := cosignSigned(t, d, k)
	mustVerify(t, cos, p, WithTime(time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)))
	_, err := Verify(cos, p, WithTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	wantErr(t, err, ErrExpired, `signer "old" is not trusted after 2026-01-01T00:00:00Z (not_after)`)

	v := mustVerify(t, p7ann, p)
	if v.SignedAt.IsZero() || time.Since(v.SignedAt) > time.Minute {
		t.Fatalf("signing time %v", v.SignedAt)
	}
	_, err = Verify(p7ann, p, WithTime(time.Now().Add(25*time.Hour)))
	wantErr(t, err, ErrExpired, `signer "fresh": signature made`, "older than its max_age 24h0m0s")
	// A signing time ahead of the clock is refused, not taken as young.
	_, err = Verify(p7ann, p, WithTime(time.Now().Add(-time.Hour)))
	wantErr(t, err, ErrExpired, `signer "fresh": signature claims to be made`, "in the future")
	mustVerify(t, p7ann, p, WithTime(time.Now().Add(-maxClockSkew+time.Minute)))

	// A signature that proves no time: refused by a signer with max_age.
	p = policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\nmax_age = \"720h\"\n", pub))
	_, err = Verify(cos, p)
	wantErr(t, err, ErrExpired, `signer "ci" has max_age 720h0m0s, but this .cosign proves no signing time`)

	for _, tc := range []struct{ key, value, frag string }{
		{"not_after", "2026-13-01", `key signer[0].not_after: "2026-13-01" is neither a date`},
		{"max_age", "-1h", `"-1h" is not a positive age`},
		{"max_age", "1w", `"1w" is neither a duration`},
	} {
		path := write(t, filepath.Join(dir, "policy.toml"), fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n%s = %q\n", pub, tc.key, tc.value))
		_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())))
		wantErr(t, err, ErrPolicy, tc.frag)
	}
}

// BenchmarkRevokedLookup is what a create pays for a 10,000-line list
// that has not changed since the last create: the ownership check, a stat,
// reading the index and two lookups (digest, key). Goal: well under 0.1 ms.
func BenchmarkRevokedLookup(b *testing.B) {
	dir := b.TempDir()
	idx := b.TempDir()
	var sb strings.Builder
	for i := 0; i < 10000; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&sb, "key:%064x # key %d\n", i, i)
		} else {
			fmt.Fprintf(&sb, "sha256:%064x # image %d\n", i, i)
		}
	}
	list := write(b, filepath.Join(dir, "revoked.txt"), sb.String())
	check := RequireOwner(os.Getuid())
	if _, err := loadRevocations(list, check, idx); err != nil {
		b.Fatal(err)
	}
	hit := fmt.Sprintf("sha256:%064x", 4321)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := loadRevocations(list, check, idx)
		if err != nil {
			b.Fatal(err)
		}
		if !r.has(hit) || r.has("key:"+strings.Repeat("f", 64)) {
			b.Fatal("lookup")
		}
	}
}

// A sigstore bundle proves its signing time (the log's integrated time or
// the TSA's): max_age refuses a too-old one. Of two sigstore signers that
// both trust a bundle, one whose scope excludes the image leaves it to the
// other (the helper runs again without it).
func TestSigstoreMaxAgeAndScopes(t *testing.T) {
	dir := t.TempDir()
	vs := newVirtualSigstore(t, dir)
	d, _ := ParseDigest(hex64)
	before := time.Now().Add(-time.Second)
	ann := bundleAnnotations(d, vs.bundle(t, testIdentity, testIssuer, d.Message()))
	id := fmt.Sprintf("subject = %q\nmax_age = \"1h\"", testIdentity)
	p := policyFrom(t, dir, sigstorePolicy("keyless", vs.root, id))
	v := mustVerify(t, ann, p)
	if v.SignedAt.Before(before.Truncate(time.Second)) || v.SignedAt.After(time.Now()) {
		t.Fatalf("signing time %v, want about now", v.SignedAt)
	}
	_, err := Verify(ann, p, WithTime(time.Now().Add(2*time.Hour)))
	wantErr(t, err, ErrExpired, `signer "keyless": signature made `, "older than its max_age 1h0m0s")

	p = policyFrom(t, dir, sigstorePolicy("first", vs.root, fmt.Sprintf("subject = %q\nscopes = [\"quay.io/first\"]", testIdentity))+"\n"+
		sigstorePolicy("second", vs.root, fmt.Sprintf("subject = %q\nscopes = [\"quay.io/second\"]", testIdentity)))
	if v := mustVerify(t, ann, p, ref(t, "quay.io/second/app:1")); v.Signer != "second" {
		t.Fatalf("signer %q, want second", v.Signer)
	}
	_, err = Verify(ann, p, ref(t, "quay.io/third/app:1"))
	wantErr(t, err, ErrOutOfScope, `scopes of signer "first"`, `scopes of signer "second"`)
}

// A PKCS#7 signature from openssl cms -sign carries a signingTime signed
// attribute: max_age is checked against it.
func TestPKCS7SigningTimeFromOpenSSL(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "cms", "ec")
	d := testDigest(t, 5)
	msg := write(t, filepath.Join(dir, "msg"), string(d.Message()))
	sig := filepath.Join(dir, "sig")
	run(t, nil, "openssl", "cms", "-sign", "-binary", "-in", msg, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", sig, "-md", "sha256")
	der, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	p := policyFrom(t, dir, certPolicy("cms", cert)+"max_age = \"10m\"\n")
	v := mustVerify(t, pkcs7Annotations(d, der), p)
	if time.Since(v.SignedAt) > time.Minute || v.SignedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("signing time %v", v.SignedAt)
	}
	_, err = Verify(pkcs7Annotations(d, der), p, WithTime(time.Now().Add(time.Hour)))
	wantErr(t, err, ErrExpired, "older than its max_age 10m0s")
	// Without signed attributes (as fsverity sign writes it): no time.
	run(t, nil, "openssl", "cms", "-sign", "-binary", "-noattr", "-in", msg, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", sig, "-md", "sha256")
	der, _ = os.ReadFile(sig)
	_, err = Verify(pkcs7Annotations(d, der), p)
	wantErr(t, err, ErrExpired, `signer "cms" has max_age 10m0s, but this PKCS#7 .sig proves no signing time`)
}
