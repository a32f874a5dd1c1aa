package attest

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// checkPlainPolicy: plainPolicy either declines or decodes exactly what
// go-toml's strict decoding does.
func checkPlainPolicy(t *testing.T, data []byte) bool {
	t.Helper()
	fast, ok := plainPolicy(data)
	if !ok {
		return false
	}
	var slow policyFile
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&slow); err != nil {
		t.Fatalf("plainPolicy accepted %q, go-toml: %v", data, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nplainPolicy %#v\ngo-toml     %#v", data, fast, slow)
	}
	return true
}

var plainPolicyCases = []struct {
	toml  string
	plain bool
}{
	{"", true},
	{"unsigned = \"allow\"\n[[signer]]\nname = \"bench\"\npublic_key = \"/k.pub\"\n", true},
	{"enforcement = 'measure'\nsigstore_helper = '/h'\n[[signer]]\nname = 'a'\ntrusted_root = '/r'\noidc_issuer = 'i'\nsubject_regexp = '.*'\nct_log_threshold = 0\ntlog_threshold = 2\n[[signer]]\nname = 'b'\ncertificates = '/c'\nca = '/ca'\n", true},
	{"[[allow_unsigned]]\nname = \"containerd-sandbox\"\nannotations = { \"io.kubernetes.cri.container-type\" = \"sandbox\" }\nignore_digest = true\n[[allow_unsigned]]\nname = 'x'\nannotations = {}\n", true},
	{"[[signer]]\n[[allow_unsigned]]\n", true},
	// Declined: go-toml decides.
	{"unsigned = 1", false},
	{"signer = 'x'", false},
	{"[[signer]]\nname = 1", false},
	{"[[signer]]\nct_log_threshold = 'x'", false},
	{"[[signer]]\nunknown = 'x'", false},
	{"[[allow_unsigned]]\nannotations = { a = 1 }", false},
	{"[[allow_unsigned]]\nignore_digest = 'yes'", false},
	{"[[allow_unsigned]]\n[allow_unsigned.annotations]\na = 'b'", false},
	{"[[rule]]", false},
	{"[[signer]]\nname = 'a'\nname = 'b'", false},
}

func TestPlainPolicy(t *testing.T) {
	for _, c := range plainPolicyCases {
		if got := checkPlainPolicy(t, []byte(c.toml)); got != c.plain {
			t.Errorf("plainPolicy(%q) took the plain path: %v, want %v", c.toml, got, c.plain)
		}
	}
}

func FuzzPlainPolicy(f *testing.F) {
	for _, c := range plainPolicyCases {
		f.Add([]byte(c.toml))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkPlainPolicy(t, data) })
}
