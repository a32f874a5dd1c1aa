// Package registry reads images from, and writes sealed manifests to,
// container registries (docker://REF) for package ociimage, through
// containers/image (go.podman.io/image/v5), the library podman, skopeo and
// CRI-O use: credentials come from the containers auth.json files (or
// --authfile), mirrors, blocked and insecure registries from
// registries.conf, certificates from --cert-dir or
// /etc/containers/certs.d, exactly as for `podman pull` and `skopeo copy`.
//
// Only cfs-runtime-tools links this package (main_test.go guards it): the
// runtime binaries never talk to a registry.
package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/docker/config"
	"go.podman.io/image/v5/types"

	"github.com/cfs-runtime/cfs-runtime/ociimage"
)

// Options are skopeo's registry options.
type Options struct {
	// AuthFile is a containers auth.json (skopeo --authfile); "" looks
	// where podman looks (REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
	// ~/.config/containers/auth.json, ~/.docker/config.json).
	AuthFile string
	// CertDir holds the CA certificates (*.crt) and client certificates
	// (*.cert, *.key) for the registry (skopeo --cert-dir); "" uses
	// /etc/containers/certs.d/HOST:PORT.
	CertDir string
	// TLSVerify false (skopeo --tls-verify=false) allows plain HTTP and
	// unverified certificates; nil leaves it to registries.conf's
	// insecure setting.
	TLSVerify *bool
	// RegistriesConf replaces /etc/containers/registries.conf (its drop-in
	// directory is then RegistriesConf + ".d").
	RegistriesConf string
	// Progress, if set, gets one progress bar per layer blob fetched
	// (from several goroutines at once: an import fetches layers at once).
	Progress ProgressFunc
}

// ProgressFunc wraps the stream of a layer blob being fetched (for a
// progress bar).
type ProgressFunc func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser

// Stats count what was fetched from registries.
type Stats struct {
	mu    sync.Mutex
	Blobs int   // layer blobs fetched
	Bytes int64 // their bytes
}

func (s *Stats) add(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Blobs++
	s.Bytes += n
}

// Register makes ociimage read docker:// references with these options;
// the returned Stats count what it fetches.
func Register(opts Options) *Stats {
	// containers/image warns through logrus (a missing XDG_RUNTIME_DIR,
	// a credential helper that failed): one line in cfs-runtime's style,
	// warnings and worse only.
	logrus.SetFormatter(lineFormatter{})
	logrus.SetLevel(logrus.WarnLevel)
	st := &Stats{}
	ociimage.RegisterTransport(func(ref ociimage.Ref) (ociimage.RemoteSource, error) {
		return Open(context.Background(), ref.Path, opts, st)
	})
	return st
}

// lineFormatter prints a logrus entry as "cfs-runtime: registry: LEVEL: MSG".
type lineFormatter struct{}

func (lineFormatter) Format(e *logrus.Entry) ([]byte, error) {
	return fmt.Appendf(nil, "cfs-runtime: registry: %s: %s\n", e.Level, strings.ReplaceAll(e.Message, "\n", " ")), nil
}

// SystemContext is the containers/image configuration for opts.
func (opts Options) SystemContext() *types.SystemContext {
	sys := &types.SystemContext{
		AuthFilePath:            opts.AuthFile,
		DockerCertPath:          opts.CertDir,
		DockerRegistryUserAgent: "cfs-runtime",
	}
	if opts.TLSVerify != nil {
		sys.DockerInsecureSkipTLSVerify = types.NewOptionalBool(!*opts.TLSVerify)
	}
	if opts.RegistriesConf != "" {
		sys.SystemRegistriesConfPath = opts.RegistriesConf
		sys.SystemRegistriesConfDirPath = opts.RegistriesConf + ".d"
	}
	return sys
}

// ParseReference parses REF of docker://REF (docker.io is the default
// registry, as for skopeo's docker transport).
func ParseReference(name string) (types.ImageReference, error) {
	ref, err := docker.ParseReference("//" + name)
	if err != nil {
		return nil, fmt.Errorf("%w: docker://%s: %w", ociimage.ErrBadReference, name, err)
	}
	return ref, nil
}

