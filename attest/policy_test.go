package attest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

func TestLoadPolicyFull(t *testing.T) {
	dir := t.TempDir()
	_, cert := keyPair(t, dir, "release", "rsa")
	_, caCert := makeCA(t, dir, "corp-ca")
	edKey, _ := keyPair(t, dir, "ci", "ed25519")
	pub := pubKey(t, edKey)
	p := policyFrom(t, dir, fmt.Sprintf(`
enforcement = "measure"
unsigned = "reject"

[[signer]]
name = "release"
certificates = %q

[[signer]]
name = "corp"
ca = %q

[[signer]]
name = "ci"
public_key = %q

[[allow_unsigned]]
name = "containerd-sandbox"
annotations = { "io.kubernetes.cri.container-type" = "sandbox" }

[[allow_unsigned]]
name = "cri-o-sandbox"
[allow_unsigned.annotations]
"io.kubernetes.cri-o.ContainerType" = "sandbox"
`, cert, caCert, pub))
	if p.Enforcement != EnforceMeasure || p.AllowUnsigned || len(p.Signers) != 3 || len(p.Rules) != 2 {
		t.Fatalf("policy %+v", p)
	}
	for i, want := range []SignerType{SignerCertificates, SignerCA, SignerPublicKey} {
		if p.Signers[i].Type != want {
			t.Fatalf("signer %d type %s, want %s", i, p.Signers[i].Type, want)
		}
	}
	var b strings.Builder
	p.Describe(&b)
	for _, frag := range []string{
		`enforcement = "measure"`, `unsigned = "reject"`,
		`name = "release"`, `# type: certificates (PKCS#7 .sig)`, `CN=release`,
		`name = "corp"`, `# type: ca (PKCS#7 .sig)`, `CN=corp-ca`,
		`name = "ci"`, `# type: public_key (.cosign)`, `Ed25519 public key sha256:`,
		`name = "cri-o-sandbox"`, `"io.kubernetes.cri-o.ContainerType" = "sandbox"`,
	} {
		if !strings.Contains(b.String(), frag) {
			t.Fatalf("Describe output lacks %q:\n%s", frag, b.String())
		}
	}

	// Unsigned containers: rejected unless a rule matches the whole value.
	_, err := Verify(map[string]string{"io.kubernetes.cri.container-type": "container"}, p)
	wantErr(t, err, ErrNoDigest, "no composefs digest: no composefs.merged.erofs.v1.fsverity-sha256-12 annotation", "no [[allow_unsigned]] rule of "+p.Path+" matches this container")
	_, err = Verify(map[string]string{"io.kubernetes.cri.container-type": "sandbox-not"}, p)
	wantErr(t, err, ErrNoDigest)
	_, err = Verify(nil, p)
	wantErr(t, err, ErrNoDigest)
	v := mustVerify(t, map[string]string{"io.kubernetes.cri.container-type": "sandbox"}, p)
	if !v.Unsigned || v.Rule != "containerd-sandbox" || v.Digest != nil {
		t.Fatalf("verdict %+v", v)
	}
	v = mustVerify(t, map[string]string{"io.kubernetes.cri-o.ContainerType": "sandbox"}, p)
	if v.Rule != "cri-o-sandbox" || v.String() != `no composefs digest: allowed unsigned by rule "cri-o-sandbox"` {
		t.Fatalf("verdict %+v %s", v, v)
	}
	// A digest is always verified, even when a rule matches.
	_, err = Verify(map[string]string{"io.kubernetes.cri.container-type": "sandbox", k256: hex64}, p)
	wantErr(t, err, ErrUnsigned, "composefs digest sha256:"+hex64+": composefs digest not signed: no composefs.merged.erofs.v1.fsverity-sha256-12.sig, .cosign or .sigstore-bundle annotation")
}

func TestPolicyDefaults(t *testing.T) {
	dir := t.TempDir()
	_, cert := keyPair(t, dir, "release", "ec")
	p := policyFrom(t, dir, certPolicy("release", cert))
	if p.Enforcement != EnforceRequire || p.AllowUnsigned || len(p.Rules) != 0 {
		t.Fatalf("defaults %+v", p)
	}
	allow := policyFrom(t, dir, "unsigned = \"allow\"\nenforcement = \"userspace\"\n"+certPolicy("release", cert))
	v := mustVerify(t, map[string]string{}, allow)
	if !v.Unsigned || v.Rule != `unsigned = "allow"` || v.Enforcement != EnforceUserspace {
		t.Fatalf("verdict %+v", v)
	}
}

