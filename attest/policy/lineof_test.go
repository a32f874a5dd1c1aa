package policy

import "testing"

// The "rule without name" line: the key is found inside the table.
func TestLineOfInsideTable(t *testing.T) {
	if n := lineOf([]byte("a = 1\n[[signer]]\nname = \"x\"\n[[signer]]\n# c\nname = \"y\"\n"), "signer", 1, "name"); n != 6 {
		t.Fatalf("lineOf = %d, want 6", n)
	}
}
