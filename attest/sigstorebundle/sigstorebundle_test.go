package sigstorebundle

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest/internal/helperproto"
)

func serve(t *testing.T, req string) (helperproto.Response, error) {
	t.Helper()
	var out bytes.Buffer
	if err := Serve(strings.NewReader(req), &out); err != nil {
		return helperproto.Response{}, err
	}
	var resp helperproto.Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("response %q: %v", out.String(), err)
	}
	return resp, nil
}

const rootMT = `"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"`

// The protocol's refusals: each has its kind and reads as attest prints it.
// (Verification itself is tested through attest, against a virtual
// sigstore, with the built helper.)
func TestServe(t *testing.T) {
	signer := func(root string) string {
		b, _ := json.Marshal(helperproto.Signer{Name: "k", TrustedRootPath: "/etc/root.json", TrustedRoot: root, OIDCIssuer: "i", Subject: "s", CTLogThreshold: 1, TLogThreshold: 1})
		return string(b)
	}
	for _, tc := range []struct {
		req, kind, msg string
		results        int
	}{
		{`{"op":"verify","bundle":"[]","signers":[]}`, helperproto.KindMalformed, "not a sigstore bundle (JSON object expected)", 0},
		{`{"op":"verify","bundle":"{\"mediaType\":1}","signers":[]}`, helperproto.KindMalformed, "not a valid sigstore bundle: ", 0},
		{`{"op":"frobnicate","signers":[]}`, helperproto.KindPolicy, `sigstore helper: unknown operation "frobnicate"`, 0},
		{`{"op":"check-root","signers":[` + signer(`{`+rootMT+`}`) + `]}`, "", "", 1},
		{`{"op":"check-root","signers":[` + signer(`{"mediaType":"x"}`) + `]}`, helperproto.KindPolicy, `signer "k": trusted_root /etc/root.json: not a sigstore trusted root: unsupported TrustedRoot media type: x`, 1},
	} {
		resp, err := serve(t, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.req, err)
		}
		got := resp.Error
		if len(resp.Results) != tc.results {
			t.Fatalf("%s: results %+v", tc.req, resp.Results)
		}
		if len(resp.Results) > 0 {
			got = resp.Results[0].Error
			if resp.Results[0].OK != (tc.kind == "") {
				t.Fatalf("%s: result %+v", tc.req, resp.Results[0])
			}
		}
		if tc.kind == "" {
			continue
		}
		if got == nil || got.Kind != tc.kind || !strings.HasPrefix(got.Message, tc.msg) {
			t.Fatalf("%s: error %+v, want %s %q", tc.req, got, tc.kind, tc.msg)
		}
	}
	// A request it cannot read (an older or newer cfs-runtime) is an error,
	// not a verdict.
	if _, err := serve(t, `{"op":"verify","extra":1}`); err == nil || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Fatalf("unknown field: %v", err)
	}
}