// Every invalid policy has its own message naming file, line and key.
func TestLoadPolicyRefusals(t *testing.T) {
	dir := t.TempDir()
	_, cert := keyPair(t, dir, "release", "rsa")
	smallKey, smallCert := keyPair(t, dir, "small", "rsa1024")
	p521Key, _ := keyPair(t, dir, "p521", "ec521")
	smallPub, p521Pub := pubKey(t, smallKey), pubKey(t, p521Key)
	notPEM := write(t, filepath.Join(dir, "garbage.pem"), "hello\n")
	twoKeys := write(t, filepath.Join(dir, "two.pub"), readFile(t, pubKey(t, smallKey))+readFile(t, pubKey(t, p521Key)))
	caKey, caCert := makeCA(t, dir, "ca")
	_, leafCert := issue(t, dir, "leaf", caKey, caCert)
	path := filepath.Join(dir, "policy.toml")
	for _, tc := range []struct {
		name, text, msg string
	}{
		{"no signer", "enforcement = \"require\"\n", "invalid trust policy: " + path + ": no [[signer]]: a policy must trust at least one signer"},
		{"empty file", "", "no [[signer]]"},
		{"unknown top-level key", "enforcment = \"require\"\n" + certPolicy("a", cert), path + ":1: key enforcment: unknown key"},
		{"unknown signer key", certPolicy("a", cert) + "certificate = \"/x\"\n", path + ":4: key signer.certificate: unknown key"},
		{"syntax error", "enforcement = \n", path + ":1:"},
		{"wrong type", "[[signer]]\nname = 1\n", path + ":2: key signer.name: is a TOML integer, want a string"},
		{"wrong type of table", "signer = 3\n", path + ":1: key signer: is a TOML integer, want an array of tables"},
		{"wrong threshold type", certPolicy("a", cert) + "ct_log_threshold = \"1\"\n", path + ":4: key signer.ct_log_threshold: is a TOML string, want an integer"},
		{"bad enforcement", "enforcement = \"strict\"\n" + certPolicy("a", cert), path + `:1: key enforcement: "strict" is not one of require, measure, userspace`},
		{"bad unsigned", "unsigned = \"maybe\"\n" + certPolicy("a", cert), path + `:1: key unsigned: "maybe" is not one of reject, allow`},
		{"signer without name", fmt.Sprintf("[[signer]]\ncertificates = %q\n", cert), "key signer[0].name: every signer needs a name"},
		{"duplicate signer name", certPolicy("a", cert) + certPolicy("a", cert), path + `:5: key signer[1].name: signer name "a" is used twice`},
		{"signer without material", "[[signer]]\nname = \"a\"\n", path + `:2: key signer[0].name: signer "a" has no trust material: set one of certificates, ca, public_key, trusted_root`},
		{"two kinds of material", fmt.Sprintf("[[signer]]\nname = \"a\"\ncertificates = %q\npublic_key = %q\n", cert, smallPub), path + `:4: key signer[0].public_key: signer "a" sets certificates and public_key: set only one of`},
		{"relative path", "[[signer]]\nname = \"a\"\ncertificates = \"keys/a.crt\"\n", path + `:3: key signer[0].certificates: "keys/a.crt" is not an absolute path`},
		{"missing file", certPolicy("a", "/nonexistent/a.crt"), "key signer[0].certificates: certificate file /nonexistent/a.crt does not exist (/nonexistent does not exist)"},
		{"not PEM", certPolicy("a", notPEM), path + ":3: key signer[0].certificates: " + notPEM + ": no PEM data"},
		{"RSA 1024 certificate", certPolicy("a", smallCert), `certificate "CN=small"`},
		{"RSA 1024 public key", fmt.Sprintf("[[signer]]\nname = \"a\"\npublic_key = %q\n", smallPub), "RSA key of 1024 bits is too small (at least 2048)"},
		{"P-521 public key", fmt.Sprintf("[[signer]]\nname = \"a\"\npublic_key = %q\n", p521Pub), "ECDSA curve P-521 is not allowed (P-256 or P-384)"},
		{"two public keys", fmt.Sprintf("[[signer]]\nname = \"a\"\npublic_key = %q\n", twoKeys), "holds 2 PEM PUBLIC KEY blocks, want exactly 1"},
		{"CA that is not a CA", fmt.Sprintf("[[signer]]\nname = \"a\"\nca = %q\n", leafCert), `:3: key signer[0].ca: ` + leafCert + `: certificate "CN=leaf" (serial`},
		{"identity without trusted root", certPolicy("a", cert) + "subject = \"me@example.com\"\n", path + ":4: key signer[0].subject: only a signer with trusted_root takes subject"},
		{"rule without name", certPolicy("a", cert) + "[[allow_unsigned]]\nannotations = { a = \"b\" }\n", path + ":4: key allow_unsigned[0].name: every rule needs a name"},
		{"rule without annotations", certPolicy("a", cert) + "[[allow_unsigned]]\nname = \"r\"\n", `key allow_unsigned[0].annotations: rule "r" has no annotations to match`},
		{"rule with bad regexp", certPolicy("a", cert) + "[[allow_unsigned]]\nname = \"r\"\nannotations = { a = \"(\" }\n", path + `:6: key allow_unsigned[0].annotations: rule "r": annotation "a": error parsing regexp: missing closing ): ` + "`(`"},
		{"rule on the digest annotation", certPolicy("a", cert) + "[[allow_unsigned]]\nname = \"r\"\nannotations = { \"composefs.merged.erofs.v1.fsverity-sha256-12\" = \".*\" }\n", `rule "r" matches on the composefs annotation`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(t, path, tc.text)
			_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())))
			wantErr(t, err, ErrPolicy, tc.msg)
			if p := fserr.Misreads(err.Error()); p != "" {
				t.Errorf("message contains %q, which podman misreads", p)
			}
		})
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A policy, or anything it relies on, that non-root users could change is
// refused, with what is wrong and where.
func TestPolicyOwnership(t *testing.T) {
	uid := os.Getuid()
	check := WithFileCheck(RequireOwner(uid))
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, cert := keyPair(t, dir, "release", "ec")
	path := write(t, filepath.Join(dir, "policy.toml"), certPolicy("release", cert))
	if _, err := LoadPolicy(path, check); err != nil {
		t.Fatal(err)
	}
	chmod := func(p string, m os.FileMode) {
		t.Helper()
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}

	chmod(path, 0o646)
	_, err := LoadPolicy(path, check)
	wantErr(t, err, ErrInsecurePolicy, "policy "+path+": insecure trust policy: "+path+" is writable by others (mode -rw-r--rw-)")
	chmod(path, 0o664)
	_, err = LoadPolicy(path, check)
	wantErr(t, err, ErrInsecurePolicy, path+" is writable by its group (mode -rw-rw-r--)")
	chmod(path, 0o644)

	chmod(dir, 0o777)
	_, err = LoadPolicy(path, check)
	wantErr(t, err, ErrInsecurePolicy, dir+" is writable by its group and others (mode drwxrwxrwx)")
	chmod(dir, 0o755)

	// A key file the policy names.
	chmod(cert, 0o666)
	_, err = LoadPolicy(path, check)
	wantErr(t, err, ErrInsecurePolicy, `policy `+path+`: signer "release": insecure trust policy: `+cert+" is writable by its group and others")
	chmod(cert, 0o644)

	// A symlink to a file in a writable directory.
	wdir := filepath.Join(base, "writable")
	if err := os.Mkdir(wdir, 0o777); err != nil {
		t.Fatal(err)
	}
	chmod(wdir, 0o777)
	real := write(t, filepath.Join(wdir, "policy.toml"), certPolicy("release", cert))
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPolicy(link, check)
	wantErr(t, err, ErrInsecurePolicy, wdir+" is writable by its group and others")

	// A sticky world-writable directory (like /tmp) is fine.
	chmod(wdir, os.ModeSticky|0o777)
	if _, err := LoadPolicy(link, check); err != nil {
		t.Fatal(err)
	}
}

