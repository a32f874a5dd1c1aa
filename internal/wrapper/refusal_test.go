package wrapper

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// podman maps a runtime error containing "no such file or directory" to "OCI
// runtime attempted to invoke a command that was not found" (exit status
// 127) and one containing "permission denied" or "operation not permitted"
// to "OCI permission denied" (package fserr lists the phrases). Each of
// cfs-runtime's own refusals on the create path must say what is wrong in
// its own words, and what fail() prints and logs must not contain those
// phrases either. tests/bats/podman.bats checks what podman then shows.
func TestRefusalsAreNotMisreadByPodman(t *testing.T) {
	testutil.RequiresRoot(t) // the policy must be root's
	f := newSignFixture(t)
	pkcs7Ann, cosignAnn := f.pkcs7Ann, f.cosignAnn
	dir := f.dir
	bundle := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	policy := func(text string) string {
		return sigWriteFile(t, filepath.Join(dir, "p.toml"), "enforcement = \"userspace\"\n"+text)
	}
	gone := filepath.Join(dir, "gone")
	for _, tc := range []struct {
		name     string
		runtime  string // default /usr/sbin/runc
		policy   string // the policy file's path (default: written by setup)
		setup    func() // writes the policy and the bundle's config.json
		bundle   string // default bundle
		want     string
		notExist bool // errors.Is(err, fs.ErrNotExist)
	}{
		{
			name: "missing certificate file",
			setup: func() {
				policy(fmt.Sprintf("[[signer]]\nname = \"s\"\ncertificates = %q\n", gone+"/release.crt"))
				writeConfig(t, bundle, "rootfs", pkcs7Ann)
			},
			want:     fmt.Sprintf("invalid trust policy: %s:4: key signer[0].certificates: certificate file %s/release.crt does not exist (%s does not exist)", filepath.Join(dir, "p.toml"), gone, gone),
			notExist: true,
		},
		{
			name: "missing key file",
			setup: func() {
				policy(fmt.Sprintf("[[signer]]\nname = \"s\"\npublic_key = %q\n", dir+"/release.pub"))
				writeConfig(t, bundle, "rootfs", cosignAnn)
			},
			want:     fmt.Sprintf("invalid trust policy: %s:4: key signer[0].public_key: key file %s/release.pub does not exist", filepath.Join(dir, "p.toml"), dir),
			notExist: true,
		},
		{
			name:   "missing policy",
			policy: filepath.Join(dir, "none.toml"),
			setup:  func() { writeConfig(t, bundle, "rootfs", pkcs7Ann) },
			want:   "no trust policy: " + filepath.Join(dir, "none.toml") + " does not exist; every container is refused",
		},
		{
			name:     "missing bundle",
			setup:    func() { policy(certPolicyText(f.cert)) },
			bundle:   gone,
			want:     "bundle not found: " + gone + " does not exist",
			notExist: true,
		},
		{
			name: "missing config.json",
			setup: func() {
				policy(certPolicyText(f.cert))
				os.Remove(filepath.Join(bundle, "config.json"))
			},
			want:     "invalid bundle config: " + bundle + "/config.json does not exist",
			notExist: true,
		},
		{
			name: "missing root filesystem, image not in the store",
			setup: func() {
				policy(certPolicyText(f.cert))
				writeConfig(t, bundle, "no-rootfs", pkcs7Ann)
			},
			want: "composefs image not available: composefs digest ",
		},
		{
			name:     "missing runtime",
			runtime:  "/nonexistent/runc",
			setup:    func() { policy(certPolicyText(f.cert)) },
			want:     "no OCI runtime found: configured runtime /nonexistent/runc does not exist",
			notExist: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			rt := tc.runtime
			if rt == "" {
				rt = "/usr/sbin/runc"
			}
			pol := tc.policy
			if pol == "" {
				pol = filepath.Join(dir, "p.toml")
			}
			b := tc.bundle
			if b == "" {
				b = bundle
			}
			auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
			cfg := sigWriteFile(t, filepath.Join(dir, "config.toml"), fmt.Sprintf("runtime = %q\nstore_dir = %q\nstate_dir = %q\npolicy = %q\naudit_file = %q\n",
				rt, filepath.Join(dir, "store"), filepath.Join(dir, "state"), pol, auditFile))
			t.Setenv("CFS_RUNTIME_CONFIG", cfg)
			logFile := filepath.Join(t.TempDir(), "log.json")
			inv := oci.Parse([]string{"--root", filepath.Join(dir, "runc"), "--log", logFile, "--log-format", "json", "create", "--bundle", b, "c1"})
			env, err := setupRuntime(inv)
			if err == nil && env.call.CfgErr != nil {
				err = env.call.CfgErr
			}
			prepared := err == nil
			if prepared {
				_, err = prepareCreate(env)
			}
			if err == nil {
				t.Fatal("not refused")
			}
			// A refused create leaves one deny line with its reason in the
			// audit trail.
			data, _ := os.ReadFile(auditFile)
			var ev struct {
				Decision    string `json:"decision"`
				ContainerID string `json:"container_id"`
				Reason      string `json:"reason"`
			}
			if !prepared {
				if len(data) != 0 {
					t.Errorf("audit trail of a create that never prepared: %q", data)
				}
			} else if strings.Count(string(data), "\n") != 1 || json.Unmarshal(data, &ev) != nil || ev.Decision != "deny" || ev.ContainerID != "c1" || ev.Reason != err.Error() {
				t.Errorf("audit trail %q, want one deny of c1 with reason %q", data, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("refusal\n got %s\nwant %s", err, tc.want)
			}
			if p := fserr.Misreads(err.Error()); p != "" {
				t.Errorf("%q contains %q, which podman misreads", err, p)
			}
			if tc.notExist && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%v is no longer fs.ErrNotExist", err)
			}
			stderr, logged := failOutput(t, inv, err)
			if stderr != "cfs-runtime: "+err.Error()+"\n" || logged != strings.TrimSuffix(stderr, "\n") {
				t.Errorf("fail printed %q and logged %q", stderr, logged)
			}
		})
	}
}

