package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// requireOwnPolicy: verify and policy check load the policy exactly as
// create does, refusing it unless root owns it; that needs root (CI is).
func requireOwnPolicy(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
}

func sigB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// verify --bundle reads config.json's annotations; exit 0 trusted or
// allowed, 1 refused with the reason on the verdict line.
func TestVerifyBundle(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	out, _, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", f.image)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(f.dir, "bundle")
	os.Mkdir(bundle, 0o755)
	sigWriteFile(t, filepath.Join(bundle, "config.json"), `{"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "annotations": `+out+`}`)
	out, code, err := runAttestCLI(t, "verify", "--bundle", bundle, "--policy", f.policy)
	if code != 0 || !strings.HasSuffix(out, "verdict: trusted\n") || !strings.HasPrefix(out, "annotations: "+bundle+"/config.json\npolicy: "+f.policy+"\n") {
		t.Fatalf("verify: %d %v\n%s", code, err, out)
	}

	// Tampered: the digest of another image.
	tampered := strings.Replace(sigReadText(t, filepath.Join(bundle, "config.json")), `-12": "`, `-12": "00`, 1)
	sigWriteFile(t, filepath.Join(bundle, "config.json"), sigFixLength(t, tampered))
	out, code, err = runAttestCLI(t, "verify", "--bundle", bundle, "--policy", f.policy)
	if code != 1 || !strings.Contains(out, "verdict: refused: composefs digest sha256:00") || !strings.Contains(out, "bad signature: PKCS#7 signature by certificate \"CN=release\"") {
		t.Fatalf("tampered: %d %v\n%s", code, err, out)
	}
	if err.Error() != "" {
		t.Fatalf("refusal error %q: the verdict line already says why", err)
	}

	// No annotations at all: refused; the sandbox annotation: allowed.
	sigWriteFile(t, filepath.Join(bundle, "config.json"), `{"ociVersion": "1.2.0"}`)
	out, code, _ = runAttestCLI(t, "verify", "--bundle", bundle, "--policy", f.policy)
	if code != 1 || !strings.Contains(out, "composefs annotations: none\nverdict: refused: no composefs digest: no composefs.merged.erofs.v1.fsverity-sha256-12 annotation") {
		t.Fatalf("unsigned: %d\n%s", code, out)
	}
	sigWriteFile(t, filepath.Join(bundle, "config.json"), `{"annotations": {"io.kubernetes.cri.container-type": "sandbox"}}`)
	out, code, _ = runAttestCLI(t, "verify", "--bundle", bundle, "--policy", f.policy)
	if code != 0 || !strings.HasSuffix(out, "verdict: allowed unsigned by rule \"sandbox\": the root filesystem is not verified\n") {
		t.Fatalf("sandbox: %d\n%s", code, out)
	}

	// The policy comes from the configuration when --policy is not given.
	cfg := sigWriteFile(t, filepath.Join(f.dir, "config.toml"), fmt.Sprintf("policy = %q\n", f.policy))
	t.Setenv("CFS_RUNTIME_CONFIG", cfg)
	out, code, _ = runAttestCLI(t, "verify", "--bundle", bundle)
	if code != 0 || !strings.Contains(out, "policy: "+f.policy+"\n") {
		t.Fatalf("policy from config: %d\n%s", code, out)
	}
}

// fixLength trims the tampered digest back to 64 hex digits.
func sigFixLength(t *testing.T, s string) string {
	t.Helper()
	i := strings.Index(s, `-12": "00`)
	if i < 0 {
		t.Fatal("no digest in config")
	}
	start := i + len(`-12": "`)
	return s[:start+64] + s[start+66:]
}

