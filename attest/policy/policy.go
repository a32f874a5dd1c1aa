// Package policy reads cfs-runtime's trust policy file: who is trusted to
// sign (the signers' declared trust material, not yet read), the
// enforcement level, and which containers may start without a signature.
// It links no cryptography, so that the runtime front can decide an
// unsigned container without cfs-runtime-mount (docs/architecture.md);
// package attest reads the signers' keys and verifies signatures.
package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

// DefaultPath is where the policy lives unless the configuration's
// `policy` key says otherwise.
const DefaultPath = "/etc/cfs-runtime/policy.toml"

// digestAnnotationPrefix starts every composefs digest annotation key
// (attest.DigestAnnotationPrefix).
const digestAnnotationPrefix = "composefs.merged.erofs.v1.fsverity-"

var (
	// ErrNoPolicy: the policy file does not exist. It is not a default:
	// every signed or unsigned container is refused until it does.
	ErrNoPolicy = errors.New("no trust policy")
	// ErrPolicy: the policy file cannot be used.
	ErrPolicy = errors.New("invalid trust policy")
	// ErrInsecurePolicy: the policy file, or a file or directory it relies
	// on, can be changed by someone other than root.
	ErrInsecurePolicy = errors.New("insecure trust policy")
	// ErrNotPlain: the file is outside the plain subset of TOML and Load
	// was given no Decoder for the rest.
	ErrNotPlain = errors.New("policy is not plain TOML")
)

// Enforcement is how the kernel (or userspace) enforces the verified digest
// once the container is allowed.
type Enforcement string

const (
	// EnforceRequire: kernel fs-verity on the image and every object, and
	// overlayfs verity=require. The default.
	EnforceRequire Enforcement = "require"
	// EnforceMeasure: kernel fs-verity, but no overlayfs verity= option:
	// every object's digest is measured by ioctl before mounting.
	EnforceMeasure Enforcement = "measure"
	// EnforceUserspace: no kernel fs-verity; every byte is hashed in
	// userspace at each create. Logged as a warning every time.
	EnforceUserspace Enforcement = "userspace"
)

// Describe says in a few words what the level means.
func (e Enforcement) Describe() string {
	switch e {
	case EnforceRequire:
		return "kernel fs-verity and overlayfs verity=require"
	case EnforceMeasure:
		return "kernel fs-verity, every object measured by ioctl before mounting (no overlayfs verity=)"
	case EnforceUserspace:
		return "no kernel fs-verity: every byte hashed in userspace at each create (weak; logged as a warning)"
	}
	return "unknown"
}

// SignerType is the kind of trust material a signer entry holds.
type SignerType string

const (
	// SignerCertificates trusts the listed X.509 certificates directly, as
	// the kernel's .fs-verity keyring does; verifies .sig (PKCS#7).
	SignerCertificates SignerType = "certificates"
	// SignerCA trusts certificates that chain to the listed CAs; verifies
	// .sig (PKCS#7).
	SignerCA SignerType = "ca"
	// SignerPublicKey trusts one public key (a PEM public key or a cosign
	// .pub file); verifies .cosign.
	SignerPublicKey SignerType = "public_key"
	// SignerSigstore trusts a sigstore trusted root plus an identity
	// (OIDC issuer, certificate subject); verifies .sigstore-bundle.
	SignerSigstore SignerType = "sigstore"
)

// Signer is one trusted signer as the policy declares it: the files that
// hold its trust material are named here and read by package attest.
type Signer struct {
	Name string
	Type SignerType

	// The files of the trust material (as written in the policy).
	Certificates string
	CA           string
	PublicKey    string
	TrustedRoot  string

	// Sigstore identity constraints: each pair has exactly one set.
	OIDCIssuer, OIDCIssuerRegexp string
	Subject, SubjectRegexp       string
	// CTLogThreshold is how many signed certificate timestamps the
	// certificate must carry; TLogThreshold how many transparency log
	// entries the bundle must prove (0 = none required).
	CTLogThreshold, TLogThreshold int

	// Scopes limits the image references the signer may vouch for
	// (containers-policy.json's docker scopes; empty: any image).
	Scopes []string
	// NotAfter: the signer is not trusted from then on (zero: never
	// expires). MaxAge: a signature older than that is refused, and so is
	// one that proves no signing time (zero: no limit).
	NotAfter time.Time
	MaxAge   time.Duration
}

