package attest

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const (
	testIdentity = "builder@example.com"
	testIssuer   = "https://issuer.example.com"
)

// virtualSigstore is a test Fulcio CA, Rekor log, CT log and TSA, all with
// keys made by the test; its trusted root is written as trusted_root.json,
// exactly what an administrator would install.
type virtualSigstore struct {
	vs   *ca.VirtualSigstore
	root string
}

func newVirtualSigstore(t testing.TB, dir string) *virtualSigstore {
	t.Helper()
	sigstoreHelper(t)
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	// The virtual logs' IDs are hex strings in memory; a trusted_root.json
	// carries the raw key IDs, as the public-good one does.
	rawIDs := func(m map[string]*root.TransparencyLog) map[string]*root.TransparencyLog {
		out := map[string]*root.TransparencyLog{}
		for k, l := range m {
			c := *l
			if c.ID, err = hex.DecodeString(k); err != nil {
				t.Fatal(err)
			}
			out[k] = &c
		}
		return out
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), rawIDs(vs.CTLogs()), vs.TimestampingAuthorities(), rawIDs(vs.RekorLogs()))
	if err != nil {
		t.Fatal(err)
	}
	js, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &virtualSigstore{vs: vs, root: write(t, filepath.Join(dir, "trusted_root.json"), string(js))}
}

// bundle signs artifact keylessly (a short-lived certificate for identity
// from the test Fulcio) and returns a v0.3 sigstore bundle JSON with the
// Rekor entry, its inclusion proof and signed entry timestamp, and an
// RFC 3161 timestamp: what `cosign sign-blob --bundle --new-bundle-format`
// produces against the public-good instance.
func (v *virtualSigstore) bundle(t testing.TB, identity, issuer string, artifact []byte) string {
	t.Helper()
	ent, err := v.vs.Sign(identity, issuer, artifact)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	sc, _ := ent.SignatureContent()
	ms := sc.MessageSignatureContent()
	tss, _ := ent.Timestamps()
	entries, _ := ent.TlogEntries()

	tle := proto.Clone(entries[0].TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	tle.KindVersion = &protorekor.KindVersion{Kind: "hashedrekord", Version: "0.0.1"}
	set, err := v.vs.RekorSignPayload(tlog.RekorPayload{
		Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody), IntegratedTime: tle.IntegratedTime,
		LogIndex: tle.LogIndex, LogID: hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	ip, err := v.vs.GetInclusionProof(tle.CanonicalizedBody)
	if err != nil {
		t.Fatal(err)
	}
	rootHash, _ := hex.DecodeString(*ip.RootHash)
	tle.InclusionProof = &protorekor.InclusionProof{LogIndex: *ip.LogIndex, RootHash: rootHash, TreeSize: *ip.TreeSize, Checkpoint: &protorekor.Checkpoint{Envelope: *ip.Checkpoint}}

	var rfc3161 []*protocommon.RFC3161SignedTimestamp
	for _, ts := range tss {
		rfc3161 = append(rfc3161, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: ts})
	}
	pb := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
			TlogEntries:               []*protorekor.TransparencyLogEntry{tle},
			TimestampVerificationData: &protobundle.TimestampVerificationData{Rfc3161Timestamps: rfc3161},
		},
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: ms.Digest()},
			Signature:     ms.Signature(),
		}},
	}
	js, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

func sigstorePolicy(name, trustedRoot, identity string) string {
	return fmt.Sprintf("[[signer]]\nname = %q\ntrusted_root = %q\noidc_issuer = %q\n%s\nct_log_threshold = 0\n", name, trustedRoot, testIssuer, identity)
}

func bundleAnnotations(d Digest, b string) map[string]string {
	return map[string]string{d.AnnotationKey(): d.Hex(), d.AnnotationKey() + BundleSuffix: b}
}

