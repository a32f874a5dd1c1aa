package attest

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

const (
	hex64  = "3f2a9c0e1b7d4a5f6e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f"
	hex128 = hex64 + hex64
	k256   = "composefs.merged.erofs.v1.fsverity-sha256-12"
)

func TestParseAnnotations(t *testing.T) {
	a, err := ParseAnnotations(map[string]string{
		k256: hex64, k256 + ".sig": "AAAA", k256 + ".cosign": "BBBB", k256 + ".sigstore-bundle": "{}",
		"org.opencontainers.image.title": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != k256 || a.Digest.Hex() != hex64 || a.Digest.Algorithm != verity.SHA256 || a.Digest.BlockSize != 4096 {
		t.Fatalf("parsed %+v", a)
	}
	if a.Signatures[PKCS7Signature] != "AAAA" || a.Signatures[CosignSignature] != "BBBB" || a.Signatures[SigstoreBundle] != "{}" {
		t.Fatalf("signatures %+v", a.Signatures)
	}
	for key, want := range map[string]struct {
		alg verity.Algorithm
		bs  int
		v   string
	}{
		"composefs.merged.erofs.v1.fsverity-sha512-12": {verity.SHA512, 4096, hex128},
		"composefs.merged.erofs.v1.fsverity-sha256-16": {verity.SHA256, 65536, hex64},
		"composefs.merged.erofs.v1.fsverity-sha512-16": {verity.SHA512, 65536, hex128},
	} {
		a, err := ParseAnnotations(map[string]string{key: want.v})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if a.Digest.Algorithm != want.alg || a.Digest.BlockSize != want.bs || a.Digest.AnnotationKey() != key {
			t.Fatalf("%s: parsed %+v", key, a.Digest)
		}
	}
	a, err = ParseAnnotations(map[string]string{"io.kubernetes.cri.container-type": "sandbox"})
	if err != nil || a.Digest != nil {
		t.Fatalf("no digest: %+v %v", a, err)
	}
}

// Each malformed or ambiguous annotation set has its own message.
func TestParseAnnotationsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ann      map[string]string
		sentinel error
		msg      string
	}{
		{"digest not hex", map[string]string{k256: strings.Repeat("zz", 32)}, ErrMalformed,
			`malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12: digest "zzzz`},
		{"uppercase hex", map[string]string{k256: strings.ToUpper(hex64)}, ErrMalformed,
			`is not lowercase hex (byte 1 is 'F')`},
		{"digest too short", map[string]string{k256: hex64[:62]}, ErrMalformed,
			"has 62 hex digits, fsverity-sha256-12 needs 64"},
		{"sha256 length under sha512 key", map[string]string{"composefs.merged.erofs.v1.fsverity-sha512-12": hex64}, ErrMalformed,
			"has 64 hex digits, fsverity-sha512-12 needs 128"},
		{"empty digest", map[string]string{k256: ""}, ErrMalformed, "has 0 hex digits"},
		{"sha256: prefix in the value", map[string]string{k256: "sha256:" + hex64}, ErrMalformed,
			`has the prefix "sha256:": the value is the bare lowercase hex digest (` + hex64 + `), as ` + "`cfs-runtime sign --format annotations`" + ` prints it`},
		{"whitespace", map[string]string{k256: hex64 + "\n"}, ErrMalformed, `is not lowercase hex (byte 64 is '\n')`},
		{"unknown hash", map[string]string{"composefs.merged.erofs.v1.fsverity-sha1-12": hex64}, ErrMalformed,
			`malformed annotation "composefs.merged.erofs.v1.fsverity-sha1-12": unknown fs-verity algorithm "sha1-12": hash "sha1" is not sha256 or sha512`},
		{"unknown block size", map[string]string{"composefs.merged.erofs.v1.fsverity-sha256-13": hex64}, ErrMalformed,
			`unknown fs-verity algorithm "sha256-13": block size 2^13 is not 2^12 or 2^16`},
		{"unknown suffix", map[string]string{k256: hex64, k256 + ".gpg": "x"}, ErrMalformed,
			`unknown signature suffix ".gpg" (want .sig, .cosign or .sigstore-bundle)`},
		{"no algorithm", map[string]string{"composefs.merged.erofs.v1.fsverity-": hex64}, ErrMalformed,
			`unknown fs-verity algorithm "" (want fsverity-{sha256|sha512}-{12|16})`},
		{"uppercase key", map[string]string{"Composefs.merged.erofs.v1.fsverity-sha256-12": hex64}, ErrMalformed,
			"composefs annotation keys are lowercase"},
		{"conflicting duplicates", map[string]string{k256: hex64, "composefs.merged.erofs.v1.fsverity-sha256-16": strings.Repeat("ab", 32)}, ErrConflict,
			"conflicting composefs digest annotations: composefs.merged.erofs.v1.fsverity-sha256-12=" + hex64 + ", composefs.merged.erofs.v1.fsverity-sha256-16=abab"},
		{"signature without digest", map[string]string{k256 + ".sig": "AAAA"}, ErrNoDigest,
			"no composefs digest: annotation composefs.merged.erofs.v1.fsverity-sha256-12.sig is a signature without its digest annotation composefs.merged.erofs.v1.fsverity-sha256-12"},
		{"signature for another variant", map[string]string{k256: hex64, "composefs.merged.erofs.v1.fsverity-sha512-12.cosign": "AAAA"}, ErrNoDigest,
			"fsverity-sha512-12.cosign is a signature without its digest annotation"},
		{"huge value", map[string]string{k256: hex64, k256 + ".sig": strings.Repeat("A", maxAnnotationValue+4)}, ErrMalformed,
			"value of 262148 bytes is larger than 262144"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAnnotations(tc.ann)
			wantErr(t, err, tc.sentinel, tc.msg)
		})
	}
}

