// Package bundle loads an OCI bundle's config.json and rewrites it in place
// without losing anything the runtime-spec Go types do not know about.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

var (
	// ErrNoBundle means the bundle directory does not exist.
	ErrNoBundle = errors.New("bundle not found")
	// ErrInvalidConfig means config.json is unreadable or not valid.
	ErrInvalidConfig = errors.New("invalid bundle config")
)

// Bundle is a loaded OCI bundle.
type Bundle struct {
	// Dir is the bundle directory, ConfigPath its config file.
	Dir        string
	ConfigPath string
	// Spec is a typed, read-only view of the parts of the config that
	// cfs-runtime reads. It is deliberately not the whole specs.Spec:
	// decoding that type costs about a millisecond of reflection on every
	// create. Change the config with the Set methods, which patch the JSON
	// document itself.
	Spec *View

	doc map[string]json.RawMessage
}

// Root and Hook are runtime-spec's (specs.Root, specs.Hook) with the same
// JSON: the runtime front loads bundles too, and linking specs-go would
// cost its every start the package's initialisation (it formats its
// version string). TestTypesAreTheSpecs holds them equal.
type (
	Root struct {
		Path     string `json:"path"`
		Readonly bool   `json:"readonly,omitempty"`
	}
	Hook struct {
		Path    string   `json:"path"`
		Args    []string `json:"args,omitempty"`
		Env     []string `json:"env,omitempty"`
		Timeout *int     `json:"timeout,omitempty"`
	}
)

