package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
)

// Seal is what the sealed manifest an image was imported from said
// (STORE/seals/DIGEST.json): its composefs annotations named this image,
// with these signatures, and whether the trust policy accepted one of them
// when it was imported. A record for `images` to show; create verifies the
// container's own annotations again, whatever this says.
type Seal struct {
	Source   string `json:"source"`   // the reference it was imported from
	Manifest string `json:"manifest"` // the sealed manifest's digest
	// Signatures are the kinds of signature present ("cosign", "pkcs7").
	Signatures []string `json:"signatures"`
	// Verified: the policy in force at import accepted a signature, by
	// the policy's Signer entry; KeyID is the SHA-256 of the signing
	// public key (hex), Detail the signature's description.
	Verified bool   `json:"verified"`
	Signer   string `json:"signer,omitempty"`
	KeyID    string `json:"keyId,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// SetSeal records the seal of an image (replacing an earlier record).
func (s *Store) SetSeal(image string, seal Seal) error {
	if _, err := parseDigest(image); err != nil {
		return err
	}
	data, err := json.MarshalIndent(seal, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, "seals")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	p := filepath.Join(dir, image+".json")
	data = append(data, '\n')
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil // a re-pull rewrites nothing
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// Seal returns the recorded seal of an image, or nil when it has none.
func (s *Store) Seal(image string) (*Seal, error) {
	if _, err := parseDigest(image); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "seals", image+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var seal Seal
	if err := json.Unmarshal(data, &seal); err != nil {
		return nil, fmt.Errorf("seal of %s: %w", image, err)
	}
	return &seal, nil
}
