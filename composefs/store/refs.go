package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
)

// Refs are the images kept by name: gc's roots besides running containers.
// Each is one file under refs/, written atomically (temporary file and
// rename), so that concurrent imports never lose each other's refs:
//
//	refs/ESCAPED-NAME   {"name":..., "digest":..., "source":{"kind","ref","created"}}
//
// ESCAPED-NAME is the name path-escaped (url.PathEscape), or, for a name
// whose escaped form is longer than maxRefFile, "%%sha256-" and the
// SHA-256 of the name (no escaped name starts with "%%").
//
// Refs written before sources were recorded hold only "DIGEST\n"; they are
// read as they are (Source.Kind from the name, Created from the file's
// mtime) and rewritten in the new form when set again.

// Ref kinds (RefSource.Kind): what the image was imported from. Other
// importers may use their own kinds (e.g. "docker").
const (
	RefKindTree       = "tree"        // Ref: the tree's absolute path
	RefKindOCI        = "oci"         // Ref: "oci:/ABS/DIR[:NAME]"
	RefKindOCIArchive = "oci-archive" // Ref: "oci-archive:/ABS/FILE[:NAME]"
	RefKindDocker     = "docker"      // Ref: "docker://REF"
	RefKindTag        = "tag"         // set by hand (images tag); Ref: ""
)

// RefSource says where the image a ref names came from.
type RefSource struct {
	Kind string `json:"kind"`
	// Ref is the source as the user named it, made absolute for paths
	// ("/srv/rootfs", "oci:/srv/layout:app", "docker://quay.io/x/y:1").
	Ref string `json:"ref"`
	// Created is when the ref was set to its digest (the import's time);
	// SetRef fills it in when zero.
	Created time.Time `json:"created"`
}

// Ref is one ref: a name keeping an image.
type Ref struct {
	Name   string    `json:"name"`
	Digest string    `json:"digest"`
	Source RefSource `json:"source"`
}

// Ref errors.
var (
	// ErrBadRefName is returned for a ref name that is empty, too long,
	// starts with a dot, holds a control character or is itself a digest.
	ErrBadRefName = errors.New("invalid image ref name")
	// ErrNoRef is returned for a ref name the store does not have.
	ErrNoRef = errors.New("no such ref")
	// ErrBadPrefix is returned by ResolvePrefix and Resolve for what is
	// neither a digest nor a prefix of one.
	ErrBadPrefix = errors.New("not a digest or a digest prefix (at least 4 lower-case hex digits)")
	// ErrAmbiguousPrefix is returned by ResolvePrefix for a digest
	// prefix that more than one image's digest starts with.
	ErrAmbiguousPrefix = errors.New("ambiguous digest prefix")
)

const (
	maxRefName = 4096 // bytes of a ref name
	maxRefFile = 200  // bytes of an escaped name used as the file name
	// MinPrefix is the shortest digest prefix ResolvePrefix takes (git's).
	MinPrefix = 4
)

// checkRefName checks a ref name.
func checkRefName(name string) error {
	bad := name == "" || len(name) > maxRefName || strings.HasPrefix(name, ".") ||
		strings.ContainsFunc(name, unicode.IsControl)
	if !bad {
		h := strings.TrimPrefix(strings.TrimPrefix(name, "sha256:"), "sha512:")
		_, err := parseAnyDigest(h)
		bad = err == nil // a name that is a digest would shadow it
	}
	if bad {
		return fmt.Errorf("%w: %q (want 1 to %d bytes, no leading dot, no control characters, not a digest)", ErrBadRefName, name, maxRefName)
	}
	return nil
}

// refFile maps a ref name (e.g. "oci:/srv/img:latest" or "busybox") to its
// file under refs/.
func refFile(name string) (string, error) {
	if err := checkRefName(name); err != nil {
		return "", err
	}
	if f := url.PathEscape(name); len(f) <= maxRefFile {
		return f, nil
	}
	sum := sha256.Sum256([]byte(name))
	return "%%sha256-" + hex.EncodeToString(sum[:]), nil
}

// parseAnyDigest checks a digest the store may hold an image of.
func parseAnyDigest(d string) ([]byte, error) { return parseDigest(d) }

// SetRef makes name refer to the image digest (replacing what it named),
// recording src: gc keeps the image while a ref names it. Setting a ref to
// what it already names from the same source changes nothing (Created
// stays the first import's). The image need not be in the store yet.
//
// SetRef takes no lock: each ref is its own file, replaced atomically. To
// keep an image being imported from a concurrent gc, set its ref before the
// import releases the store lock (ImportTreeAs; StreamImport.Commit, then
// SetRef, then Close).
func (s *Store) SetRef(name, digest string, src RefSource) error {
	if _, err := parseAnyDigest(digest); err != nil {
		return err
	}
	f, err := refFile(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "refs")
	if err := os.MkdirAll(dir, storeDirMode); err != nil {
		return fmt.Errorf("refs: %w", err)
	}
	p := filepath.Join(dir, f)
	if old, err := s.readRef(p, f); err == nil && old.Name == name && old.Digest == digest &&
		old.Source.Kind == src.Kind && old.Source.Ref == src.Ref && (src.Created.IsZero() || src.Created.Equal(old.Source.Created)) {
		if data, _ := os.ReadFile(p); bytes.HasPrefix(data, []byte("{")) {
			return nil // a re-import: nothing to rewrite
		}
	}
	if src.Created.IsZero() {
		src.Created = time.Now().UTC().Truncate(time.Second)
	}
	data, err := json.Marshal(Ref{Name: name, Digest: digest, Source: src})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("refs: %w", err)
	}
	return nil
}

