package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
)

// descriptor is the part of an OCI descriptor read here.
type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

// manifestDoc is an image manifest or an index (OCI or Docker schema 2).
type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        *descriptor       `json:"config"`
	Manifests     []descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

// resolveManifest reads target (a manifest, or an index of which the
// manifest for this host's platform is taken) with read, which checks
// what it reads against the descriptor's digest.
func resolveManifest(read func(descriptor) ([]byte, error), target descriptor) (*engineimage.Manifest, error) {
	data, err := read(target)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(target.Digest, data)
	if err != nil {
		return nil, err
	}
	if m.Config == nil {
		var pick *descriptor
		for i, d := range m.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
				pick = &m.Manifests[i]
				break
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("index %s has no manifest for linux/%s", target.Digest, runtime.GOARCH)
		}
		target = *pick
		if data, err = read(target); err != nil {
			return nil, err
		}
		if m, err = parseManifest(target.Digest, data); err != nil {
			return nil, err
		}
		if m.Config == nil {
			return nil, fmt.Errorf("manifest %s: no config (an index in an index)", target.Digest)
		}
	}
	return &engineimage.Manifest{Digest: target.Digest, Config: m.Config.Digest, Annotations: m.Annotations}, nil
}

func parseManifest(digest string, data []byte) (*manifestDoc, error) {
	var m manifestDoc
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest %s: schemaVersion %d, want 2", digest, m.SchemaVersion)
	}
	if m.Config == nil && len(m.Manifests) == 0 {
		return nil, fmt.Errorf("manifest %s: neither a manifest (no config) nor an index (no manifests)", digest)
	}
	return &m, nil
}