// Policy is a loaded, validated trust policy.
type Policy struct {
	// Path is the policy file.
	Path        string
	Enforcement Enforcement
	// AllowUnsigned is the default for containers without a digest
	// annotation that no rule matches: false = reject (the default).
	AllowUnsigned bool
	// SigstoreHelper is the policy's sigstore_helper (see attest).
	SigstoreHelper string
	Signers        []Signer
	Rules          []UnsignedRule
	// Revoked is the revocation list file ("" = none; see attest).
	Revoked string

	data []byte // the file, for ErrAt's line numbers
}

// Unsigned says whether a container with these annotations and without a
// composefs digest may start unverified, and by which rule: the first
// [[allow_unsigned]] rule that matches, else `unsigned = "allow"`.
func (p *Policy) Unsigned(annotations map[string]string) (rule string, ok bool) {
	for _, r := range p.Rules {
		if r.Matches(annotations) {
			return r.Name, true
		}
	}
	if p.AllowUnsigned {
		return `unsigned = "allow"`, true
	}
	return "", false
}

// UnsignedVerdict is how logs and messages word a container allowed
// unsigned by rule.
func UnsignedVerdict(rule string) string {
	return fmt.Sprintf("no composefs digest: allowed unsigned by rule %q", rule)
}

// UnsignedRule lets containers without a digest annotation start when
// every listed annotation is present and its value matches.
type UnsignedRule struct {
	Name string
	// Annotations maps an exact annotation key to a regular expression
	// that must match the whole value.
	Annotations map[string]Matcher
	// IgnoreDigest: a matching container starts unverified even when it
	// carries composefs annotations. For CRI sandbox (pause) containers,
	// which inherit the pod's annotations: the digest there is the
	// application image's, not the pause image's. It opens nothing a rule
	// does not already open: a container the rule matches could simply
	// leave the digest out.
	IgnoreDigest bool
}

// Matches reports whether the rule allows a container with annotations.
func (r UnsignedRule) Matches(annotations map[string]string) bool {
	if len(r.Annotations) == 0 {
		return false
	}
	for k, re := range r.Annotations {
		v, ok := annotations[k]
		if !ok || !re.MatchString(v) {
			return false
		}
	}
	return true
}

// File is the TOML document, decoded. Unknown keys are errors.
type File struct {
	Enforcement   string       `toml:"enforcement"`
	Unsigned      string       `toml:"unsigned"`
	Helper        string       `toml:"sigstore_helper"`
	Revoked       string       `toml:"revoked"`
	Signers       []SignerFile `toml:"signer"`
	AllowUnsigned []RuleFile   `toml:"allow_unsigned"`
}

// SignerFile is one [[signer]] table.
type SignerFile struct {
	Name             string   `toml:"name"`
	Certificates     string   `toml:"certificates"`
	CA               string   `toml:"ca"`
	PublicKey        string   `toml:"public_key"`
	TrustedRoot      string   `toml:"trusted_root"`
	OIDCIssuer       string   `toml:"oidc_issuer"`
	OIDCIssuerRegexp string   `toml:"oidc_issuer_regexp"`
	Subject          string   `toml:"subject"`
	SubjectRegexp    string   `toml:"subject_regexp"`
	CTLogThreshold   *int     `toml:"ct_log_threshold"`
	TLogThreshold    *int     `toml:"tlog_threshold"`
	Scopes           []string `toml:"scopes"`
	NotAfter         string   `toml:"not_after"`
	MaxAge           string   `toml:"max_age"`
}

