package attest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
)

// The runtime front loads the policy with a zero policy.Reader (no go-toml,
// no regexp). checkFrontPolicy: it then either declines (ErrNotPlain),
// fails as the full reader fails, or reads a policy whose unsigned
// decision is the full reader's for these annotations.
func checkFrontPolicy(t *testing.T, path string, ann map[string]string) {
	t.Helper()
	anyone := func(string) error { return nil }
	front, ferr := policy.Load(path, policy.Reader{}, anyone)
	full, err := policy.Load(path, fullReader, anyone)
	switch {
	case errors.Is(ferr, policy.ErrNotPlain):
		return
	case ferr != nil || err != nil:
		if fmt.Sprint(ferr) != fmt.Sprint(err) {
			data, _ := os.ReadFile(path)
			t.Fatalf("%q:\nfront: %v\nfull:  %v", data, ferr, err)
		}
		return
	}
	r1, ok1 := front.Unsigned(ann)
	r2, ok2 := full.Unsigned(ann)
	if r1 != r2 || ok1 != ok2 {
		data, _ := os.ReadFile(path)
		t.Fatalf("%q with %q: front %q %v, full %q %v", data, ann, r1, ok1, r2, ok2)
	}
}

func frontPolicyText(pattern, subject string, unsigned bool) string {
	s := "[[signer]]\nname = \"k\"\npublic_key = \"/k.pub\"\n"
	if subject != "" {
		s = fmt.Sprintf("[[signer]]\nname = \"k\"\ntrusted_root = \"/r.json\"\noidc_issuer = \"i\"\nsubject_regexp = %q\n", subject)
	}
	if unsigned {
		s = "unsigned = \"allow\"\n" + s
	}
	return s + fmt.Sprintf("[[allow_unsigned]]\nname = \"r\"\nannotations = { \"io.kubernetes.cri.container-type\" = %q }\n", pattern)
}

var frontPolicyCases = []struct{ pattern, subject, value string }{
	{"sandbox", "", "sandbox"},
	{"sandbox", "", "sandbox2"},
	{"sand.ox", "", "sandbox"},
	{"sandbox|container", "", "container"},
	{"(?i)SANDBOX", "", "sandbox"},
	{"a(b", "", "ab"},
	{"é ü #", "", "é ü #"},
	{"\xff", "", "\xff"},
	{"x", "^dev@", "x"},
	{"x", "[", "x"},
	{"", "", ""},
}

func TestFrontPolicy(t *testing.T) {
	dir := t.TempDir()
	for i, c := range frontPolicyCases {
		for _, unsigned := range []bool{false, true} {
			p := filepath.Join(dir, fmt.Sprintf("p%d-%v.toml", i, unsigned))
			os.WriteFile(p, []byte(frontPolicyText(c.pattern, c.subject, unsigned)), 0o600)
			checkFrontPolicy(t, p, map[string]string{"io.kubernetes.cri.container-type": c.value})
		}
	}
	// The front reads the common policy itself: a literal sandbox rule.
	p := filepath.Join(dir, "p0-false.toml")
	if _, err := policy.Load(p, policy.Reader{}, func(string) error { return nil }); err != nil {
		t.Fatalf("the front declines a plain policy with a literal rule: %v", err)
	}
}

func FuzzFrontPolicy(f *testing.F) {
	for _, c := range frontPolicyCases {
		f.Add(c.pattern, c.subject, c.value, false)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, pattern, subject, value string, unsigned bool) {
		p := filepath.Join(dir, "policy.toml")
		if err := os.WriteFile(p, []byte(frontPolicyText(pattern, subject, unsigned)), 0o600); err != nil {
			t.Fatal(err)
		}
		checkFrontPolicy(t, p, map[string]string{"io.kubernetes.cri.container-type": value})
	})
}