// Source serves one image of a registry.
type Source struct {
	name  string // as given, for messages
	ref   types.ImageReference
	src   types.ImageSource
	top   v1.Descriptor
	data  []byte // the top manifest or index
	stats *Stats
	opts  Options
}

// Open resolves name (REF of docker://REF) in its registry (or one of its
// mirrors): it fetches the manifest or index the tag or digest names.
func Open(ctx context.Context, name string, opts Options, stats *Stats) (*Source, error) {
	ref, err := ParseReference(name)
	if err != nil {
		return nil, err
	}
	src, err := ref.NewImageSource(ctx, opts.SystemContext())
	if err != nil {
		return nil, opts.Explain(name, err)
	}
	data, mt, err := src.GetManifest(ctx, nil)
	if err != nil {
		src.Close()
		return nil, opts.Explain(name, err)
	}
	if mt == "" {
		mt = manifest.GuessMIMEType(data)
	}
	top := v1.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if c, ok := ref.DockerReference().(reference.Canonical); ok {
		// The reader checks the manifest against the pinned digest.
		top.Digest = c.Digest()
	}
	if stats == nil {
		stats = &Stats{}
	}
	return &Source{name: name, ref: ref, src: src, top: top, data: data, stats: stats, opts: opts}, nil
}

// Top is the descriptor of the manifest or index the reference names.
func (s *Source) Top() v1.Descriptor { return s.top }

// Open streams a manifest (by digest, from the manifest endpoint) or a
// blob. Nothing is checked here: ociimage checks digests and sizes.
func (s *Source) Open(desc v1.Descriptor) (io.ReadCloser, error) {
	ctx := context.Background()
	if desc.Digest == s.top.Digest {
		return io.NopCloser(strings.NewReader(string(s.data))), nil
	}
	if isManifestType(desc.MediaType) {
		d := desc.Digest
		data, _, err := s.src.GetManifest(ctx, &d)
		if err != nil {
			return nil, s.opts.Explain(s.name, err)
		}
		return io.NopCloser(strings.NewReader(string(data))), nil
	}
	rc, _, err := s.src.GetBlob(ctx, types.BlobInfo{Digest: desc.Digest, Size: desc.Size}, none.NoCache)
	if err != nil {
		return nil, s.opts.Explain(s.name, fmt.Errorf("blob %s: %w", desc.Digest, err))
	}
	if !isLayerType(desc.MediaType) {
		return rc, nil
	}
	rc = &countingReader{rc: rc, done: s.stats.add}
	if s.opts.Progress != nil {
		rc = s.opts.Progress(desc, rc)
	}
	return rc, nil
}

// Pinned is the repository with digest d instead of the tag.
func (s *Source) Pinned(d digest.Digest) string {
	named := reference.TrimNamed(s.ref.DockerReference())
	c, err := reference.WithDigest(named, d)
	if err != nil {
		return named.String() + "@" + d.String()
	}
	return c.String()
}

// Close releases the connection state.
func (s *Source) Close() error { return s.src.Close() }

func isManifestType(mt string) bool {
	switch mt {
	case v1.MediaTypeImageIndex, v1.MediaTypeImageManifest, manifest.DockerV2ListMediaType, manifest.DockerV2Schema2MediaType:
		return true
	}
	return false
}

func isLayerType(mt string) bool {
	return strings.Contains(mt, ".layer.") || strings.Contains(mt, "rootfs.")
}

