package main

import (
	"bytes"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/urfave/cli/v2"
)

// runAttestCLI runs `cfs-runtime ARGS...` as a tool command and returns
// stdout and the exit code runTool would use.
func runAttestCLI(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(append([]string{"cfs-runtime"}, args...))
	code := 0
	if err != nil {
		code = 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
	}
	return out.String(), code, err
}

func sigShell(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// signFixture: an RSA key with a self-signed certificate (openssl), a
// random "image" and a policy trusting the certificate, all root-owned in
// a directory only root can write (tests run as root in CI; elsewhere the
// policy check is the test user's).
type signFixture struct {
	dir, key, cert, image, policy string
}

func newSignFixture(t *testing.T) signFixture {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := signFixture{dir: dir, key: filepath.Join(dir, "release.key"), cert: filepath.Join(dir, "release.crt"), image: filepath.Join(dir, "image.cfs")}
	sigShell(t, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f.key, "-out", f.cert, "-days", "2", "-subj", "/CN=release")
	sigShell(t, "dd", "if=/dev/urandom", "of="+f.image, "bs=1000", "count=37")
	f.policy = filepath.Join(dir, "policy.toml")
	sigWriteFile(t, f.policy, fmt.Sprintf("[[signer]]\nname = \"release\"\ncertificates = %q\n\n[[allow_unsigned]]\nname = \"sandbox\"\nannotations = { \"io.kubernetes.cri.container-type\" = \"sandbox\" }\n", f.cert))
	return f
}

func sigWriteFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignImageFormats(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	want := strings.Fields(sigShell(t, "fsverity", "digest", "--compact", f.image))[0]

	out, code, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", f.image)
	if code != 0 {
		t.Fatalf("sign: %v\n%s", err, out)
	}
	var ann map[string]string
	if err := json.Unmarshal([]byte(out), &ann); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if len(ann) != 2 || ann[attest.DefaultDigestAnnotation] != want || ann[attest.DefaultDigestAnnotation+".sig"] == "" {
		t.Fatalf("annotations %v, want digest %s", ann, want)
	}

	// podman: one line of --annotation flags, no quoting needed.
	out, _, err = runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, f.image)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^--annotation composefs\.merged\.erofs\.v1\.fsverity-sha256-12=` + want + ` --annotation composefs\.merged\.erofs\.v1\.fsverity-sha256-12\.sig=[A-Za-z0-9+/=]+\n$`)
	if !re.MatchString(out) {
		t.Fatalf("podman output %q", out)
	}

	// annotations: K=V lines, which verify --annotations reads back.
	out, _, err = runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "annotations", "--message-out", filepath.Join(f.dir, "msg"), f.image)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != attest.DefaultDigestAnnotation+"="+want {
		t.Fatalf("annotations output %q", out)
	}
	d, _ := attest.ParseDigest(want)
	msg, err := os.ReadFile(filepath.Join(f.dir, "msg"))
	if err != nil || !bytes.Equal(msg, verity.FormattedDigest(verity.SHA256, d.Value)) {
		t.Fatalf("--message-out wrote %x (%v)", msg, err)
	}
	annFile := sigWriteFile(t, filepath.Join(f.dir, "ann.txt"), out)
	out, code, err = runAttestCLI(t, "verify", "--annotations", annFile, "--policy", f.policy)
	if code != 0 {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	for _, frag := range []string{
		"composefs digest: sha256:" + want + " (composefs.merged.erofs.v1.fsverity-sha256-12, 4096-byte blocks)\n",
		`signature: PKCS#7 signature (composefs.merged.erofs.v1.fsverity-sha256-12.sig) trusted by signer "release": certificate "CN=release"`,
		"enforcement: require: kernel fs-verity and overlayfs verity=require\n",
		"verdict: trusted\n",
	} {
		if !strings.Contains(out, frag) {
			t.Fatalf("verify output lacks %q:\n%s", frag, out)
		}
	}
}

// The signature `cfs-runtime sign DIGEST` makes is what `fsverity sign`
// makes for the file with that digest: both verify the same way.
func TestSignDigestMatchesFsverity(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	digest := strings.Fields(sigShell(t, "fsverity", "digest", f.image))[0] // sha256:HEX
	out, _, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", digest)
	if err != nil {
		t.Fatal(err)
	}
	ours := sigWriteFile(t, filepath.Join(f.dir, "ours.json"), out)
	sigShell(t, "fsverity", "sign", f.image, filepath.Join(f.dir, "theirs.sig"), "--key="+f.key, "--cert="+f.cert)
	sig, _ := os.ReadFile(filepath.Join(f.dir, "theirs.sig"))
	theirs := sigWriteFile(t, filepath.Join(f.dir, "theirs.json"), fmt.Sprintf(`{%q: %q, %q: %q}`,
		attest.DefaultDigestAnnotation, strings.TrimPrefix(digest, "sha256:"), attest.DefaultDigestAnnotation+".sig", sigB64(sig)))
	for _, file := range []string{ours, theirs} {
		if out, code, err := runAttestCLI(t, "verify", "--annotations", file, "--policy", f.policy); code != 0 {
			t.Fatalf("verify %s: %v\n%s", file, err, out)
		}
	}
}