// LookupRef returns the ref name, or an error matching ErrNoRef.
func (s *Store) LookupRef(name string) (Ref, error) {
	f, err := refFile(name)
	if err != nil {
		return Ref{}, err
	}
	r, err := s.readRef(filepath.Join(s.dir, "refs", f), f)
	if errors.Is(err, fs.ErrNotExist) {
		return Ref{}, fmt.Errorf("%w: %q", ErrNoRef, name)
	}
	return r, err
}

// RemoveRef removes the ref name and returns what it was, or an error
// matching ErrNoRef. The image stays until gc finds nothing else keeps it.
func (s *Store) RemoveRef(name string) (Ref, error) {
	r, err := s.LookupRef(name)
	if err != nil {
		return r, err
	}
	f, _ := refFile(name)
	dir := filepath.Join(s.dir, "refs")
	if err := os.Remove(filepath.Join(dir, f)); err != nil {
		if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
			return r, fmt.Errorf("%w: %q", ErrNoRef, name)
		}
		return r, fmt.Errorf("refs: %w", err)
	}
	return r, atomicfile.SyncDir(dir)
}

// ListRefs returns every ref, sorted by name.
func (s *Store) ListRefs() ([]Ref, error) {
	dir := filepath.Join(s.dir, "refs")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refs: %w", err)
	}
	refs := make([]Ref, 0, len(ents))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") { // atomicfile temporaries
			continue
		}
		r, err := s.readRef(filepath.Join(dir, e.Name()), e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b Ref) int { return strings.Compare(a.Name, b.Name) })
	return refs, nil
}

// Refs returns every ref: name → image digest.
func (s *Store) Refs() (map[string]string, error) {
	list, err := s.ListRefs()
	if err != nil {
		return nil, err
	}
	refs := make(map[string]string, len(list))
	for _, r := range list {
		refs[r.Name] = r.Digest
	}
	return refs, nil
}

// readRef reads the ref file p (named file under refs/), in either form.
func (s *Store) readRef(p, file string) (Ref, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return Ref{}, err
	}
	var r Ref
	if bytes.HasPrefix(data, []byte("{")) {
		if err := json.Unmarshal(data, &r); err != nil {
			return Ref{}, fmt.Errorf("ref file %s: %w", p, err)
		}
		if want, err := refFile(r.Name); err != nil || want != file {
			return Ref{}, fmt.Errorf("ref file %s: holds the ref %q, which is not its name", p, r.Name)
		}
	} else {
		// The old form: the digest alone.
		name, err := url.PathUnescape(file)
		if err != nil {
			return Ref{}, fmt.Errorf("ref file %s: %w", p, err)
		}
		r = Ref{Name: name, Digest: strings.TrimSpace(string(data)), Source: legacySource(name)}
		if fi, err := os.Stat(p); err == nil {
			r.Source.Created = fi.ModTime().UTC().Truncate(time.Second)
		}
	}
	if _, err := parseAnyDigest(r.Digest); err != nil {
		return Ref{}, fmt.Errorf("ref %q: %w", r.Name, err)
	}
	return r, nil
}

// legacySource tells, from its name, where an old-form ref came from: OCI
// imports named their refs after the layout, images tag anything else.
func legacySource(name string) RefSource {
	for _, k := range []string{RefKindOCIArchive, RefKindOCI} {
		if strings.HasPrefix(name, k+":") {
			return RefSource{Kind: k, Ref: name}
		}
	}
	if strings.HasPrefix(name, "oci@") {
		return RefSource{Kind: RefKindOCI, Ref: name}
	}
	return RefSource{Kind: RefKindTag}
}

// ResolvePrefix returns the one digest, among the store's images and the
// digests its refs name, that starts with prefix (lower-case hex, at least
// MinPrefix digits; a whole digest is returned as it is when the store
// knows it). Errors: ErrBadPrefix for anything else, ErrNotFound when
// nothing starts with prefix, ErrAmbiguousPrefix (saying how many do) when
// more than one does.
func (s *Store) ResolvePrefix(prefix string) (string, error) {
	if len(prefix) < MinPrefix || strings.Trim(prefix, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is %w", prefix, ErrBadPrefix)
	}
	images, err := s.ImageDigests()
	if err != nil {
		return "", err
	}
	refs, err := s.Refs()
	if err != nil {
		return "", err
	}
	found := map[string]bool{}
	for _, d := range images {
		if strings.HasPrefix(d, prefix) {
			found[d] = true
		}
	}
	for _, d := range refs {
		if strings.HasPrefix(d, prefix) {
			found[d] = true
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no image digest starts with %s: %w", prefix, ErrNotFound)
	case 1:
		for d := range found {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: %s matches %d images; give more hex digits", ErrAmbiguousPrefix, prefix, len(found))
}

// Resolve finds the image a user named: a ref name first (as podman looks
// names up before IDs), else a digest or digest prefix, with or without
// "sha256:" or "sha512:" (ResolvePrefix). It returns the digest and, when
// arg was a ref, the ref.
func (s *Store) Resolve(arg string) (string, *Ref, error) {
	if checkRefName(arg) == nil {
		r, err := s.LookupRef(arg)
		if err == nil {
			return r.Digest, &r, nil
		}
		if !errors.Is(err, ErrNoRef) {
			return "", nil, err
		}
	}
	h := arg
	for _, p := range []string{"sha256:", "sha512:"} {
		h = strings.TrimPrefix(h, p)
	}
	d, err := s.ResolvePrefix(h)
	if errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("no ref or image %q: %w", arg, ErrNotFound)
	} else if errors.Is(err, ErrBadPrefix) {
		err = fmt.Errorf("no ref named %q, and it is %w", arg, ErrBadPrefix)
	}
	return d, nil, err
}