// countingReader reports how many bytes were read, once, at Close.
type countingReader struct {
	rc   io.ReadCloser
	n    int64
	done func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error {
	if c.done != nil {
		c.done(c.n)
		c.done = nil
	}
	return c.rc.Close()
}

// ErrRegistry wraps what a registry refused or could not be reached for.
var ErrRegistry = errors.New("registry")

// Explain turns containers/image's error chains into one line naming the
// registry and saying what to do.
func (opts Options) Explain(name string, err error) error {
	host, _, _ := strings.Cut(name, "/")
	if ref, perr := ParseReference(name); perr == nil {
		host = reference.Domain(ref.DockerReference())
	}
	var unauth docker.ErrUnauthorizedForCredentials
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	msg := err.Error()
	switch {
	case errors.As(err, &unauth):
		return fmt.Errorf("%w %s: the credentials were refused (check auth.json or --authfile): %s", ErrRegistry, host, lastPart(msg))
	case errors.As(err, &unknownCA) || errors.As(err, &hostErr) || strings.Contains(msg, "x509: "):
		return fmt.Errorf("%w %s: its TLS certificate is not trusted (%s): give its CA with --cert-dir DIR, or use --tls-verify=false", ErrRegistry, host, lastPart(msg))
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w %s: it speaks plain HTTP: use --tls-verify=false (or insecure = true in registries.conf)", ErrRegistry, host)
	case (strings.Contains(msg, "authentication required") || strings.Contains(msg, "unauthorized")) && opts.hasCredentials(host):
		// A registry with basic auth says the same for no and for wrong
		// credentials: which one it was is ours to tell.
		return fmt.Errorf("%w %s: the credentials were refused (check auth.json or --authfile): %s", ErrRegistry, host, lastPart(msg))
	case strings.Contains(msg, "authentication required") || strings.Contains(msg, "unauthorized"):
		return fmt.Errorf("%w %s: authentication required (log in with `podman login`, or give --authfile): %s", ErrRegistry, host, lastPart(msg))
	}
	return fmt.Errorf("%w %s: docker://%s: %s", ErrRegistry, host, name, strings.ReplaceAll(msg, "\n", " "))
}

// hasCredentials reports whether the configuration has credentials for
// the registry host (as containers/image looks them up).
func (opts Options) hasCredentials(host string) bool {
	auth, err := config.GetCredentials(opts.SystemContext(), host)
	return err == nil && (auth.Username != "" || auth.IdentityToken != "")
}

// lastPart is the innermost part of a "a: b: c" error chain, on one line.
func lastPart(msg string) string {
	msg = strings.ReplaceAll(msg, "\n", " ")
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

// Push puts the manifests and indexes annotating an image rewrote
// (ociimage.AnnotateRemote: children first) into the repository of name:
// every one but the last by its digest, the last to name's tag, or, when
// name has no tag, by its own digest. No blob is uploaded: they name the
// config and layers the repository has. It returns the reference of the
// last one pushed.
func Push(ctx context.Context, name string, opts Options, blobs []ociimage.RewrittenBlob) (string, error) {
	if len(blobs) == 0 {
		return "", fmt.Errorf("push docker://%s: nothing to push", name)
	}
	ref, err := ParseReference(name)
	if err != nil {
		return "", err
	}
	repo := reference.TrimNamed(ref.DockerReference())
	tagged, hasTag := ref.DockerReference().(reference.NamedTagged)
	var dst types.ImageReference
	out := ""
	if hasTag {
		if dst, err = docker.NewReference(tagged); err == nil {
			out = tagged.String()
		}
	} else {
		dst, err = docker.NewReferenceUnknownDigest(repo)
	}
	if err != nil {
		return "", fmt.Errorf("%w: docker://%s: %w", ociimage.ErrBadReference, name, err)
	}
	d, err := dst.NewImageDestination(ctx, opts.SystemContext())
	if err != nil {
		return "", opts.Explain(name, err)
	}
	defer d.Close()
	last := len(blobs) - 1
	for i, b := range blobs {
		var instance *digest.Digest
		if i < last {
			dg := b.Desc.Digest
			instance = &dg
		}
		if err := d.PutManifest(ctx, b.Data, instance); err != nil {
			return "", opts.Explain(name, fmt.Errorf("pushing manifest %s: %w", b.Desc.Digest, err))
		}
	}
	if err := d.Commit(ctx, nil); err != nil {
		return "", opts.Explain(name, err)
	}
	if out == "" {
		out = repo.String() + "@" + blobs[last].Desc.Digest.String()
	}
	return out, nil
}