// Keyless-style bundles verify offline against a trusted root the test
// made; each refusal says why.
func TestSigstoreBundle(t *testing.T) {
	dir := t.TempDir()
	vs := newVirtualSigstore(t, dir)
	d, _ := ParseDigest(hex64)
	b := vs.bundle(t, testIdentity, testIssuer, d.Message())
	p := policyFrom(t, dir, sigstorePolicy("keyless", vs.root, fmt.Sprintf("subject = %q", testIdentity)))

	v := mustVerify(t, bundleAnnotations(d, b), p)
	if v.Kind != SigstoreBundle || v.Signer != "keyless" || v.Detail != `identity "builder@example.com" issued by "https://issuer.example.com"` {
		t.Fatalf("verdict %+v", v)
	}
	// A subject pattern.
	rp := policyFrom(t, dir, sigstorePolicy("keyless", vs.root, `subject_regexp = '^[a-z]+@example\.com$'`))
	mustVerify(t, bundleAnnotations(d, b), rp)

	prefix := "composefs digest sha256:" + hex64 + ": "
	t.Run("identity not allowed", func(t *testing.T) {
		wp := policyFrom(t, t.TempDir(), sigstorePolicy("keyless", vs.root, `subject = "release@example.com"`))
		_, err := Verify(bundleAnnotations(d, b), wp)
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: signer "keyless": sigstore certificate identity not allowed:`, `"release@example.com"`, `"builder@example.com"`)
	})
	t.Run("issuer not allowed", func(t *testing.T) {
		wp := policyFrom(t, t.TempDir(), fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = \"https://other.example.com\"\nsubject = %q\nct_log_threshold = 0\n", vs.root, testIdentity))
		_, err := Verify(bundleAnnotations(d, b), wp)
		wantErr(t, err, ErrUntrusted, "sigstore certificate identity not allowed", "https://other.example.com")
	})
	t.Run("signature over another digest", func(t *testing.T) {
		other, _ := ParseDigest(strings.Repeat("ab", 32))
		ob := vs.bundle(t, testIdentity, testIssuer, other.Message())
		_, err := Verify(bundleAnnotations(d, ob), p)
		wantErr(t, err, ErrBadSignature, prefix+`bad signature: sigstore bundle from a trusted identity (signer "keyless") does not sign this digest`)
	})
	t.Run("untrusted root", func(t *testing.T) {
		stranger := newVirtualSigstore(t, t.TempDir())
		sb := stranger.bundle(t, testIdentity, testIssuer, d.Message())
		_, err := Verify(bundleAnnotations(d, sb), p)
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: signer "keyless": sigstore bundle does not verify against the trusted root`)
	})
	t.Run("SCT required by default", func(t *testing.T) {
		sp := policyFrom(t, t.TempDir(), fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = %q\nsubject = %q\n", vs.root, testIssuer, testIdentity))
		if sp.Signers[0].CTLogThreshold != 1 || sp.Signers[0].TLogThreshold != 1 {
			t.Fatalf("thresholds %+v", sp.Signers[0])
		}
		_, err := Verify(bundleAnnotations(d, b), sp)
		wantErr(t, err, ErrUntrusted, "sigstore bundle does not verify against the trusted root", "certificate timestamp")
	})
	t.Run("tampered signature", func(t *testing.T) {
		var pb protobundle.Bundle
		if err := protojson.Unmarshal([]byte(b), &pb); err != nil {
			t.Fatal(err)
		}
		pb.GetMessageSignature().Signature[10] ^= 1
		js, _ := protojson.Marshal(&pb)
		_, err := Verify(bundleAnnotations(d, string(js)), p)
		if !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("tampered bundle: %v", err)
		}
	})
	t.Run("DSSE envelope", func(t *testing.T) {
		var pb protobundle.Bundle
		if err := protojson.Unmarshal([]byte(b), &pb); err != nil {
			t.Fatal(err)
		}
		pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{Payload: []byte("{}"), PayloadType: "application/vnd.in-toto+json", Signatures: []*protodsse.Signature{{Sig: []byte("x")}}}}
		js, _ := protojson.Marshal(&pb)
		_, err := Verify(bundleAnnotations(d, string(js)), p)
		wantErr(t, err, ErrMalformed, ".sigstore-bundle: sigstore bundle holds no message signature (DSSE envelopes are not accepted)")
	})
	t.Run("key instead of certificate", func(t *testing.T) {
		var pb protobundle.Bundle
		if err := protojson.Unmarshal([]byte(b), &pb); err != nil {
			t.Fatal(err)
		}
		pb.VerificationMaterial.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "abc"}}
		js, _ := protojson.Marshal(&pb)
		_, err := Verify(bundleAnnotations(d, string(js)), p)
		wantErr(t, err, ErrMalformed, ".sigstore-bundle: sigstore bundle is signed with a key, not a certificate (use the .cosign annotation for key pairs)")
	})
	t.Run("not JSON", func(t *testing.T) {
		_, err := Verify(bundleAnnotations(d, base64.StdEncoding.EncodeToString([]byte(b))), p)
		wantErr(t, err, ErrMalformed, prefix+"malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12.sigstore-bundle: not a sigstore bundle (JSON object expected)")
	})
	t.Run("truncated JSON", func(t *testing.T) {
		_, err := Verify(bundleAnnotations(d, b[:len(b)/2]), p)
		wantErr(t, err, ErrMalformed, ".sigstore-bundle: not a valid sigstore bundle")
	})
	t.Run("no sigstore signer", func(t *testing.T) {
		_, cert := keyPair(t, t.TempDir(), "x", "ec")
		cp := policyFrom(t, t.TempDir(), certPolicy("x", cert))
		_, err := Verify(bundleAnnotations(d, b), cp)
		wantErr(t, err, ErrUntrusted, ".sigstore-bundle: the policy has no signer for a sigstore bundle (a [[signer]] with trusted_root)")
	})
	t.Run("policy refusals", func(t *testing.T) {
		pdir := t.TempDir()
		path := filepath.Join(pdir, "policy.toml")
		for text, msg := range map[string]string{
			fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\nsubject = \"x\"\n", vs.root):                                           "signer \"k\" needs exactly one of oidc_issuer, oidc_issuer_regexp",
			fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = \"i\"\n", vs.root):                                       "signer \"k\" needs exactly one of subject, subject_regexp",
			fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = \"i\"\nsubject_regexp = \"(\"\n", vs.root):               "key signer[0].subject_regexp: error parsing regexp",
			fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = \"i\"\nsubject = \"s\"\ntlog_threshold = -1\n", vs.root): "key signer[0].tlog_threshold: -1 is not in 0..16",
			fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = %q\noidc_issuer = \"i\"\nsubject = \"s\"\n", b2f(t, pdir, b)):              "not a sigstore trusted root",
		} {
			write(t, path, text)
			_, err := LoadPolicy(path, WithFileCheck(RequireOwner(os.Getuid())))
			wantErr(t, err, ErrPolicy, msg)
		}
	})
}

func b2f(t testing.TB, dir, s string) string { return write(t, filepath.Join(dir, "bundle.json"), s) }
