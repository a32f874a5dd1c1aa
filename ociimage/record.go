package ociimage

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// A layer record, STORE/layers/HEX (HEX: the encoded part of the layer's
// diff_id), holds everything needed to apply the layer again without
// reading it: its tar entries in tar order, one composefs-dump(5) line
// each, after a header line:
//
//	#cfs-runtime-layer-record 1 sha256:DIFFID ENTRIES
//	/etc 0 40755 1 0 0 0 1700000000.0 - - -
//	/etc/passwd 1234 100644 1 0 0 0 1700000000.0 ab/cdef... - abcdef... user.x=1
//	/etc/.wh.old 0 100644 1 0 0 0 1700000000.0 - - -
//	/bin/sh 0 @100755 1 0 0 0 0.0 /bin/busybox - -
//
// Whiteouts keep their tar names (.wh.NAME, .wh..wh..opq), hardlinks are
// "@" lines naming their target (which may lie in a lower layer), files
// above 64 bytes name their object by PAYLOAD and DIGEST, smaller ones
// carry their CONTENT. The metadata is the tar's as read, whatever
// canonicalization an import applies later, so one record serves every
// mode. Records are keyed by diff_id (the uncompressed layer's digest), so
// the same layer compressed differently (podman save vs skopeo copy) is
// one record.
const (
	recordMagic   = "#cfs-runtime-layer-record"
	recordVersion = 1
	layersDir     = "layers"
)

// errBadRecord marks a record that cannot be used (the layer is then read
// again, and the record rewritten).
var errBadRecord = errors.New("unusable layer record")

// recordPath is the record of a layer as imports of st's algorithm apply
// it: layers/HEX for SHA-256 objects, layers/HEX.sha512 for SHA-512 ones
// (a layer imported both ways has both).
func recordPath(st *store.Store, diffID digest.Digest) string {
	name := diffID.Encoded()
	if st.Hash() == verity.SHA512 {
		name += ".sha512"
	}
	return filepath.Join(st.Dir(), layersDir, name)
}

func encodeRecord(diffID digest.Digest, entries []entry) []byte {
	buf := fmt.Appendf(nil, "%s %d %s %d\n", recordMagic, recordVersion, diffID, len(entries))
	for _, e := range entries {
		buf = composefs.AppendDumpLine(buf, e.path, e.node, e.link)
	}
	return buf
}

func decodeRecord(data []byte, diffID digest.Digest) ([]entry, error) {
	header, body, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(header))
	if len(f) != 4 || f[0] != recordMagic {
		return nil, fmt.Errorf("%w: no record header", errBadRecord)
	}
	if f[1] != strconv.Itoa(recordVersion) {
		return nil, fmt.Errorf("%w: record version %s (this cfs-runtime writes %d)", errBadRecord, f[1], recordVersion)
	}
	if f[2] != diffID.String() {
		return nil, fmt.Errorf("%w: record is for %s", errBadRecord, f[2])
	}
	count, err := strconv.Atoi(f[3])
	if err != nil || count < 0 {
		return nil, fmt.Errorf("%w: entry count %q", errBadRecord, f[3])
	}
	entries := make([]entry, 0, count)
	for line := range strings.Lines(string(body)) {
		p, n, link, err := composefs.ParseDumpLine(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", errBadRecord, len(entries)+2, err)
		}
		if n.Type() == composefs.ModeRegular && link == "" && n.Content == nil && n.Size > 0 && !strings.HasPrefix(filepath.Base(p), whiteoutPrefix) {
			if n.Digest == nil {
				return nil, fmt.Errorf("%w: line %d: %s has neither content nor digest", errBadRecord, len(entries)+2, p)
			}
			n.Payload = composefs.ObjectPath(n.Digest)
		}
		entries = append(entries, entry{path: p, node: n, link: link})
	}
	if len(entries) != count {
		return nil, fmt.Errorf("%w: %d entries, the header says %d", errBadRecord, len(entries), count)
	}
	return entries, nil
}

// loadRecord returns the recorded entries of a layer whose objects are all
// in the store. missing is set when the record exists but lacks objects
// (removed by gc): the layer must be read again.
func loadRecord(st *store.Store, diffID digest.Digest) (entries []entry, missing int, err error) {
	data, err := os.ReadFile(recordPath(st, diffID))
	if err != nil {
		return nil, 0, err
	}
	if entries, err = decodeRecord(data, diffID); err != nil {
		return nil, 0, err
	}
	for _, e := range entries {
		if e.node.Digest != nil && len(e.node.Digest) != st.Hash().Size() {
			return nil, 0, fmt.Errorf("%w: %s has a %d-byte digest, not a %s one", errBadRecord, e.path, len(e.node.Digest), st.Hash())
		}
		if e.node.Digest != nil && !st.HasObject(hex.EncodeToString(e.node.Digest), e.node.Size) {
			missing++
		}
	}
	return entries, missing, nil
}

// writeRecord writes the record of the layer diffID, encoded (encodeRecord).
func writeRecord(st *store.Store, diffID digest.Digest, record []byte) error {
	dir := filepath.Join(st.Dir(), layersDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("layer record: %w", err)
	}
	return atomicfile.WriteFile(recordPath(st, diffID), record, 0o600)
}
