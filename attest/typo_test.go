package attest

import (
	"errors"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
)

// A mistyped composefs annotation is refused, saying which part is wrong,
// never ignored (which would make a signed container look unsigned).
func TestAnnotationTypos(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{k256 + ".cosgin", `malformed annotation "` + k256 + `.cosgin": unknown signature suffix ".cosgin" (want .sig, .cosign or .sigstore-bundle)`},
		{"compsefs.merged.erofs.v1.fsverity-sha256-12", `malformed annotation "compsefs.merged.erofs.v1.fsverity-sha256-12": looks like a mistyped composefs annotation: part 1 is "compsefs", not "composefs"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature`},
		{"composefs.merged.erofs.v1.fsverity_sha256-12.sig", `malformed annotation "composefs.merged.erofs.v1.fsverity_sha256-12.sig": looks like a mistyped composefs annotation: "fsverity_sha256-12.sig" does not start with "fsverity-"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature`},
		{"composefs.merged.erofs.fsverity-sha256-12", `malformed annotation "composefs.merged.erofs.fsverity-sha256-12": looks like a mistyped composefs annotation: part 4 is "fsverity-sha256-12", not "v1"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature`},
		{"io.composefs.merged.erofs.v1.fsverity-sha256-12", `malformed annotation "io.composefs.merged.erofs.v1.fsverity-sha256-12": looks like a mistyped composefs annotation: part 1 is "io", not "composefs"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature`},
		{"composefs.merged.erofs.v1.fsverity-sha256-12.sgi", `malformed annotation "composefs.merged.erofs.v1.fsverity-sha256-12.sgi": unknown signature suffix ".sgi" (want .sig, .cosign or .sigstore-bundle)`},
	} {
		_, err := ParseAnnotations(map[string]string{tc.key: hex64, "org.opencontainers.image.title": "x"})
		if !errors.Is(err, ErrMalformed) || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.key, err, tc.want)
		}
	}
	// Keys of other programs are not look-alikes.
	for _, k := range []string{"io.kubernetes.cri.sandbox-id", "org.opencontainers.image.stopSignal", "io.container.manager", "run.oci.keep_original_groups", "composefs", "io.podman.annotations.label"} {
		if lookAlike(k) {
			t.Errorf("%s taken for a composefs look-alike", k)
		}
	}
}

// Every key within three edits of the prefix is a look-alike, and every
// look-alike is one the runtime front leaves to Verify
// (policy.MentionsComposefs): all single, double and a sample of triple
// substitutions of the prefix's letters.
func TestLookAlikeMentionsComposefs(t *testing.T) {
	p := []byte(DigestAnnotationPrefix + "sha256-12")
	n := 0
	for i := 0; i < len(p); i++ {
		for j := i; j < len(p); j += 3 {
			for l := j; l < len(p); l += 7 {
				k := append([]byte(nil), p...)
				k[i], k[j], k[l] = 'X', 'Y', 'Z'
				lk := strings.ToLower(string(k))
				if strings.HasPrefix(lk, DigestAnnotationPrefix) {
					continue
				}
				n++
				if !lookAlike(lk) {
					t.Errorf("%s: three substitutions, not a look-alike", k)
				}
				if !policy.MentionsComposefs(map[string]string{string(k): ""}) {
					t.Errorf("%s: a look-alike the front would start unsigned", k)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d keys tried", n)
	}
}

// With ignore_digest, a look-alike key is ignored as the real keys are.
func TestAnnotationTypoUnsignedRule(t *testing.T) {
	if !hasComposefsKey(map[string]string{"compsefs.merged.erofs.v1.fsverity-sha256-12": "x"}) {
		t.Fatal("look-alike key not seen as a composefs key")
	}
}