// sign TREE signs the tree's composefs digest (what `cfs-runtime digest`
// and mkcomposefs print); other algorithms hash the same image with other
// fs-verity parameters.
func TestSignTree(t *testing.T) {
	f := newSignFixture(t)
	tree := filepath.Join(f.dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	sigWriteFile(t, filepath.Join(tree, "etc", "hostname"), "box\n")
	digest, err := composefs.Digest(tree)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runAttestCLI(t, "sign", "--key", f.key, "--format", "annotations", tree)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, attest.DefaultDigestAnnotation+"="+hex.EncodeToString(digest)+"\n"+attest.DefaultDigestAnnotation+".cosign=") {
		t.Fatalf("sign TREE: %q, digest %x", out, digest)
	}
	ct, err := composefs.BuildTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	h, err := verity.NewHasher(verity.WithAlgorithm(verity.SHA512), verity.WithBlockSize(65536))
	if err != nil {
		t.Fatal(err)
	}
	if err := ct.WriteImage(h); err != nil {
		t.Fatal(err)
	}
	want := h.Sum()
	out, _, err = runAttestCLI(t, "sign", "--key", f.key, "--algorithm", "fsverity-sha512-16", "--format", "annotations", tree)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "composefs.merged.erofs.v1.fsverity-sha512-16="+hex.EncodeToString(want)+"\n") {
		t.Fatalf("sign --algorithm fsverity-sha512-16 TREE: %q, want digest %x", out, want)
	}
}

// A cosign-style encrypted key is decrypted with $COSIGN_PASSWORD.
func TestSignEncryptedKey(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	key := sigWriteFile(t, filepath.Join(f.dir, "cosign.key"), string(priv))
	pubFile := sigWriteFile(t, filepath.Join(f.dir, "cosign.pub"), string(pub))
	policy := sigWriteFile(t, filepath.Join(f.dir, "cosign-policy.toml"), fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n", pubFile))

	t.Setenv("COSIGN_PASSWORD", "") // restored after the test
	os.Unsetenv("COSIGN_PASSWORD")
	_, code, err := runAttestCLI(t, "sign", "--key", key, f.image)
	if code != 1 || !strings.Contains(err.Error(), "the key is encrypted: set COSIGN_PASSWORD") {
		t.Fatalf("no password: %d %v", code, err)
	}
	t.Setenv("COSIGN_PASSWORD", "wrong")
	_, _, err = runAttestCLI(t, "sign", "--key", key, f.image)
	if err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	out, _, err := runAttestCLI(t, "sign", "--key", key, "--format", "json", f.image)
	if err != nil {
		t.Fatal(err)
	}
	annFile := sigWriteFile(t, filepath.Join(f.dir, "ann.json"), out)
	out, code, err = runAttestCLI(t, "verify", "--annotations", annFile, "--policy", policy)
	if code != 0 || !strings.Contains(out, `signature: cosign signature (composefs.merged.erofs.v1.fsverity-sha256-12.cosign) trusted by signer "ci": ECDSA P-256 public key`) {
		t.Fatalf("verify: %d %v\n%s", code, err, out)
	}
}

func TestSignUsageErrors(t *testing.T) {
	f := newSignFixture(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"sign", "--key", f.key}, "sign: want exactly one DIGEST, IMAGE or TREE argument"},
		{[]string{"sign", "--key", f.key, "--format", "yaml", f.image}, `sign: unknown --format "yaml"`},
		{[]string{"sign", "--key", f.key, "sha256:xyz"}, `sign: "sha256:xyz" is neither a file, a directory nor a digest: digest "xyz" is not lowercase hex`},
		{[]string{"sign", "--key", f.key, "--algorithm", "fsverity-md5-12", f.image}, `sign: --algorithm: unknown fs-verity algorithm "fsverity-md5-12"`},
		{[]string{"sign", "--key", f.key, "--algorithm", "fsverity-sha512-12", "sha256:" + strings.Repeat("0", 64)}, "sign: digest fsverity-sha256-12 does not match --algorithm fsverity-sha512-12"},
	} {
		_, code, err := runAttestCLI(t, tc.args...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: exit %d, %v; want 2 and %q", tc.args, code, err, tc.msg)
		}
	}
	_, code, err := runAttestCLI(t, "sign", "--key", f.cert, f.image)
	if code != 1 || !strings.Contains(err.Error(), "sign: "+f.cert+": private key:") {
		t.Errorf("certificate as key: %d %v", code, err)
	}
	_, code, err = runAttestCLI(t, "sign", "--key", f.key, "--cert", f.image, f.image)
	if code != 1 || !strings.Contains(err.Error(), "no PEM data") {
		t.Errorf("image as certificate: %d %v", code, err)
	}
}