func TestParseDigest(t *testing.T) {
	for in, want := range map[string]string{
		hex64:                             "sha256:" + hex64,
		"sha256:" + hex64:                 "sha256:" + hex64,
		hex128:                            "sha512:" + hex128,
		"sha512:" + hex128:                "sha512:" + hex128,
		"fsverity-sha256-16:" + hex64:     "fsverity-sha256-16:" + hex64,
		"fsverity-sha512-12:" + hex128:    "sha512:" + hex128,
		"fsverity-sha512-16:" + hex128:    "fsverity-sha512-16:" + hex128,
		"fsverity-sha256-12:" + hex64[:4]: "",
		"md5:" + hex64:                    "",
		"sha256:" + hex128:                "",
		"":                                "",
	} {
		d, err := ParseDigest(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseDigest(%q) = %s, want error", in, d)
			}
			continue
		}
		if err != nil || d.String() != want {
			t.Errorf("ParseDigest(%q) = %s, %v; want %s", in, d, err, want)
		}
	}
}

// The formatted digest is struct fsverity_formatted_digest.
func TestDigestMessage(t *testing.T) {
	d, _ := ParseDigest(hex64)
	m := d.Message()
	if string(m[:8]) != "FSVerity" || m[8] != 1 || m[9] != 0 || m[10] != 32 || m[11] != 0 || len(m) != 44 {
		t.Fatalf("message % x", m)
	}
}

// The parser never panics, and whatever it accepts is self-consistent.
func FuzzParseAnnotations(f *testing.F) {
	f.Add(k256, hex64, ".sig", "AAAA")
	f.Add("composefs.merged.erofs.v1.fsverity-sha512-16", hex128, ".sigstore-bundle", "{}")
	f.Add("composefs.merged.erofs.v1.fsverity-sha256-1", "", ".cosign", "")
	f.Add("Composefs.merged.erofs.v1.fsverity-sha256-12", hex64, ".sig", "x")
	f.Add(k256, hex64, ".cosgin", "x")
	f.Add("compsefs.merged.erofs.v1.fsverity-sha256-12", hex64, ".sig", "x")
	f.Add("composefs.merged.erofs.v1.fsverity_sha256-12", hex64, ".cosign", "x")
	f.Fuzz(func(t *testing.T, key, value, suffix, sig string) {
		ann := map[string]string{key: value, key + suffix: sig, "other": value}
		a, err := ParseAnnotations(ann)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && utf8.ValidString(key+value+suffix) && !strings.ContainsAny(key+value+suffix, "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		// Fail closed: nothing that looks like a mistyped composefs key
		// is accepted (and then ignored).
		for k := range ann {
			if lk := strings.ToLower(k); !strings.HasPrefix(lk, DigestAnnotationPrefix) && lookAlike(lk) {
				t.Fatalf("look-alike key %q accepted", k)
			}
		}
		if a.Digest == nil {
			if len(a.Signatures) != 0 {
				t.Fatalf("signatures without digest: %+v", a)
			}
			return
		}
		if ann[a.Key] != a.Digest.Hex() || a.Digest.AnnotationKey() != a.Key {
			t.Fatalf("digest %s does not round-trip annotation %s=%q", a.Digest, a.Key, ann[a.Key])
		}
		if len(a.Digest.Value) != a.Digest.Algorithm.Size() {
			t.Fatalf("digest length %d for %s", len(a.Digest.Value), a.Digest.Algorithm)
		}
	})
}