// RuleFile is one [[allow_unsigned]] table.
type RuleFile struct {
	Name         string            `toml:"name"`
	Annotations  map[string]string `toml:"annotations"`
	IgnoreDigest bool              `toml:"ignore_digest"`
}

// FileCheck decides whether a file or directory the policy relies on may be
// trusted; it returns an error wrapping ErrInsecurePolicy if not.
type FileCheck func(path string) error

// RequireOwner returns the default FileCheck for uid: the file, after
// resolving symlinks, and every directory above it (and above the symlink)
// must be owned by uid and not writable by group or others. A directory that
// is world-writable but sticky and owned by uid (like /tmp) is accepted: its
// other users cannot replace files they do not own.
func RequireOwner(uid int) FileCheck {
	return func(path string) error {
		abs, err := filepath.Abs(path)
		if err != nil {
			return err
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return err
		}
		if err := checkChain(real, uid); err != nil {
			return err
		}
		if real != abs {
			return checkChain(filepath.Dir(abs), uid)
		}
		return nil
	}
}

func checkChain(p string, uid int) error {
	for {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := checkOwner(p, fi, uid); err != nil {
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}

func fileOwner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

func checkOwner(p string, fi os.FileInfo, uid int) error {
	owner, ok := fileOwner(fi)
	if !ok {
		return fmt.Errorf("%w: %s: cannot tell its owner", ErrInsecurePolicy, p)
	}
	who := "root"
	if uid != 0 {
		who = fmt.Sprintf("uid %d", uid)
	}
	if owner != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not %s", ErrInsecurePolicy, p, owner, who)
	}
	m := fi.Mode()
	if m.Perm()&0o022 == 0 {
		return nil
	}
	if fi.IsDir() && m&os.ModeSticky != 0 {
		return nil
	}
	by := "others"
	switch {
	case m.Perm()&0o022 == 0o022:
		by = "its group and others"
	case m.Perm()&0o020 != 0:
		by = "its group"
	}
	return fmt.Errorf("%w: %s is writable by %s (mode %s): only %s may be able to change the trust policy", ErrInsecurePolicy, p, by, m, who)
}

// Reader is what Load needs for a policy beyond plain TOML and literal
// patterns: package attest's reads every policy (go-toml, Go regexps);
// the runtime front, which links neither, passes a zero Reader and gets
// ErrNotPlain for the rest.
type Reader struct {
	// Decode decodes a file outside the plain subset of TOML, naming the
	// file and line of a mistake.
	Decode func(path string, data []byte, f *File) error
	// Compile compiles a Go regular expression.
	Compile func(expr string) (Matcher, error)
}

// Matcher is a compiled pattern: a Go regexp, or a literal.
type Matcher interface {
	MatchString(s string) bool
	// String is the pattern's source.
	String() string
}

// literal is a pattern without regexp syntax: it matches itself only.
type literal struct{ src, text string }

func (m literal) MatchString(s string) bool { return s == m.text }
func (m literal) String() string            { return m.src }

// isLiteral: expr holds none of the characters regexp.QuoteMeta escapes,
// and is valid UTF-8, so that Go's regexp reads it as that text.
func isLiteral(expr string) bool {
	return utf8.ValidString(expr) && !strings.ContainsAny(expr, `\.+*?()|[]{}^$`)
}

// check compiles a pattern only to see that it compiles.
func (l *loader) check(expr string) error {
	if expr == "" || isLiteral(expr) {
		return nil
	}
	_, err := l.compile(expr)
	return err
}

// compile compiles a pattern: an anchored literal (^(?:text)$) without
// the Reader's Compile.
func (l *loader) compile(expr string) (Matcher, error) {
	if text, ok := strings.CutPrefix(expr, "^(?:"); ok {
		if text, ok = strings.CutSuffix(text, ")$"); ok && isLiteral(text) {
			return literal{expr, text}, nil
		}
	}
	if l.r.Compile == nil {
		return nil, ErrNotPlain
	}
	return l.r.Compile(expr)
}

// ruleErr: ErrNotPlain as it is, anything else as the key's mistake.
func (l *loader) ruleErr(err error, i int, format string, args ...any) error {
	if errors.Is(err, ErrNotPlain) {
		return err
	}
	return l.errAt("allow_unsigned", i, "annotations", format, args...)
}

func Load(path string, r Reader, check FileCheck) (*Policy, error) {
	if check == nil {
		check = RequireOwner(0)
	}
	if err := check(path); err != nil {
		if errors.Is(err, ErrInsecurePolicy) {
			return nil, fmt.Errorf("policy %s: %w", path, err)
		}
		if _, serr := os.Lstat(path); errors.Is(err, fs.ErrNotExist) && serr != nil {
			return nil, fmt.Errorf("%w: %s does not exist; every container is refused until it does (see policy.toml.example, check it with `cfs-runtime policy check`)", ErrNoPolicy, path)
		}
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("policy file", path, err))
	}
	data, err := rawfile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("policy file", path, err))
	}
	pf, plain := plainFile(data)
	if !plain {
		if r.Decode == nil {
			return nil, ErrNotPlain
		}
		if err := r.Decode(path, data, &pf); err != nil {
			return nil, err
		}
	}
	l := &loader{path: path, data: data, r: r}
	return l.build(pf)
}

