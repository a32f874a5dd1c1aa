package policy

import "strings"

// composefsWords are the words of the composefs annotation keys
// (composefs.merged.erofs.v1.fsverity-sha256-12 and its signature suffixes,
// .cosign, .sigstore-bundle). A key within a few typing mistakes of one of
// them still holds one of these words intact.
var composefsWords = []string{"compos", "merged", "erofs", "verity", "cosign", "sigstore"}

// MentionsComposefs reports whether any annotation key might be meant as a
// composefs annotation, spelled right or not: package attest reads those
// (and refuses the mistyped ones). The runtime front decides only
// containers for which it is false; FuzzMentionsComposefs (package attest)
// holds it to attest.Verify.
func MentionsComposefs(annotations map[string]string) bool {
	for k := range annotations {
		k = strings.ToLower(k)
		for _, w := range composefsWords {
			if strings.Contains(k, w) {
				return true
			}
		}
	}
	return false
}