// The default check is root's: a policy owned by another user is refused.
func TestPolicyOwnedByNonRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	_, cert := keyPair(t, base, "release", "ec")
	path := write(t, filepath.Join(base, "policy.toml"), certPolicy("release", cert))
	if _, err := LoadPolicy(path); err != nil {
		t.Fatalf("root-owned policy: %v", err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPolicy(path)
	wantErr(t, err, ErrInsecurePolicy, path+" is owned by uid 65534, not root")
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cert, 1000, 0); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPolicy(path)
	wantErr(t, err, ErrInsecurePolicy, `signer "release"`, cert+" is owned by uid 1000, not root")
}

// The documented example is a valid policy: with its paths pointing at
// material the test makes, it loads and means what its comments say.
func TestPolicyExample(t *testing.T) {
	text := readFile(t, "../contrib/policy.toml.example")
	dir := t.TempDir()
	_, release := keyPair(t, dir, "release", "ec")
	caKey, caCert := makeCA(t, dir, "corp-ca")
	_, signer := issue(t, dir, "builder", caKey, caCert)
	key, _ := keyPair(t, dir, "ci", "ec")
	vs := newVirtualSigstore(t, dir)
	for from, to := range map[string]string{
		"/etc/cfs-runtime/keys/release.crt":           release,
		"/etc/cfs-runtime/keys/corp-ca.pem":           caCert,
		"/etc/cfs-runtime/keys/corp-signers.pem":      signer,
		"/etc/cfs-runtime/keys/cosign.pub":            pubKey(t, key),
		"/etc/cfs-runtime/sigstore/trusted_root.json": vs.root,
	} {
		if !strings.Contains(text, `"`+from+`"`) {
			t.Fatalf("example no longer names %s", from)
		}
		text = strings.ReplaceAll(text, `"`+from+`"`, `"`+to+`"`)
	}
	p := policyFrom(t, dir, text)
	if p.Enforcement != EnforceRequire || p.AllowUnsigned || len(p.Signers) != 4 || len(p.Rules) != 2 {
		t.Fatalf("example policy %+v", p)
	}
	want := []SignerType{SignerCertificates, SignerCA, SignerPublicKey, SignerSigstore}
	for i, s := range p.Signers {
		if s.Type != want[i] {
			t.Fatalf("signer %q is %s, want %s", s.Name, s.Type, want[i])
		}
	}
	if s := p.Signers[3]; s.CTLogThreshold != 1 || s.TLogThreshold != 1 || s.OIDCIssuer != "https://token.actions.githubusercontent.com" {
		t.Fatalf("sigstore signer %+v", s)
	}
	for _, ann := range []map[string]string{{"io.kubernetes.cri.container-type": "sandbox"}, {"io.kubernetes.cri-o.ContainerType": "sandbox"}} {
		mustVerify(t, ann, p)
		// A sandbox carrying the pod's composefs annotations passes too.
		ann[k256] = hex64
		if v := mustVerify(t, ann, p); !v.IgnoredDigest {
			t.Fatalf("%v: verdict %+v", ann, v)
		}
	}
	_, err := Verify(map[string]string{"io.kubernetes.cri.container-type": "container"}, p)
	wantErr(t, err, ErrNoDigest)
	// What Describe prints loads again, to the same policy.
	var b strings.Builder
	p.Describe(&b)
	again := policyFrom(t, t.TempDir(), b.String())
	var b2 strings.Builder
	again.Describe(&b2)
	if strings.SplitN(b.String(), "\n", 2)[1] != strings.SplitN(b2.String(), "\n", 2)[1] {
		t.Fatalf("Describe does not round-trip:\n%s\n---\n%s", b.String(), b2.String())
	}
}

