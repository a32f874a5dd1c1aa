package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// helperDir holds the cfs-runtime-sigstore helper the tests build; TestMain
// removes it.
var (
	helperOnce sync.Once
	helperDir  string
	helperBin  string
	helperErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// sigstoreHelper builds cmd/cfs-runtime-sigstore once and points
// $CFS_RUNTIME_SIGSTORE at it: every test that verifies a sigstore bundle
// runs the real helper, as create does.
func sigstoreHelper(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		if helperDir, helperErr = os.MkdirTemp("", "cfs-sigstore-helper-"); helperErr != nil {
			return
		}
		helperBin = filepath.Join(helperDir, HelperName)
		cmd := exec.Command("go", "build", "-o", helperBin, "github.com/cfs-runtime/cfs-runtime/cmd/cfs-runtime-sigstore")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = fmt.Errorf("go build cfs-runtime-sigstore: %v\n%s", err, out)
			return
		}
		helperErr = os.Setenv(HelperEnv, helperBin)
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperBin
}

// withHelper runs fn with $CFS_RUNTIME_SIGSTORE set to path.
func withHelper(t *testing.T, path string, fn func()) {
	t.Helper()
	old := os.Getenv(HelperEnv)
	os.Setenv(HelperEnv, path)
	defer os.Setenv(HelperEnv, old)
	fn()
}

// The helper runs only when a bundle must be verified: a container whose
// cosign signature verifies, or a policy without sigstore signers, never
// needs it. When it is needed and missing, the error says so in one line.
func TestSigstoreHelperOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	vs := newVirtualSigstore(t, dir)
	d, _ := ParseDigest(hex64)
	b := vs.bundle(t, testIdentity, testIssuer, d.Message())
	key := filepath.Join(dir, "k.key")
	genKey(t, key, "ec")
	pub := pubKey(t, key)
	k, err := LoadPrivateKey([]byte(readFile(t, key)), nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"key\"\npublic_key = %q\n", pub)+
		sigstorePolicy("keyless", vs.root, fmt.Sprintf("subject = %q", testIdentity)))
	both := bundleAnnotations(d, b)
	both[d.AnnotationKey()+CosignSuffix] = b64(sig)
	missing := filepath.Join(dir, "no-such-helper")

	withHelper(t, missing, func() {
		v := mustVerify(t, both, p)
		if v.Kind != CosignSignature {
			t.Fatalf("verdict %+v", v)
		}
		// A malformed bundle is still refused up front, without the helper.
		bad := bundleAnnotations(d, b[:len(b)/2])
		bad[d.AnnotationKey()+CosignSuffix] = b64(sig)
		_, err := Verify(bad, p)
		wantErr(t, err, ErrMalformed, ".sigstore-bundle: not a valid sigstore bundle")

		_, err = Verify(bundleAnnotations(d, b), p)
		wantErr(t, err, ErrPolicy, "composefs digest sha256:"+hex64+": invalid trust policy: sigstore helper "+missing+": not found: install cfs-runtime-sigstore next to cfs-runtime, or name it with sigstore_helper in the policy or $CFS_RUNTIME_SIGSTORE")
	})

	// The policy's sigstore_helper names it when the environment does not.
	withHelper(t, "", func() {
		hp := policyFrom(t, t.TempDir(), fmt.Sprintf("sigstore_helper = %q\n", sigstoreHelper(t))+sigstorePolicy("keyless", vs.root, fmt.Sprintf("subject = %q", testIdentity)))
		if v := mustVerify(t, bundleAnnotations(d, b), hp); v.Signer != "keyless" {
			t.Fatalf("verdict %+v", v)
		}
		var out strings.Builder
		hp.Describe(&out)
		if !strings.Contains(out.String(), fmt.Sprintf("sigstore_helper = %q", sigstoreHelper(t))) {
			t.Fatalf("Describe lacks sigstore_helper:\n%s", out.String())
		}
	})

	// A helper anyone may replace is not run.
	insecure := filepath.Join(t.TempDir(), HelperName)
	if err := os.WriteFile(insecure, []byte("#!/bin/sh\necho '{\"results\":[{\"name\":\"keyless\",\"ok\":true}]}'\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(insecure, 0o777)
	withHelper(t, insecure, func() {
		_, err := Verify(bundleAnnotations(d, b), p)
		wantErr(t, err, ErrInsecurePolicy, "sigstore helper: insecure trust policy: "+insecure+" is writable by its group and others")
	})

	// A helper that cannot be executed (EACCES, also for root) is named as
	// such, not as "permission denied", which podman shows as its own
	// "OCI permission denied".
	noExec := filepath.Join(t.TempDir(), HelperName)
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withHelper(t, noExec, func() {
		_, err := Verify(bundleAnnotations(d, b), p)
		wantErr(t, err, ErrPolicy, fmt.Sprintf("composefs digest sha256:%s: invalid trust policy: sigstore helper %s is not executable (EACCES; mode -rw-r--r--, owner uid %d; it needs execute permission", hex64, noExec, os.Getuid()))
		if p := fserr.Misreads(err.Error()); p != "" || !errors.Is(err, syscall.EACCES) {
			t.Errorf("%q: contains %q, or is not EACCES", err, p)
		}
	})
}

// policy check (WithSigstoreCheck) has the helper parse trusted roots in
// full; LoadPolicy alone checks them lightly and never runs it.
func TestSigstoreFullRootCheck(t *testing.T) {
	dir := t.TempDir()
	vs := newVirtualSigstore(t, dir)
	var tr map[string]any
	if err := json.Unmarshal([]byte(readFile(t, vs.root)), &tr); err != nil {
		t.Fatal(err)
	}
	// A validity time that is not a timestamp: only the protobuf parse
	// notices.
	tlog := tr["tlogs"].([]any)[0].(map[string]any)
	tlog["publicKey"].(map[string]any)["validFor"] = map[string]any{"start": "yesterday"}
	js, _ := json.Marshal(tr)
	bad := write(t, filepath.Join(dir, "bad_root.json"), string(js))
	path := write(t, filepath.Join(dir, "policy.toml"), sigstorePolicy("keyless", bad, fmt.Sprintf("subject = %q", testIdentity)))

	withHelper(t, filepath.Join(dir, "no-such-helper"), func() {
		loadPolicy(t, path)
		_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())), WithSigstoreCheck())
		wantErr(t, err, ErrPolicy, "sigstore helper "+filepath.Join(dir, "no-such-helper")+": not found")
	})
	sigstoreHelper(t)
	_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())), WithSigstoreCheck())
	wantErr(t, err, ErrPolicy, `invalid trust policy: `+path+`: signer "keyless": trusted_root `+bad+`: not a sigstore trusted root:`)

	good := write(t, filepath.Join(dir, "policy.toml"), sigstorePolicy("keyless", vs.root, fmt.Sprintf("subject = %q", testIdentity)))
	p, err := LoadPolicy(good, WithFileCheck(RequireOwner(os.Getuid())), WithSigstoreCheck())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	p.Describe(&out)
	if !strings.Contains(out.String(), "#   1 certificate authorities, 1 transparency logs, 1 CT logs, 1 timestamp authorities\n") {
		t.Fatalf("Describe:\n%s", out.String())
	}
}