type loader struct {
	path string
	data []byte
	r    Reader
}

// ErrAt formats "file:line: key k: msg" for the key of the index-th
// [[table]] entry of p's file (index -1: top level), wrapping ErrPolicy;
// format may wrap an error with %w.
func (p *Policy) ErrAt(table string, index int, key, format string, args ...any) error {
	return (&loader{path: p.Path, data: p.data}).errAt(table, index, key, format, args...)
}

func (l *loader) errAt(table string, index int, key, format string, args ...any) error {
	where := l.path
	if n := lineOf(l.data, table, index, key); n > 0 {
		where = fmt.Sprintf("%s:%d", l.path, n)
	}
	k := key
	if table != "" {
		k = fmt.Sprintf("%s[%d].%s", table, index, key)
	}
	// One Errorf, so that a %w in format wraps (a missing key file is still
	// fs.ErrNotExist).
	return fmt.Errorf("%w: %s: key %s: "+format, append([]any{ErrPolicy, where, k}, args...)...)
}

func (l *loader) build(pf File) (*Policy, error) {
	p := &Policy{Path: l.path, Enforcement: EnforceRequire, data: l.data}
	if pf.Helper != "" {
		if !filepath.IsAbs(pf.Helper) {
			return nil, l.errAt("", -1, "sigstore_helper", "%q is not an absolute path", pf.Helper)
		}
		p.SigstoreHelper = pf.Helper
	}
	if pf.Revoked != "" {
		if !filepath.IsAbs(pf.Revoked) {
			return nil, l.errAt("", -1, "revoked", "%q is not an absolute path", pf.Revoked)
		}
		p.Revoked = pf.Revoked
	}
	switch Enforcement(pf.Enforcement) {
	case "":
	case EnforceRequire, EnforceMeasure, EnforceUserspace:
		p.Enforcement = Enforcement(pf.Enforcement)
	default:
		return nil, l.errAt("", -1, "enforcement", "%q is not one of require, measure, userspace", pf.Enforcement)
	}
	switch pf.Unsigned {
	case "", "reject":
	case "allow":
		p.AllowUnsigned = true
	default:
		return nil, l.errAt("", -1, "unsigned", "%q is not one of reject, allow", pf.Unsigned)
	}
	if len(pf.Signers) == 0 {
		return nil, fmt.Errorf("%w: %s: no [[signer]]: a policy must trust at least one signer (containers without a digest can still be allowed by [[allow_unsigned]] rules)", ErrPolicy, l.path)
	}
	names := map[string]bool{}
	for i, sf := range pf.Signers {
		s, err := l.signer(i, sf)
		if err != nil {
			return nil, err
		}
		if names[s.Name] {
			return nil, l.errAt("signer", i, "name", "signer name %q is used twice", s.Name)
		}
		names[s.Name] = true
		p.Signers = append(p.Signers, s)
	}
	rnames := map[string]bool{}
	for i, rf := range pf.AllowUnsigned {
		if rf.Name == "" {
			return nil, l.errAt("allow_unsigned", i, "name", "every rule needs a name (it is logged when the rule lets a container through)")
		}
		if rnames[rf.Name] {
			return nil, l.errAt("allow_unsigned", i, "name", "rule name %q is used twice", rf.Name)
		}
		rnames[rf.Name] = true
		if len(rf.Annotations) == 0 {
			return nil, l.errAt("allow_unsigned", i, "annotations", "rule %q has no annotations to match (use unsigned = \"allow\" to allow every unsigned container)", rf.Name)
		}
		r := UnsignedRule{Name: rf.Name, Annotations: map[string]Matcher{}, IgnoreDigest: rf.IgnoreDigest}
		for k, v := range rf.Annotations {
			if strings.HasPrefix(strings.ToLower(k), digestAnnotationPrefix) {
				return nil, l.errAt("allow_unsigned", i, "annotations", "rule %q matches on the composefs annotation %q", rf.Name, k)
			}
			if err := l.check(v); err != nil {
				return nil, l.ruleErr(err, i, "rule %q: annotation %q: %v", rf.Name, k, err)
			}
			m, err := l.compile(`^(?:` + v + `)$`)
			if err != nil {
				return nil, l.ruleErr(err, i, "rule %q: annotation %q: %v", rf.Name, k, err)
			}
			r.Annotations[k] = m
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

func (l *loader) signer(i int, sf SignerFile) (Signer, error) {
	at := func(key, format string, args ...any) error { return l.errAt("signer", i, key, format, args...) }
	if sf.Name == "" {
		return Signer{}, at("name", "every signer needs a name (it is reported when it verifies a container)")
	}
	s := Signer{
		Name: sf.Name, Certificates: sf.Certificates, CA: sf.CA, PublicKey: sf.PublicKey, TrustedRoot: sf.TrustedRoot,
		OIDCIssuer: sf.OIDCIssuer, OIDCIssuerRegexp: sf.OIDCIssuerRegexp, Subject: sf.Subject, SubjectRegexp: sf.SubjectRegexp,
	}
	var kinds []string
	for key, v := range map[string]string{"certificates": sf.Certificates, "ca": sf.CA, "public_key": sf.PublicKey, "trusted_root": sf.TrustedRoot} {
		if v == "" {
			continue
		}
		if !filepath.IsAbs(v) {
			return Signer{}, at(key, "%q is not an absolute path", v)
		}
		if key != "certificates" || sf.CA == "" {
			kinds = append(kinds, key)
		}
	}
	sort.Strings(kinds)
	switch {
	case len(kinds) == 0:
		return Signer{}, at("name", "signer %q has no trust material: set one of certificates, ca, public_key, trusted_root", sf.Name)
	case len(kinds) > 1:
		return Signer{}, at(kinds[1], "signer %q sets %s: set only one of certificates (optionally with ca), public_key, trusted_root", sf.Name, strings.Join(kinds, " and "))
	}
	for j, sc := range sf.Scopes {
		if err := imageref.CheckScope(sc); err != nil {
			return Signer{}, at("scopes", "scope %d: %v", j+1, err)
		}
		s.Scopes = append(s.Scopes, sc)
	}
	if sf.NotAfter != "" {
		t, err := parseDate(sf.NotAfter)
		if err != nil {
			return Signer{}, at("not_after", "%v", err)
		}
		s.NotAfter = t
	}
	if sf.MaxAge != "" {
		d, err := parseAge(sf.MaxAge)
		if err != nil {
			return Signer{}, at("max_age", "%v", err)
		}
		s.MaxAge = d
	}
	sigstoreKeys := map[string]bool{"oidc_issuer": sf.OIDCIssuer != "", "oidc_issuer_regexp": sf.OIDCIssuerRegexp != "", "subject": sf.Subject != "", "subject_regexp": sf.SubjectRegexp != "", "ct_log_threshold": sf.CTLogThreshold != nil, "tlog_threshold": sf.TLogThreshold != nil}
	if sf.TrustedRoot == "" {
		for _, k := range []string{"ct_log_threshold", "oidc_issuer", "oidc_issuer_regexp", "subject", "subject_regexp", "tlog_threshold"} {
			if sigstoreKeys[k] {
				return Signer{}, at(k, "only a signer with trusted_root takes %s", k)
			}
		}
	}
	switch kinds[0] {
	case "certificates", "ca":
		s.Type = SignerCertificates
		if sf.CA != "" {
			s.Type = SignerCA
		}
	case "public_key":
		s.Type = SignerPublicKey
	case "trusted_root":
		s.Type = SignerSigstore
		if (sf.OIDCIssuer == "") == (sf.OIDCIssuerRegexp == "") {
			return Signer{}, at("oidc_issuer", "signer %q needs exactly one of oidc_issuer, oidc_issuer_regexp", sf.Name)
		}
		if (sf.Subject == "") == (sf.SubjectRegexp == "") {
			return Signer{}, at("subject", "signer %q needs exactly one of subject, subject_regexp", sf.Name)
		}
		s.CTLogThreshold, s.TLogThreshold = 1, 1
		if sf.CTLogThreshold != nil {
			s.CTLogThreshold = *sf.CTLogThreshold
		}
		if sf.TLogThreshold != nil {
			s.TLogThreshold = *sf.TLogThreshold
		}
		if s.CTLogThreshold < 0 || s.CTLogThreshold > 16 {
			return Signer{}, at("ct_log_threshold", "%d is not in 0..16", s.CTLogThreshold)
		}
		if s.TLogThreshold < 0 || s.TLogThreshold > 16 {
			return Signer{}, at("tlog_threshold", "%d is not in 0..16", s.TLogThreshold)
		}
		// The identity patterns compile as sigstore-go compiles them (Go
		// regexp, unanchored).
		for _, kv := range [][2]string{{"subject_regexp", sf.SubjectRegexp}, {"oidc_issuer_regexp", sf.OIDCIssuerRegexp}} {
			if err := l.check(kv[1]); errors.Is(err, ErrNotPlain) {
				return Signer{}, err
			} else if err != nil {
				return Signer{}, at(kv[0], "%v", err)
			}
		}
	}
	return s, nil
}

// lineOf finds the line (1-based, 0 if not found) where key is assigned: at
// top level when index < 0, else inside the index-th [[table]] entry.
func lineOf(data []byte, table string, index int, key string) int {
	lines := strings.Split(string(data), "\n")
	inTable, seen, header := index < 0, -1, 0
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "[") {
			line, _, _ = strings.Cut(line, "#")
			line = strings.TrimSpace(line)
			if index < 0 {
				return 0 // top-level keys come before the first table
			}
			if strings.HasPrefix(line, "[[") && strings.Trim(strings.TrimSpace(strings.Trim(line, "[]")), `"'`) == table {
				if inTable {
					return header // key absent: point at its table
				}
				seen++
				inTable = seen == index
				if inTable {
					header = i + 1
				}
			} else if !strings.HasPrefix(line, "["+table+".") {
				if inTable {
					return header
				}
				inTable = false
			}
			continue
		}
		if !inTable {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return i + 1
		}
	}
	return header
}

// parseDate reads not_after: a date (YYYY-MM-DD, meaning its start, UTC)
// or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a date (2027-01-31) nor an RFC 3339 time (2027-01-31T12:00:00Z)", s)
}

// parseAge reads max_age: a Go duration ("720h", "90m") or a number of
// days ("30d"), positive.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" && len(n) <= 5 {
		days := 0
		for _, c := range n {
			days = days*10 + int(c-'0')
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is neither a duration (720h) nor a number of days (30d)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive age", s)
	}
	return d, nil
}
