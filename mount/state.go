//go:build linux

package mount

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
)

const stateVersion = 1

// State is what Mount recorded in <state dir>/state.json.
type State struct {
	Version        int       `json:"version"`
	Image          string    `json:"image"`               // where the image came from (the store's images/<digest>)
	ImageCopy      bool      `json:"imageCopy,omitempty"` // mounted from a private copy of the verified bytes (ImageBytes)
	Digest         string    `json:"digest,omitempty"`
	ObjectsDir     string    `json:"objectsDir"`
	StateDir       string    `json:"stateDir"`
	Lower          string    `json:"lower"` // where the EROFS was mounted while the overlay was set up
	Upper          string    `json:"upper,omitempty"`
	Work           string    `json:"work,omitempty"`
	Merged         string    `json:"merged"`
	ReadOnly       bool      `json:"readOnly"`
	Verity         string    `json:"verity"` // "require" or "off"
	FileBacked     bool      `json:"fileBacked"`
	LoopDevice     string    `json:"loopDevice,omitempty"` // autoclear: gone with the overlay
	OverlaySyntax  string    `json:"overlaySyntax"`        // SyntaxFsconfig or SyntaxLegacy
	OverlayOptions string    `json:"overlayOptions"`       // as mount -o would take them
	Created        time.Time `json:"created"`
}

func writeState(dir string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateName), append(data, '\n'), 0o600, atomicfile.NoDirSync()); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// ReadState reads the State that Mount recorded in stateDir.
func ReadState(stateDir string) (State, error) {
	var st State
	data, err := os.ReadFile(filepath.Join(stateDir, stateName))
	if err != nil {
		return st, fmt.Errorf("mount state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("mount state %s: %w", filepath.Join(stateDir, stateName), err)
	}
	return st, nil
}

// ContainerState is a container's state directory under a parent.
type ContainerState struct {
	ID string
	// State is what Mount recorded; Err why it cannot be read.
	State State
	Err   error
}

// States lists the container state directories under parent (what Mount
// made for each container), with their recorded State. A missing parent
// has none.
func States(parent string) ([]ContainerState, error) {
	ents, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container state: %w", err)
	}
	var out []ContainerState
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := ReadState(filepath.Join(parent, e.Name()))
		out = append(out, ContainerState{ID: e.Name(), State: st, Err: err})
	}
	return out, nil
}