// A rule with ignore_digest lets CRI sandboxes through although they carry
// the pod's composefs annotations (those of the application image); other
// containers are still verified.
func TestIgnoreDigestRule(t *testing.T) {
	dir := t.TempDir()
	_, cert := keyPair(t, dir, "release", "ec")
	p := policyFrom(t, dir, certPolicy("release", cert)+`
[[allow_unsigned]]
name = "containerd-sandbox"
annotations = { "io.kubernetes.cri.container-type" = "sandbox" }
ignore_digest = true

[[allow_unsigned]]
name = "batch"
annotations = { "example.com/batch" = "yes" }
`)
	if len(p.Rules) != 2 || !p.Rules[0].IgnoreDigest || p.Rules[1].IgnoreDigest {
		t.Fatalf("rules %+v", p.Rules)
	}
	const sandbox = "io.kubernetes.cri.container-type"
	for _, ann := range []map[string]string{
		{sandbox: "sandbox", k256: hex64},
		{sandbox: "sandbox", k256: hex64, k256 + ".sig": "not base64!"},
		{sandbox: "sandbox", "COMPOSEFS.merged.erofs.v1.fsverity-sha256-12": "upper case"},
		{sandbox: "sandbox", k256 + ".cosign": "a signature without its digest"},
	} {
		v := mustVerify(t, ann, p)
		if !v.Unsigned || !v.IgnoredDigest || v.Rule != "containerd-sandbox" || v.Digest != nil {
			t.Fatalf("%v: verdict %+v", ann, v)
		}
		if want := `composefs annotations ignored: allowed unverified by rule "containerd-sandbox" (ignore_digest)`; v.String() != want {
			t.Fatalf("verdict string %q, want %q", v.String(), want)
		}
	}
	// Without composefs annotations it is an ordinary unsigned verdict.
	if v := mustVerify(t, map[string]string{sandbox: "sandbox"}, p); v.IgnoredDigest || v.Rule != "containerd-sandbox" ||
		v.String() != `no composefs digest: allowed unsigned by rule "containerd-sandbox"` {
		t.Fatalf("verdict %+v", v)
	}
	// The whole value must still match, and other containers are verified.
	_, err := Verify(map[string]string{sandbox: "container", k256: hex64}, p)
	wantErr(t, err, ErrUnsigned, "composefs digest sha256:"+hex64+": composefs digest not signed")
	_, err = Verify(map[string]string{sandbox: "sandbox-x", k256: hex64}, p)
	wantErr(t, err, ErrUnsigned)
	// Without ignore_digest a matching rule does not stop verification.
	_, err = Verify(map[string]string{"example.com/batch": "yes", k256: hex64}, p)
	wantErr(t, err, ErrUnsigned)
	v := mustVerify(t, map[string]string{"example.com/batch": "yes"}, p)
	if v.IgnoredDigest || v.Rule != "batch" {
		t.Fatalf("verdict %+v", v)
	}

	var b strings.Builder
	p.Describe(&b)
	if got := b.String(); strings.Count(got, "ignore_digest = true") != 1 || !strings.Contains(got, "name = \"containerd-sandbox\"\nignore_digest = true") {
		t.Fatalf("Describe output:\n%s", got)
	}
}