func sigReadText(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyErrors(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	os.Mkdir(filepath.Join(f.dir, "dupbundle"), 0o755)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"verify"}, 2, "verify: want exactly one of --bundle DIR or --annotations FILE"},
		{[]string{"verify", "--bundle", f.dir, "--annotations", f.image}, 2, "want exactly one of"},
		{[]string{"verify", "--bundle", filepath.Join(f.dir, "nope"), "--policy", f.policy}, 1, "verify: bundle not found: " + f.dir + "/nope does not exist"},
		// Read as create reads it: runc would merge the two annotations objects.
		{[]string{"verify", "--bundle", filepath.Dir(sigWriteFile(t, filepath.Join(f.dir, "dupbundle", "config.json"), `{"annotations": {}, "annotations": {}}`)), "--policy", f.policy}, 1, "verify: invalid bundle config: " + f.dir + `/dupbundle/config.json: duplicate key "annotations" at top level`},
		{[]string{"verify", "--annotations", sigWriteFile(t, filepath.Join(f.dir, "bad.txt"), "a=b\nnot an annotation\n"), "--policy", f.policy}, 1, "bad.txt:2: not KEY=VALUE"},
		{[]string{"verify", "--annotations", sigWriteFile(t, filepath.Join(f.dir, "dup.txt"), "a=b\na=c\n"), "--policy", f.policy}, 1, "dup.txt:2: annotation a given twice"},
		{[]string{"verify", "--annotations", sigWriteFile(t, filepath.Join(f.dir, "bad.json"), `{"a": 1}`), "--policy", f.policy}, 1, "bad.json: not a JSON object of strings"},
		{[]string{"verify", "--annotations", sigWriteFile(t, filepath.Join(f.dir, "ok.txt"), ""), "--policy", filepath.Join(f.dir, "nope.toml")}, 1, "verify: no trust policy: " + f.dir + "/nope.toml does not exist; every container is refused until it does (see policy.toml.example, check it with `cfs-runtime policy check`)"},
	} {
		_, code, err := runAttestCLI(t, tc.args...)
		if code != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: exit %d, %v; want %d and %q", tc.args, code, err, tc.code, tc.msg)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	out, code, err := runAttestCLI(t, "policy", "check", "--policy", f.policy)
	if code != 0 {
		t.Fatalf("policy check: %v\n%s", err, out)
	}
	for _, frag := range []string{
		"# effective trust policy from " + f.policy + "\n",
		`enforcement = "require" # kernel fs-verity and overlayfs verity=require`,
		`unsigned = "reject"`,
		"[[signer]]\nname = \"release\"\n# type: certificates (PKCS#7 .sig)\ncertificates = \"" + f.cert + "\"\n#   \"CN=release\" (serial ",
		"[[allow_unsigned]]\nname = \"sandbox\"\n",
		`"io.kubernetes.cri.container-type" = "sandbox"`,
	} {
		if !strings.Contains(out, frag) {
			t.Fatalf("policy check output lacks %q:\n%s", frag, out)
		}
	}
	if err := os.Chmod(f.policy, 0o666); err != nil {
		t.Fatal(err)
	}
	_, code, err = runAttestCLI(t, "policy", "check", "--policy", f.policy)
	if code != 1 || !strings.Contains(err.Error(), "policy check: policy "+f.policy+": insecure trust policy: "+f.policy+" is writable by its group and others") {
		t.Fatalf("writable policy: %d %v", code, err)
	}
	os.Chmod(f.policy, 0o644)
	sigWriteFile(t, f.policy, "enforcement = \"require\"\n")
	_, code, err = runAttestCLI(t, "policy", "check", "--policy", f.policy)
	if code != 1 || !strings.Contains(err.Error(), "no [[signer]]") {
		t.Fatalf("no signer: %d %v", code, err)
	}
	for args, msg := range map[string]string{"policy": "policy: no command given", "policy lint": `policy: unknown command "lint"`, "policy check x": "policy check: takes no arguments"} {
		_, code, err = runAttestCLI(t, strings.Fields(args)...)
		if code != 2 || err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %d %v", args, code, err)
		}
	}
}

// policy check has the cfs-runtime-sigstore helper, installed next to
// cfs-runtime, parse sigstore trusted roots in full; without the helper it
// says so in one line. Real binaries, as `make install` lays them out.
func TestPolicyCheckSigstoreHelper(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	bin := filepath.Join(f.dir, "bin")
	for pkg, name := range map[string]string{".": "cfs-runtime", "./cmd/cfs-runtime-tools": "cfs-runtime-tools", "./cmd/cfs-runtime-sigstore": "cfs-runtime-sigstore"} {
		if out, err := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	lone := filepath.Join(f.dir, "lone")
	os.Mkdir(lone, 0o755)
	sigShell(t, "cp", filepath.Join(bin, "cfs-runtime"), filepath.Join(bin, "cfs-runtime-tools"), lone)

	const mt = `"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"`
	root := sigWriteFile(t, filepath.Join(f.dir, "trusted_root.json"), `{`+mt+`}`)
	policy := func(root string) string {
		return sigWriteFile(t, f.policy, fmt.Sprintf("[[signer]]\nname = \"keyless\"\ntrusted_root = %q\noidc_issuer = \"https://issuer.example.com\"\nsubject = \"builder@example.com\"\n", root))
	}
	check := func(dir string) (string, error) {
		// --no-host: this test is about the file, not the test host.
		cmd := exec.Command(filepath.Join(dir, "cfs-runtime"), "policy", "check", "--no-host", "--policy", f.policy)
		cmd.Env = append(os.Environ(), "CFS_RUNTIME_SIGSTORE=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	policy(root)
	out, err := check(bin)
	if err != nil || !strings.Contains(out, "#   0 certificate authorities, 0 transparency logs, 0 CT logs, 0 timestamp authorities\n") {
		t.Fatalf("policy check: %v\n%s", err, out)
	}
	out, err = check(lone)
	if want := "cfs-runtime: policy check: invalid trust policy: sigstore helper " + filepath.Join(lone, "cfs-runtime-sigstore") + ": not found: install cfs-runtime-sigstore next to cfs-runtime, or name it with sigstore_helper in the policy or $CFS_RUNTIME_SIGSTORE\n"; err == nil || out != want {
		t.Fatalf("without helper: %v\n%q\nwant %q", err, out, want)
	}
	// An unknown field: JSON enough for cfs-runtime's light check, not for
	// the protobuf parse of the helper.
	bad := sigWriteFile(t, filepath.Join(f.dir, "bad_root.json"), `{`+mt+`, "tlogz": []}`)
	policy(bad)
	out, err = check(bin)
	if want := `cfs-runtime: policy check: invalid trust policy: ` + f.policy + `: signer "keyless": trusted_root ` + bad + `: not a sigstore trusted root: failed to proto-json unmarshal trusted root: proto:`; err == nil || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Fatalf("bad root: %v\n%q\nwant prefix %q", err, out, want)
	}
}
