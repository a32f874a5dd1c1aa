// Package imageref names the image a container runs and matches image
// references against policy scopes as containers-policy.json(5) matches
// its docker transport scopes. It is small and has no dependencies: the
// runtime path reads it before every create.
package imageref

import (
	"errors"
	"fmt"
	"strings"
)

// The annotations engines set naming the image of a container. podman 4.3
// sets none of its own; it copies the image manifest's annotations, so
// RefNameAnnotation is there when the image carries it.
const (
	// ContainerdAnnotation is set by containerd's CRI plugin.
	ContainerdAnnotation = "io.kubernetes.cri.image-name"
	// CRIOAnnotation is set by CRI-O.
	CRIOAnnotation = "io.kubernetes.cri-o.ImageName"
	// RefNameAnnotation is the OCI image annotation; only a value that
	// names a repository (has a "/") is taken: in an OCI layout it is
	// often a bare tag.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
)

var (
	// ErrInvalid: the string is not an image reference.
	ErrInvalid = errors.New("invalid image reference")
	// ErrConflict: the container's annotations name two different images.
	ErrConflict = errors.New("conflicting image references")
)

// FromAnnotations returns the normalised reference of the image the
// container runs, "" when its annotations name none. It is the one place
// that decides where the reference comes from (the engine naming the image
// will replace it). Two annotations naming different images, or one that
// is not a reference, are an error: a rule needing the reference then
// fails closed.
func FromAnnotations(a map[string]string) (string, error) {
	var ref, from string
	for _, k := range []string{ContainerdAnnotation, CRIOAnnotation, RefNameAnnotation} {
		v, ok := a[k]
		if !ok || v == "" || (k == RefNameAnnotation && !strings.Contains(v, "/")) {
			continue
		}
		n, err := Normalize(v)
		if err != nil {
			return "", fmt.Errorf("annotation %s: %w", k, err)
		}
		if ref != "" && n != ref {
			return "", fmt.Errorf("%w: annotation %s names %s, %s names %s", ErrConflict, from, ref, k, n)
		}
		ref, from = n, k
	}
	return ref, nil
}

// Normalize expands a reference as containers/image (and docker) do:
// "busybox" is docker.io/library/busybox:latest, index.docker.io is
// docker.io, a name without tag or digest gets :latest; a reference with
// both keeps the digest only. The repository must be lower case.
func Normalize(s string) (string, error) { return normalize(s, ":latest") }

// NormalizeName expands only the name part (no tag added).
func NormalizeName(s string) (string, error) { return normalize(s, "") }

// normalize is Normalize with untagged, the suffix of a name without tag
// or digest.
func normalize(s, untagged string) (string, error) {
	name, tag, digest, err := split(s)
	if err != nil {
		return "", err
	}
	switch {
	case digest != "":
		return name + "@" + digest, nil
	case tag != "":
		return name + ":" + tag, nil
	}
	return name + untagged, nil
}

func split(s string) (name, tag, digest string, err error) {
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%w %q: %s", ErrInvalid, s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 4096 {
		return bad("too long")
	}
	if len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" {
		return bad("a 64-digit hex string is an image id, not a name")
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, digest = rest[:i], rest[i+1:]
		alg, hex, ok := strings.Cut(digest, ":")
		if !ok || alg == "" || hex == "" || !validDigest(alg, hex) {
			return bad("digest is not ALGORITHM:HEX")
		}
	}
	// A tag follows the last ':' after the last '/' (a ':' before that is
	// the registry's port).
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		rest, tag = rest[:i], rest[i+1:]
		if !validTag(tag) {
			return bad("invalid tag " + fmt.Sprintf("%q", tag))
		}
	}
	domain, path := "docker.io", rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, rest[i+1:]
		}
	}
	if domain == "index.docker.io" {
		domain = "docker.io"
	}
	if domain == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if !validDomain(domain) {
		return bad("invalid registry " + fmt.Sprintf("%q", domain))
	}
	for _, c := range strings.Split(path, "/") {
		if !validComponent(c) {
			return bad("invalid repository path component " + fmt.Sprintf("%q", c) + " (lower case letters, digits and . _ - separators)")
		}
	}
	return domain + "/" + path, tag, digest, nil
}