// A trust file the policy names that does not exist is named as such:
// "key file X does not exist", not the lstat error's "no such file or
// directory", which podman shows as a missing command (exit status 127).
// It is still fs.ErrNotExist, eagerly and when parsing is deferred.
func TestMissingTrustFileIsNamed(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "release", "ec")
	check := WithFileCheck(RequireOwner(os.Getuid()))
	gone := filepath.Join(dir, "gone")
	for _, tc := range []struct {
		key, what, signer string
	}{
		{"certificates", "certificate file", certPolicy("s", gone+"/x.crt")},
		{"ca", "CA certificate file", fmt.Sprintf("[[signer]]\nname = \"s\"\nca = %q\n", gone+"/x.crt")},
		{"public_key", "key file", fmt.Sprintf("[[signer]]\nname = \"s\"\npublic_key = %q\n", gone+"/x.pub")},
		{"trusted_root", "trusted root file", sigstorePolicy("s", gone+"/x.json", `subject = "me@example.com"`)},
	} {
		t.Run(tc.key, func(t *testing.T) {
			path := write(t, filepath.Join(dir, tc.key+".toml"), tc.signer)
			_, err := LoadPolicy(path, check)
			file := gone + "/x." + map[string]string{"certificates": "crt", "ca": "crt", "public_key": "pub", "trusted_root": "json"}[tc.key]
			wantErr(t, err, ErrPolicy, fmt.Sprintf("key signer[0].%s: %s %s does not exist (%s does not exist)", tc.key, tc.what, file, gone))
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%v is not fs.ErrNotExist", err)
			}
			if p := fserr.Misreads(err.Error()); p != "" {
				t.Errorf("message contains %q, which podman misreads", p)
			}
		})
	}
	// Deferred (the runtime path): the same error when a signature needs it.
	missing := filepath.Join(dir, "missing.pub")
	path := write(t, filepath.Join(dir, "deferred.toml"), fmt.Sprintf("[[signer]]\nname = \"s\"\npublic_key = %q\n", missing))
	p, err := LoadPolicy(path, check, DeferParsing())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := ParseDigest(hex64)
	k, _ := loadKeyCert(t, key, cert)
	sig, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(map[string]string{d.AnnotationKey(): d.Hex(), d.AnnotationKey() + CosignSuffix: b64(sig)}, p)
	wantErr(t, err, ErrPolicy, path+":3: key signer[0].public_key: key file "+missing+" does not exist")
	if !errors.Is(err, fs.ErrNotExist) || fserr.Misreads(err.Error()) != "" {
		t.Errorf("%v: not fs.ErrNotExist, or misread", err)
	}
}