// The light trusted root check accepts what sigstore-go accepts (the
// public-good root and sigstore-go's own test roots, copied from
// sigstore-go v1.3.0's pkg/testing/data) and counts as it counts.
func TestCheckTrustedRootMatchesSigstoreGo(t *testing.T) {
	files, err := filepath.Glob("testdata/trusted-roots/*.json")
	if err != nil || len(files) != 3 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	for _, f := range files {
		data := []byte(readFile(t, f))
		full, err := root.NewTrustedRootFromJSON(data)
		if err != nil {
			t.Fatalf("%s: sigstore-go: %v", f, err)
		}
		sum, err := checkTrustedRoot(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := trustedRootSummary{len(full.FulcioCertificateAuthorities()), len(full.RekorLogs()), len(full.CTLogs()), len(full.TimestampingAuthorities())}
		if sum != want {
			t.Fatalf("%s: counted %+v, sigstore-go %+v", f, sum, want)
		}
	}
	// And refuses what is plainly not one.
	for text, msg := range map[string]string{
		`[]`: "cannot unmarshal array",
		`{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.2"}`:                                                          "unsupported TrustedRoot media type: application/vnd.dev.sigstore.trustedroot+json;version=0.2",
		`{"mediaType": "` + TrustedRootMediaType + `", "tlogs": [{"logId": {"keyId": "AA=="}}]}`:                                              "tlogs[0]: no publicKey",
		`{"mediaType": "` + TrustedRootMediaType + `", "ctlogs": [{"publicKey": {"rawBytes": "AAAA"}}]}`:                                      "ctlogs[0].publicKey: ",
		`{"mediaType": "` + TrustedRootMediaType + `", "certificateAuthorities": [{"certChain": {"certificates": []}}]}`:                      "certificateAuthorities[0].certChain: no certificates",
		`{"media_type": "` + TrustedRootMediaType + `", "timestamp_authorities": [{"cert_chain": {"certificates": [{"raw_bytes": "MAA"}]}}]}`: "timestampAuthorities[0].certChain.certificates[0]: ",
	} {
		if _, err := checkTrustedRoot([]byte(text)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", text, err, msg)
		}
	}
}