// View is what cfs-runtime reads from a config.
type View struct {
	Root        *Root             `json:"root,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Load reads dir/name (name is normally "config.json").
func Load(dir, name string) (*Bundle, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBundle, fserr.New("", dir, err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrNoBundle, dir)
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, name)
	}
	data, err := rawfile.ReadRegular(p, MaxConfigSize)
	if err != nil {
		if hint := readHint(p, err); hint != "" {
			return nil, fmt.Errorf("%w: %s: %w%s", ErrInvalidConfig, p, errors.Unwrap(err), hint)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, fserr.New("", p, err))
	}
	doc, view, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, p, err)
	}
	return &Bundle{Dir: dir, ConfigPath: p, Spec: view, doc: doc}, nil
}

// MaxConfigSize is the largest config.json Load reads. Real ones are
// kilobytes (podman's, seccomp profile included, about 11 kB); the most a
// usable one can hold is a process environment and arguments within the
// kernel's ARG_MAX (a quarter of the stack limit: 2 MiB by default) plus
// Kubernetes' 256 KiB of annotations.
const MaxConfigSize = 4 << 20

// readHint says what to do about a config.json that is not a regular file
// within the size limit.
func readHint(p string, err error) string {
	switch {
	case errors.Is(err, rawfile.ErrNotRegular):
		if target, lerr := os.Readlink(p); lerr == nil {
			return fmt.Sprintf(" (via symlink to %s); the bundle's config must be a regular file", target)
		}
		return "; the bundle's config must be a regular file"
	case errors.Is(err, rawfile.ErrTooLarge):
		return fmt.Sprintf("; cfs-runtime reads a config of at most %d MiB", MaxConfigSize>>20)
	}
	return ""
}

// parse checks and splits a config (scanConfig) and decodes the View,
// without reflection when it can (decodeFast), else with encoding/json.
func parse(data []byte) (map[string]json.RawMessage, *View, error) {
	members, err := scanConfig(data)
	var ke *keyError
	switch {
	case err == nil:
		if doc, view, ok := decodeMembers(members); ok {
			return doc, view, nil
		}
	case errors.As(err, &ke):
		// The scan stopped at the key: a syntax error after it comes
		// first, as encoding/json reports it.
		if json.Valid(data) {
			return nil, nil, err
		}
	}
	var doc map[string]json.RawMessage
	if jerr := json.Unmarshal(data, &doc); jerr != nil {
		return nil, nil, errors.New(describeJSONError(data, jerr))
	}
	if doc == nil {
		return nil, nil, errNotObject
	}
	if err != nil {
		// scanConfig refused what encoding/json accepts: a bug, and
		// nothing to start a container from.
		return nil, nil, fmt.Errorf("internal error: the config scan says %v, encoding/json accepts the document", err)
	}
	view := &View{}
	if jerr := json.Unmarshal(data, view); jerr != nil {
		return nil, nil, errors.New(describeJSONError(data, jerr))
	}
	return doc, view, nil
}

// describeJSONError adds the byte offset, line and column to a JSON error.
func describeJSONError(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err.Error()
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := bytes.Count(data[:off], []byte("\n")) + 1
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("invalid JSON at offset %d (line %d, column %d): %v", off, line, col, err)
}

// Annotations returns the config's annotations (never nil).
func (b *Bundle) Annotations() map[string]string {
	if b.Spec.Annotations == nil {
		return map[string]string{}
	}
	return b.Spec.Annotations
}

// RootPath returns root.path made absolute against the bundle directory
// ("" when the config has no root).
func (b *Bundle) RootPath() string {
	if b.Spec.Root == nil || b.Spec.Root.Path == "" {
		return ""
	}
	if filepath.IsAbs(b.Spec.Root.Path) {
		return filepath.Clean(b.Spec.Root.Path)
	}
	return filepath.Join(b.Dir, b.Spec.Root.Path)
}

// ReadOnly reports root.readonly.
func (b *Bundle) ReadOnly() bool { return b.Spec.Root != nil && b.Spec.Root.Readonly }

// SetRootPath points root.path at p, keeping root's other fields.
func (b *Bundle) SetRootPath(p string) error {
	if err := b.patch([]string{"root", "path"}, p); err != nil {
		return err
	}
	if b.Spec.Root == nil {
		b.Spec.Root = &Root{}
	}
	b.Spec.Root.Path = p
	return nil
}

// AppendHook adds h to hooks.<stage> (e.g. "poststop"), keeping the hooks
// already there except those for which replaces returns true (nil keeps
// all): a bundle used again must not collect one hook per earlier create.
func (b *Bundle) AppendHook(stage string, h Hook, replaces func(Hook) bool) error {
	hooks := map[string]json.RawMessage{}
	if raw, ok := b.doc["hooks"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return fmt.Errorf("%w: %s: hooks: %w", ErrInvalidConfig, b.ConfigPath, err)
		}
	}
	var list []json.RawMessage
	if raw, ok := hooks[stage]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("%w: %s: hooks.%s: %w", ErrInvalidConfig, b.ConfigPath, stage, err)
		}
	}
	if replaces != nil {
		kept := list[:0]
		for _, raw := range list {
			var old Hook
			if json.Unmarshal(raw, &old) == nil && replaces(old) {
				continue
			}
			kept = append(kept, raw)
		}
		list = kept
	}
	enc, err := json.Marshal(h)
	if err != nil {
		return err
	}
	list = append(list, enc)
	if hooks[stage], err = json.Marshal(list); err != nil {
		return err
	}
	if b.doc["hooks"], err = json.Marshal(hooks); err != nil {
		return err
	}
	return nil
}

// patch sets the value at a path of object keys, creating objects on the way
// and leaving every other key as it was in the file.
func (b *Bundle) patch(path []string, value any) error {
	enc, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := setIn(b.doc, path, enc); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, b.ConfigPath, err)
	}
	return nil
}

// setIn stores value at path inside obj, decoding and re-encoding only the
// objects along the path.
func setIn(obj map[string]json.RawMessage, path []string, value json.RawMessage) error {
	if len(path) == 1 {
		obj[path[0]] = value
		return nil
	}
	child := map[string]json.RawMessage{}
	if raw, ok := obj[path[0]]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &child); err != nil {
			return fmt.Errorf("%s is not an object: %w", path[0], err)
		}
	}
	if err := setIn(child, path[1:], value); err != nil {
		return err
	}
	enc, err := json.Marshal(child)
	if err != nil {
		return err
	}
	obj[path[0]] = enc
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// Save writes the config back atomically (temp file, fsync, rename).
func (b *Bundle) Save() error {
	data, err := json.Marshal(b.doc)
	if err != nil {
		return err
	}
	// No directory fsync: a bundle does not outlive a reboot's containers.
	return atomicfile.WriteFile(b.ConfigPath, data, 0o644, atomicfile.NoDirSync())
}
