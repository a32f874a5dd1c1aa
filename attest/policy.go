package attest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
	"github.com/cfs-runtime/cfs-runtime/internal/tomlerr"
	"github.com/pelletier/go-toml/v2"
)

// The policy file itself (its syntax, validation and ownership checks) is
// package policy's, which links no cryptography; this file reads the trust
// material its signers name.

// DefaultPolicyPath is where the policy lives unless the configuration's
// `policy` key says otherwise.
const DefaultPolicyPath = policy.DefaultPath

// Enforcement is how the kernel (or userspace) enforces the verified digest
// once the container is allowed (policy.Enforcement).
type Enforcement = policy.Enforcement

const (
	EnforceRequire   = policy.EnforceRequire
	EnforceMeasure   = policy.EnforceMeasure
	EnforceUserspace = policy.EnforceUserspace
)

// SignerType is the kind of trust material a signer entry holds
// (policy.SignerType).
type SignerType = policy.SignerType

const (
	SignerCertificates = policy.SignerCertificates
	SignerCA           = policy.SignerCA
	SignerPublicKey    = policy.SignerPublicKey
	SignerSigstore     = policy.SignerSigstore
)

// UnsignedRule lets containers without a digest annotation start
// (policy.UnsignedRule).
type UnsignedRule = policy.UnsignedRule

// FileCheck decides whether a file or directory the policy relies on may be
// trusted (policy.FileCheck).
type FileCheck = policy.FileCheck

// RequireOwner is the default FileCheck for uid (policy.RequireOwner).
func RequireOwner(uid int) FileCheck { return policy.RequireOwner(uid) }

// verifiesKind tells which annotation a signer type can verify.
func verifiesKind(t SignerType) SignatureKind {
	switch t {
	case SignerCertificates, SignerCA:
		return PKCS7Signature
	case SignerPublicKey:
		return CosignSignature
	case SignerSigstore:
		return SigstoreBundle
	}
	return 0
}

// Signer is one trusted signer of the policy: what the policy declares,
// and the trust material read from the files it names.
type Signer struct {
	policy.Signer

	certs    []*x509.Certificate // Certificates: trusted (or, with a CA, candidate) signer certificates
	roots    *x509.CertPool      // CA
	caCerts  []*x509.Certificate // CA, for printing
	pub      crypto.PublicKey    // PublicKey
	rootJSON []byte              // TrustedRoot: the file's bytes, handed to the helper
	rootSum  trustedRootSummary  // TrustedRoot, for printing

	// parse checks, reads and parses the signer's files when LoadPolicy
	// deferred it (DeferParsing); material runs it once.
	parse     func() error
	parseOnce sync.Once
	parseErr  error
}

// material loads the signer's files if LoadPolicy deferred it, once; its
// error is the one an eager load would have returned.
func (s *Signer) material() error {
	s.parseOnce.Do(func() {
		if s.parse != nil {
			s.parseErr = s.parse()
		}
	})
	return s.parseErr
}

// Policy is a loaded, validated trust policy with its signers' material.
type Policy struct {
	// Path is the policy file.
	Path        string
	Enforcement Enforcement
	// AllowUnsigned is the default for containers without a digest
	// annotation that no rule matches: false = reject (the default).
	AllowUnsigned bool
	// SigstoreHelper is the policy's sigstore_helper: the
	// cfs-runtime-sigstore executable that verifies sigstore bundles
	// (empty: next to the running executable; $CFS_RUNTIME_SIGSTORE
	// overrides both).
	SigstoreHelper string
	Signers        []*Signer
	Rules          []UnsignedRule
	// Revoked is the revocation list file ("" = none).
	Revoked string

	file     *policy.Policy
	check    FileCheck // the ownership check the policy was loaded with, for the helper
	revIndex string    // WithRevocationIndex
	revOnce  sync.Once
	rev      *revocations
	revErr   error
}

// revocations loads the revocation list once (nil without one).
func (p *Policy) revocations() (*revocations, error) {
	if p.Revoked == "" {
		return nil, nil
	}
	p.revOnce.Do(func() { p.rev, p.revErr = loadRevocations(p.Revoked, p.check, p.revIndex) })
	return p.rev, p.revErr
}

// Revocations reads and parses the revocation list (nil without one),
// after the ownership check the policy was loaded with.
func (p *Policy) Revocations() ([]Revocation, error) {
	if p.Revoked == "" {
		return nil, nil
	}
	if _, err := p.revocations(); err != nil {
		return nil, err
	}
	data, err := rawfile.ReadFile(p.Revoked)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, fserr.New("revocation list", p.Revoked, err))
	}
	return ParseRevocations(p.Revoked, data)
}

// IsRevoked reports whether the list revokes entry (as
// CanonicalRevocation returns it).
func (p *Policy) IsRevoked(entry string) (bool, error) {
	r, err := p.revocations()
	if err != nil {
		return false, err
	}
	return r.has(entry), nil
}

// LoadOption changes how LoadPolicy works.
type LoadOption func(*loadConfig)

type loadConfig struct {
	check        FileCheck
	fullSigstore bool
	deferParsing bool
	revIndex     string
}

// WithRevocationIndex keeps an index of the revocation list in dir (the
// state directory), valid for one version of the file (device, inode,
// size, modification and change time): a create then reads the index
// instead of parsing the list again.
func WithRevocationIndex(dir string) LoadOption { return func(l *loadConfig) { l.revIndex = dir } }

