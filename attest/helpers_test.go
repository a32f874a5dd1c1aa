package attest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// run runs a real tool and fails the test with its output if it fails.
func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func write(t testing.TB, path string, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadPolicy loads a policy written by the test; files belong to the test's
// own user, which the ownership check is told to trust.
func loadPolicy(t testing.TB, path string) *Policy {
	t.Helper()
	p, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())))
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	return p
}

func policyFrom(t testing.TB, dir, text string) *Policy {
	t.Helper()
	return loadPolicy(t, write(t, filepath.Join(dir, "policy.toml"), text))
}

// keyPair makes a private key and a self-signed certificate with openssl.
// alg is "rsa" (2048), "rsa1024", "ec" (P-256), "ec384" or "ed25519".
func keyPair(t testing.TB, dir, name, alg string) (key, cert string) {
	t.Helper()
	key = filepath.Join(dir, name+".key")
	cert = filepath.Join(dir, name+".crt")
	genKey(t, key, alg)
	run(t, nil, "openssl", "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2", "-subj", "/CN="+name)
	return key, cert
}

func genKey(t testing.TB, key, alg string) {
	t.Helper()
	switch alg {
	case "rsa":
		run(t, nil, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
	case "rsa1024":
		run(t, nil, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", key)
	case "ec":
		run(t, nil, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
	case "ec384":
		run(t, nil, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", key)
	case "ec521":
		run(t, nil, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", key)
	case "ed25519":
		run(t, nil, "openssl", "genpkey", "-algorithm", "ED25519", "-out", key)
	default:
		t.Fatalf("unknown key algorithm %q", alg)
	}
}

func pubKey(t testing.TB, key string) string {
	t.Helper()
	pub := strings.TrimSuffix(key, ".key") + ".pub"
	run(t, nil, "openssl", "pkey", "-in", key, "-pubout", "-out", pub)
	return pub
}

// ca makes a CA key and certificate with openssl.
func makeCA(t testing.TB, dir, name string) (key, cert string) {
	t.Helper()
	key = filepath.Join(dir, name+".key")
	cert = filepath.Join(dir, name+".crt")
	genKey(t, key, "ec")
	run(t, nil, "openssl", "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "30", "-subj", "/CN="+name,
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return key, cert
}

// issue makes a leaf key and a certificate issued by the CA.
func issue(t testing.TB, dir, name, caKey, caCert string) (key, cert string) {
	t.Helper()
	key = filepath.Join(dir, name+".key")
	cert = filepath.Join(dir, name+".crt")
	csr := filepath.Join(dir, name+".csr")
	genKey(t, key, "rsa")
	run(t, nil, "openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/CN="+name)
	ext := write(t, filepath.Join(dir, name+".ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n")
	run(t, nil, "openssl", "x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
	return key, cert
}

// imageFile writes a file of random bytes (a stand-in composefs image).
func imageFile(t testing.TB, dir, name string, size int) string {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return write(t, filepath.Join(dir, name), string(b))
}

var signedRe = regexp.MustCompile(`\((sha256|sha512):([0-9a-f]+)\)`)

// fsveritySign runs the real `fsverity sign` and returns the digest it
// printed and the signature file's bytes. extra are e.g. --hash-alg=sha512.
func fsveritySign(t testing.TB, file, key, cert string, extra ...string) (Digest, []byte) {
	t.Helper()
	sig := file + ".sig"
	args := append([]string{"sign", file, sig, "--key=" + key, "--cert=" + cert}, extra...)
	out := run(t, nil, "fsverity", args...)
	m := signedRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fsverity sign printed no digest: %s", out)
	}
	d := Digest{Algorithm: verity.SHA256, BlockSize: 4096}
	if m[1] == "sha512" {
		d.Algorithm = verity.SHA512
	}
	for _, e := range extra {
		if e == "--block-size=65536" {
			d.BlockSize = 65536
		}
	}
	var err error
	if d.Value, err = hex.DecodeString(m[2]); err != nil {
		t.Fatal(err)
	}
	// Our own digest code must agree with the tool.
	mine, err := verity.DigestFile(file, d.VerityOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(mine) != m[2] {
		t.Fatalf("verity.DigestFile = %x, fsverity = %s", mine, m[2])
	}
	b, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// pkcs7Annotations is what `cfs-runtime sign` would attach.
func pkcs7Annotations(d Digest, sig []byte) map[string]string {
	return map[string]string{d.AnnotationKey(): d.Hex(), d.AnnotationKey() + SigSuffix: b64(sig)}
}

// wantErr checks that err wraps sentinel and that its message contains
// every fragment.
func wantErr(t testing.TB, err error, sentinel error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %q", err, sentinel)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not contain %q", err, f)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}

func mustVerify(t testing.TB, ann map[string]string, p *Policy, opts ...VerifyOption) Verdict {
	t.Helper()
	v, err := Verify(ann, p, opts...)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func certPolicy(name, certs string) string {
	return fmt.Sprintf("[[signer]]\nname = %q\ncertificates = %q\n", name, certs)
}
