package ociimage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// A RemoteSource serves one image from elsewhere than a layout on disk (a
// registry). It does not check what it serves: the layout reader checks
// every manifest and blob against its descriptor as it reads it.
type RemoteSource interface {
	// Top is the descriptor of the manifest or index the reference names
	// (its digest as the reference pins it, or as the registry's manifest
	// hashes).
	Top() v1.Descriptor
	// Open streams a manifest, index or blob.
	Open(desc v1.Descriptor) (io.ReadCloser, error)
	// Pinned is the reference with its tag replaced by digest d (for
	// provenance: what a repair fetches again).
	Pinned(d digest.Digest) string
	Close() error
}

// RemoteOpener opens the image a registry reference names.
type RemoteOpener func(ref Ref) (RemoteSource, error)

var (
	remoteMu     sync.Mutex
	remoteOpener RemoteOpener
)

// ErrNoTransport: a docker:// reference, but no registry client was
// installed with RegisterTransport.
var ErrNoTransport = errors.New("no registry client in this program")

// RegisterTransport installs the opener of docker:// references (the tools
// install ociimage/registry's; the runtime binaries link none).
func RegisterTransport(open RemoteOpener) {
	remoteMu.Lock()
	remoteOpener = open
	remoteMu.Unlock()
}

func openRemote(ref Ref) (*remoteSource, error) {
	remoteMu.Lock()
	open := remoteOpener
	remoteMu.Unlock()
	if open == nil {
		return nil, fmt.Errorf("%s: %w", ref, ErrNoTransport)
	}
	rs, err := open(ref)
	if err != nil {
		return nil, err
	}
	return &remoteSource{rs: rs}, nil
}

// remoteSource presents a RemoteSource as a layout holding one image: an
// oci-layout file, an index.json naming the reference's manifest, and
// the blobs, opened by descriptor.
type remoteSource struct{ rs RemoteSource }

func (r *remoteSource) open(name string) (io.ReadCloser, error) {
	switch name {
	case v1.ImageLayoutFile:
		return io.NopCloser(strings.NewReader(`{"imageLayoutVersion":"` + v1.ImageLayoutVersion + `"}`)), nil
	case v1.ImageIndexFile:
		top := r.rs.Top()
		top.Annotations = nil
		data, err := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{top}})
		if err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader(string(data))), nil
	}
	return nil, fmt.Errorf("%s: not served by a registry", name)
}

func (r *remoteSource) openBlob(desc v1.Descriptor) (io.ReadCloser, error) { return r.rs.Open(desc) }

func (r *remoteSource) close() error { return r.rs.Close() }

// pinned is the registry reference pinned to the top manifest's digest.
func (r *remoteSource) pinned() string {
	return TransportDocker + "://" + r.rs.Pinned(r.rs.Top().Digest)
}
