// Package helperproto is the wire protocol between package attest and the
// cfs-runtime-sigstore helper: one JSON Request on the helper's stdin, one
// JSON Response on its stdout. It has no dependencies, so that attest (and
// with it the cfs-runtime binary, exec'd for every runtime call) never links
// sigstore-go, protobuf or grpc; only the helper does.
package helperproto

// Operations.
const (
	// OpVerify verifies Bundle over Message against each of Signers in
	// order and stops at the first that trusts it.
	OpVerify = "verify"
	// OpCheckRoot fully parses each signer's trusted root and identity
	// (what LoadPolicy can only check lightly without sigstore-go).
	OpCheckRoot = "check-root"
)

// Error kinds: each maps to one of attest's sentinel errors.
const (
	KindUntrusted    = "untrusted"     // attest.ErrUntrusted
	KindBadSignature = "bad-signature" // attest.ErrBadSignature
	KindMalformed    = "malformed"     // attest.ErrMalformed
	KindPolicy       = "policy"        // attest.ErrPolicy
)

// Request is what attest writes to the helper's stdin.
type Request struct {
	Op string `json:"op"`
	// Bundle is the annotation's value (sigstore bundle JSON), Message the
	// bytes it must sign (the fs-verity formatted digest). OpVerify only.
	Bundle  string   `json:"bundle,omitempty"`
	Message []byte   `json:"message,omitempty"`
	Signers []Signer `json:"signers"`
}

// Signer is one sigstore [[signer]] of the policy. The trusted root travels
// as the bytes attest read (after the policy's ownership checks), so the
// helper verifies against exactly what was checked.
type Signer struct {
	Name             string `json:"name"`
	TrustedRootPath  string `json:"trusted_root_path"`
	TrustedRoot      string `json:"trusted_root"`
	OIDCIssuer       string `json:"oidc_issuer,omitempty"`
	OIDCIssuerRegexp string `json:"oidc_issuer_regexp,omitempty"`
	Subject          string `json:"subject,omitempty"`
	SubjectRegexp    string `json:"subject_regexp,omitempty"`
	CTLogThreshold   int    `json:"ct_log_threshold"`
	TLogThreshold    int    `json:"tlog_threshold"`
}

// Response is what the helper prints on stdout.
type Response struct {
	// Error is set when the request as a whole failed (for OpVerify: the
	// bundle cannot be parsed); Results is then empty.
	Error *Error `json:"error,omitempty"`
	// Results has one entry per signer tried, in order; for OpVerify the
	// last one is OK when a signer trusted the bundle.
	Results []Result `json:"results,omitempty"`
}

// Result is one signer's verdict.
type Result struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail says who signed (OK), Error why not.
	Detail string `json:"detail,omitempty"`
	Error  *Error `json:"error,omitempty"`
	// SignedAt is the earliest verified timestamp of an OK bundle (the
	// transparency log's integrated time, or a timestamp authority's), in
	// Unix seconds; 0 if none.
	SignedAt int64 `json:"signed_at,omitempty"`
}

// Error is a refusal: Kind selects the sentinel; Message is the text that
// follows it, exactly as attest prints it.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}
