package policy

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// checkPlainPolicy: plainPolicy either declines or decodes exactly what
// go-toml's strict decoding does.
func checkPlainPolicy(t *testing.T, data []byte) bool {
	t.Helper()
	fast, ok := plainFile(data)
	if !ok {
		return false
	}
	var slow File
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&slow); err != nil {
		t.Fatalf("plainPolicy accepted %q, go-toml: %v", data, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nplainPolicy %#v\ngo-toml     %#v", data, fast, slow)
	}
	return true
}

var plainPolicyCases = []testutil.FastPathCase{
	{Input: "", Fast: true},
	{Input: "unsigned = \"allow\"\n[[signer]]\nname = \"bench\"\npublic_key = \"/k.pub\"\n", Fast: true},
	{Input: "enforcement = 'measure'\nsigstore_helper = '/h'\n[[signer]]\nname = 'a'\ntrusted_root = '/r'\noidc_issuer = 'i'\nsubject_regexp = '.*'\nct_log_threshold = 0\ntlog_threshold = 2\n[[signer]]\nname = 'b'\ncertificates = '/c'\nca = '/ca'\n", Fast: true},
	{Input: "[[allow_unsigned]]\nname = \"containerd-sandbox\"\nannotations = { \"io.kubernetes.cri.container-type\" = \"sandbox\" }\nignore_digest = true\n[[allow_unsigned]]\nname = 'x'\nannotations = {}\n", Fast: true},
	{Input: "[[signer]]\n[[allow_unsigned]]\n", Fast: true},
	{Input: "revoked = '/r.txt'\n[[signer]]\nname = 'a'\npublic_key = '/k'\nscopes = [\"quay.io/a\", '*.example.com']\nnot_after = '2027-01-01'\nmax_age = '30d'\n", Fast: true},
	{Input: "[[signer]]\nscopes = []\n", Fast: true},
	{Input: "[[signer]]\nscopes = [\n  'a', # x\n  'b',\n]\n", Fast: true},
	// Declined: go-toml decides.
	{Input: "unsigned = 1", Fast: false},
	{Input: "signer = 'x'", Fast: false},
	{Input: "[[signer]]\nname = 1", Fast: false},
	{Input: "[[signer]]\nct_log_threshold = 'x'", Fast: false},
	{Input: "[[signer]]\nunknown = 'x'", Fast: false},
	{Input: "[[allow_unsigned]]\nannotations = { a = 1 }", Fast: false},
	{Input: "[[allow_unsigned]]\nignore_digest = 'yes'", Fast: false},
	{Input: "[[allow_unsigned]]\n[allow_unsigned.annotations]\na = 'b'", Fast: false},
	{Input: "[[rule]]", Fast: false},
	{Input: "[[signer]]\nscopes = ['a', 1]", Fast: false},
	{Input: "[[signer]]\nscopes = 'a'", Fast: false},
	{Input: "[[signer]]\nnot_after = 2027-01-01", Fast: false},
	{Input: "revoked = ['/r']", Fast: false},
	{Input: "[[signer]]\nname = 'a'\nname = 'b'", Fast: false},
}

func TestPlainPolicy(t *testing.T) {
	testutil.CheckFastPath(t, "plainPolicy", plainPolicyCases, checkPlainPolicy)
}

func FuzzPlainPolicy(f *testing.F) { testutil.FuzzFastPath(f, plainPolicyCases, checkPlainPolicy) }
