package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policy check says when this host and store cannot enforce the level,
// and what to change; exit 1.
func TestPolicyCheckHost(t *testing.T) {
	f := newDoctorFixture(t, "")
	withHost(t, noVerityHost)
	fix := `boot a kernel built with CONFIG_FS_VERITY, or set enforcement = "userspace" in ` + f.policy + ` (weaker: each file is hashed once before the container starts; a change to the store after that is not detected)`
	out, code, err := runAttestCLI(t, "policy", "check")
	want := "policy check: cannot enforce fs-verity (enforcement require) in store " + f.store + ": fs-verity in " + f.store + "/objects: kernel built without fs-verity: " + fix
	if code != 1 || err == nil || err.Error() != want || !strings.HasPrefix(out, "# effective trust policy from "+f.policy+"\n") {
		t.Fatalf("policy check: %d\n got %v\nwant %s\n%s", code, err, want, out)
	}

	out, code, err = runAttestCLI(t, "policy", "check", "--json")
	var doc policyJSON
	if jerr := json.Unmarshal([]byte(out), &doc); jerr != nil || code != 1 || err.Error() != "" {
		t.Fatalf("--json: %d %v %v\n%s", code, err, jerr, out)
	}
	if doc.Policy != f.policy || doc.Enforcement != "require" || doc.Unsigned != "reject" || len(doc.Signers) != 1 || doc.Signers[0] != (policySigner{"release", "certificates"}) ||
		len(doc.AllowUnsigned) != 1 || doc.AllowUnsigned[0] != "sandbox" ||
		doc.Host == nil || *doc.Host != (policyHost{Store: f.store, Filesystem: "ext4", Problem: "fs-verity in " + f.store + "/objects: kernel built without fs-verity", Fix: fix}) {
		t.Errorf("--json: %+v %+v", doc, doc.Host)
	}

	// --no-host: the file alone.
	if out, code, err = runAttestCLI(t, "policy", "check", "--no-host"); code != 0 || strings.Contains(out, "this host") {
		t.Errorf("--no-host: %d %v\n%s", code, err, out)
	}
	// At userspace this host is fine; --store names another store.
	sigWriteFile(t, f.policy, "enforcement = \"userspace\"\n"+sigReadText(t, f.policy))
	other := filepath.Join(f.dir, "other")
	os.Mkdir(other, 0o755)
	out, code, err = runAttestCLI(t, "policy", "check", "--store", other)
	if code != 0 || !strings.HasPrefix(out, "# effective trust policy from "+f.policy+"\n") || strings.Contains(out, "host") {
		t.Errorf("userspace: %d %v\n%s", code, err, out)
	}
	out, code, _ = runAttestCLI(t, "policy", "check", "--json")
	doc = policyJSON{}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || !doc.Host.CanEnforce || doc.Host.Problem != "" {
		t.Errorf("userspace --json: %d %+v\n%s", code, doc.Host, out)
	}
}

// verify --json: the verdict as a document; exit status as without.
func TestVerifyJSON(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	ann, _, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", f.image)
	if err != nil {
		t.Fatal(err)
	}
	file := sigWriteFile(t, filepath.Join(f.dir, "ann.json"), ann)
	out, code, err := runAttestCLI(t, "verify", "--json", "--annotations", file, "--policy", f.policy)
	var v verifyJSON
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || code != 0 {
		t.Fatalf("verify --json: %d %v %v\n%s", code, err, jerr, out)
	}
	digest := strings.Fields(sigShell(t, "fsverity", "digest", "--compact", f.image))[0]
	if v.Verdict != "trusted" || v.Digest != "sha256:"+digest || v.Signature != "PKCS#7 signature" || v.Annotation != "composefs.merged.erofs.v1.fsverity-sha256-12.sig" ||
		v.Signer != "release" || v.Enforcement != "require" || v.Annotations != file || v.Policy != f.policy || len(v.ComposefsAnnotations) != 2 {
		t.Errorf("trusted: %+v", v)
	}
	// Refused: exit 1, the reason in the document, nothing on stderr.
	file = sigWriteFile(t, filepath.Join(f.dir, "typo.txt"), "compsefs.merged.erofs.v1.fsverity-sha256-12="+digest+"\n")
	out, code, err = runAttestCLI(t, "verify", "--json", "--annotations", file, "--policy", f.policy)
	v = verifyJSON{}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || code != 1 || err.Error() != "" || v.Verdict != "refused" ||
		!strings.HasPrefix(v.Reason, `malformed annotation "compsefs.merged.erofs.v1.fsverity-sha256-12": looks like a mistyped composefs annotation: part 1 is "compsefs", not "composefs"`) ||
		len(v.ComposefsAnnotations) != 0 {
		t.Errorf("refused: %d %v %+v", code, err, v)
	}
	// Unsigned, allowed by a rule.
	file = sigWriteFile(t, filepath.Join(f.dir, "sandbox.txt"), "io.kubernetes.cri.container-type=sandbox\n")
	out, code, _ = runAttestCLI(t, "verify", "--json", "--annotations", file, "--policy", f.policy)
	v = verifyJSON{}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || code != 0 || v.Verdict != "unsigned" || v.Rule != "sandbox" || v.Digest != "" {
		t.Errorf("unsigned: %d %+v", code, v)
	}
}