// DeferParsing checks, reads and parses the files a signer names
// (certificates, CA, public key, trusted root) when a signature is checked
// against that signer, not at load, as containers/image reads a policy's
// keys. The runtime path uses it: loading them (an ownership walk, a read,
// the key and the curve tables it needs) would cost every create, also
// when the container carries no signature (docs/performance.md). A file
// that is missing, insecure or unparsable refuses every signature checked
// against its signer with the error a load would have returned;
// `cfs-runtime policy check` loads everything.
func DeferParsing() LoadOption { return func(l *loadConfig) { l.deferParsing = true } }

// WithSigstoreCheck also has the cfs-runtime-sigstore helper fully parse
// every sigstore signer's trusted root and identity (`policy check` does).
// Without it LoadPolicy checks trusted roots lightly (JSON, media type,
// certificates and keys) and never execs the helper: the full parse then
// happens when a bundle is verified.
func WithSigstoreCheck() LoadOption { return func(l *loadConfig) { l.fullSigstore = true } }

// WithFileCheck replaces the ownership check (default RequireOwner(0)); tests
// use it to run as another user.
func WithFileCheck(c FileCheck) LoadOption { return func(l *loadConfig) { l.check = c } }

// fullReader reads every policy: go-toml for what is not plain TOML, Go
// regexps for the patterns.
var fullReader = policy.Reader{
	Decode:  decodeTOML,
	Compile: func(expr string) (policy.Matcher, error) { return regexp.Compile(expr) },
}

// decodeTOML decodes what policy.Load cannot without go-toml, wording
// mistakes as file:line.
func decodeTOML(path string, data []byte, f *policy.File) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		return fmt.Errorf("%w: %s", ErrPolicy, tomlerr.Describe(path, err))
	}
	return nil
}

// LoadPolicy reads and validates the policy file at path (policy.Load),
// and the trust material it names. It refuses a policy that anyone but
// root could have changed, one without any trusted signer, and any unknown
// key (naming the file, line and key).
func LoadPolicy(path string, opts ...LoadOption) (*Policy, error) {
	cfg := loadConfig{check: RequireOwner(0)}
	for _, o := range opts {
		o(&cfg)
	}
	f, err := policy.Load(path, fullReader, cfg.check)
	if err != nil {
		return nil, err
	}
	p := &Policy{
		Path: f.Path, Enforcement: f.Enforcement, AllowUnsigned: f.AllowUnsigned,
		SigstoreHelper: f.SigstoreHelper, Rules: f.Rules, file: f, check: cfg.check,
		Revoked: f.Revoked, revIndex: cfg.revIndex,
	}
	for i, decl := range f.Signers {
		s := &Signer{Signer: decl}
		if err := p.loadMaterial(i, s, cfg); err != nil {
			return nil, err
		}
		p.Signers = append(p.Signers, s)
	}
	if cfg.fullSigstore {
		if err := p.checkSigstore(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// materialFile names the file a signer key holds, for messages: "key file
// /etc/cfs-runtime/x.pub does not exist".
var materialFile = map[string]string{
	"certificates": "certificate file",
	"ca":           "CA certificate file",
	"public_key":   "key file",
	"trusted_root": "trusted root file",
}

// loadMaterial reads the files the i-th signer names, now or (DeferParsing)
// when a signature is first checked against it.
func (p *Policy) loadMaterial(i int, s *Signer, cfg loadConfig) error {
	at := func(key, format string, args ...any) error { return p.file.ErrAt("signer", i, key, format, args...) }
	load := func(key, path string, fn func([]byte) error) error {
		read := func() error {
			if err := cfg.check(path); err != nil {
				if errors.Is(err, ErrInsecurePolicy) {
					return fmt.Errorf("policy %s: signer %q: %w", p.Path, s.Name, err)
				}
				return at(key, "%w", fserr.New(materialFile[key], path, err))
			}
			data, err := rawfile.ReadFile(path)
			if err != nil {
				return at(key, "%w", fserr.New(materialFile[key], path, err))
			}
			if err := fn(data); err != nil {
				return at(key, "%s: %v", path, err)
			}
			return nil
		}
		if !cfg.deferParsing {
			return read()
		}
		if earlier := s.parse; earlier != nil { // certificates, then ca
			s.parse = func() error {
				if err := earlier(); err != nil {
					return err
				}
				return read()
			}
		} else {
			s.parse = read
		}
		return nil
	}
	switch s.Type {
	case SignerCertificates, SignerCA:
		if s.Certificates != "" {
			if err := load("certificates", s.Certificates, func(b []byte) (err error) { s.certs, err = parseCertificates(b); return }); err != nil {
				return err
			}
		}
		if s.CA != "" {
			return load("ca", s.CA, func(b []byte) (err error) {
				s.caCerts, err = parseCertificates(b)
				if err == nil {
					s.roots = x509.NewCertPool()
					for _, c := range s.caCerts {
						if !c.IsCA {
							return fmt.Errorf("certificate %s is not a CA certificate", certName(c))
						}
						s.roots.AddCert(c)
					}
				}
				return
			})
		}
	case SignerPublicKey:
		return load("public_key", s.PublicKey, func(b []byte) (err error) {
			s.pub, err = parsePublicKey(b)
			return
		})
	case SignerSigstore:
		return load("trusted_root", s.TrustedRoot, func(b []byte) (err error) {
			if s.rootSum, err = checkTrustedRoot(b); err != nil {
				return fmt.Errorf("not a sigstore trusted root: %w", err)
			}
			s.rootJSON = b
			return nil
		})
	}
	return nil
}
