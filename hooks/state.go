//go:build linux

package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrState: the OCI state a hook reads on stdin is missing or invalid.
var ErrState = errors.New("invalid OCI state on stdin")

// maxState bounds what is read from stdin. The state carries the
// annotations, signatures included (each at most 256 KiB, see attest).
const maxState = 4 << 20

// ReadState reads the runtime-spec state that the runtime passes to every
// hook on stdin ({"ociVersion", "id", "status", "pid", "bundle",
// "annotations"}). The id and an absolute bundle path are required.
func ReadState(r io.Reader) (*specs.State, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	if len(data) > maxState {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrState, maxState)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty (the runtime passes the container's state as JSON; run this as an OCI hook)", ErrState)
	}
	var st specs.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	switch {
	case st.ID == "":
		return nil, fmt.Errorf("%w: no id", ErrState)
	case st.Bundle == "":
		return nil, fmt.Errorf("%w: container %s: no bundle", ErrState, st.ID)
	case !filepath.IsAbs(st.Bundle):
		return nil, fmt.Errorf("%w: container %s: bundle %q is not an absolute path", ErrState, st.ID, st.Bundle)
	}
	return &st, nil
}