// What fail() prints and logs is scrubbed of what podman misreads, also
// for errors no site words itself.
func TestFailScrubsMisreadPhrases(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "log.json")
	inv := oci.Parse([]string{"--log", logFile, "--log-format", "json", "create", "--bundle", "/b", "c1"})
	err := fmt.Errorf("importing bundle root filesystem /b/rootfs: %w", &fs.PathError{Op: "open", Path: "/b/rootfs/x", Err: syscall.EACCES})
	stderr, logged := failOutput(t, inv, err)
	want := "cfs-runtime: importing bundle root filesystem /b/rootfs: open /b/rootfs/x: access refused (EACCES)"
	if stderr != want+"\n" || logged != want {
		t.Errorf("fail printed %q and logged %q, want %q", stderr, logged, want)
	}
}

// failOutput runs handoff.Fail(inv, err) and returns its stderr and the msg of the
// JSON line it logged to inv's --log file.
func failOutput(t *testing.T, inv *oci.Invocation, err error) (string, string) {
	t.Helper()
	r, w, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	old := os.Stderr
	os.Stderr = w
	code := handoff.Fail(inv, err)
	os.Stderr = old
	w.Close()
	out, _ := io.ReadAll(r)
	if code != 1 {
		t.Errorf("fail returned %d", code)
	}
	data, rerr := os.ReadFile(inv.LogFile())
	if rerr != nil {
		t.Fatal(rerr)
	}
	var line struct{ Msg string }
	if jerr := json.Unmarshal(data, &line); jerr != nil {
		t.Fatalf("log %q: %v", data, jerr)
	}
	return string(out), line.Msg
}

func certPolicyText(cert string) string {
	return fmt.Sprintf("[[signer]]\nname = \"s\"\ncertificates = %q\n", cert)
}

// writeConfig writes bundle/config.json with root.path and the annotations
// (a JSON object).
func writeConfig(t *testing.T, bundle, root, annotations string) {
	t.Helper()
	sigWriteFile(t, filepath.Join(bundle, "config.json"), fmt.Sprintf(`{"ociVersion": "1.2.0", "root": {"path": %q}, "annotations": %s}`, root, annotations))
}

func sigWriteFile(t *testing.T, p, s string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// signFixture: an RSA key, its self-signed certificate (f.cert, PEM) and
// the annotations of a digest signed with it as PKCS#7 and as cosign
// (JSON objects, as `cfs-runtime sign --format json` prints them).
type signFixture struct {
	dir, cert           string
	pkcs7Ann, cosignAnn string
}

func newSignFixture(t *testing.T) signFixture {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "release"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f := signFixture{dir: dir, cert: filepath.Join(dir, "release.crt")}
	sigWriteFile(t, f.cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	d, err := attest.ParseDigest(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		certs []*x509.Certificate
		out   *string
	}{{[]*x509.Certificate{cert}, &f.pkcs7Ann}, {nil, &f.cosignAnn}} {
		ann, err := attest.Sign(d, key, c.certs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(ann)
		if err != nil {
			t.Fatal(err)
		}
		*c.out = string(b)
	}
	return f
}