func validDigest(alg, hex string) bool {
	for _, r := range alg {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	if len(hex) < 32 {
		return false
	}
	for _, r := range hex {
		if !(r >= 'a' && r <= 'f' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i, r := range t {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || (i > 0 && (r == '.' || r == '-'))
		if !ok {
			return false
		}
	}
	return true
}

// validDomain: dot-separated labels of letters, digits and inner '-', or
// an IPv6 address in brackets; an optional :port.
func validDomain(d string) bool {
	host, port, hasPort := strings.Cut(d, ":")
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return false
		}
		host, port = d[:end+1], d[end+1:]
		if hasPort = port != ""; hasPort {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
		ip := host[1 : len(host)-1]
		if ip == "" || strings.Trim(ip, "0123456789abcdefABCDEF:") != "" {
			return false
		}
		host = ""
	} else if host == "" {
		return false
	}
	if hasPort {
		if port == "" {
			return false
		}
		for _, r := range port {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	if host == "" {
		return true // IPv6
	}
	for _, l := range strings.Split(host, ".") {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validComponent: [a-z0-9]+ joined by ".", "_", "__" or "-"+ (the
// distribution reference grammar).
func validComponent(c string) bool {
	if c == "" {
		return false
	}
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	if !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); i++ {
		if alnum(c[i]) {
			continue
		}
		j := i
		for j < len(c) && !alnum(c[j]) {
			j++
		}
		sep := c[i:j]
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return false
		}
		i = j - 1
	}
	return true
}

// CheckScope validates a scope as containers-policy.json validates docker
// transport scopes, and returns it: a normalised repository or namespace
// ("registry.example.com/app", "docker.io/library/busybox"), a full
// reference with tag or digest, a registry ("quay.io", "localhost:5000"),
// or "*.example.com" (every subdomain of example.com, any port). No
// regular expressions, no other wildcards.
func CheckScope(scope string) error {
	if strings.HasPrefix(scope, "*.") {
		host := scope[2:]
		if strings.ContainsAny(host, "*:/") || !validDomain(host) {
			return fmt.Errorf("%w: scope %q: a wildcard scope is \"*.\" and a host name, nothing else", ErrInvalid, scope)
		}
		return nil
	}
	if strings.Contains(scope, "*") {
		return fmt.Errorf("%w: scope %q: \"*\" is only allowed as a leading \"*.\" of a host name", ErrInvalid, scope)
	}
	if !strings.Contains(scope, "/") {
		if validDomain(scope) && (strings.ContainsAny(scope, ".:") || scope == "localhost") {
			return nil // a registry
		}
		return fmt.Errorf("%w: scope %q: not a registry, repository or reference (write the full name, e.g. docker.io/library/%s)", ErrInvalid, scope, scope)
	}
	n, err := NormalizeName(scope)
	if err != nil {
		return fmt.Errorf("scope: %w", err)
	}
	if n != scope {
		return fmt.Errorf("%w: scope %q is not fully expanded: write %q", ErrInvalid, scope, n)
	}
	return nil
}

// MatchScope reports whether the normalised reference ref (as Normalize
// returns) is within scope: scope is the reference itself, its repository,
// a parent namespace, its registry, or "*.DOMAIN" for a registry host
// (without port) under DOMAIN. This is the order and set of names
// containers/image's DockerReferenceNamespaces searches.
func MatchScope(scope, ref string) bool {
	if scope == ref {
		return true
	}
	name := ref
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	} else if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	for {
		if scope == name {
			return true
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if !strings.HasPrefix(scope, "*.") {
		return false
	}
	host, _, _ := strings.Cut(name, ":")
	for {
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return false
		}
		host = host[i+1:]
		if scope == "*."+host {
			return true
		}
	}
}
