// Package bundle loads an OCI bundle's config.json and rewrites it in place
// without losing anything the runtime-spec Go types do not know about.
//
// It links no encoding/json: the front, exec'd for every runtime call,
// loads bundles too (to start unsigned containers), and encoding/json's
// initialisation would cost each call. Its own scan reads the plain case
// (see scan.go); what is beyond it, the errors in encoding/json's words
// and the rewrite need a JSON (package bundlejson gives it), which the
// front does not give: it hands such a bundle to cfs-runtime-mount.
package bundle

import (
	"bytes"
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
	// ErrNeedsJSON means the config is beyond the plain case, or is to
	// be rewritten, and the bundle was loaded without a JSON.
	ErrNeedsJSON = errors.New("config.json needs encoding/json")
)

// JSON is encoding/json (package bundlejson gives it): it decodes a config
// beyond the plain case, words what is wrong with an invalid one, and
// encodes the rewrite.
type JSON interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
	// Describe words err, Unmarshal's error for data.
	Describe(data []byte, err error) string
}

// RawMessage is encoding/json's json.RawMessage: a JSON value kept as it is
// written, and encoded as it is.
type RawMessage []byte

// MarshalJSON returns m as the JSON encoding of m.
func (m RawMessage) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return m, nil
}

// UnmarshalJSON sets *m to a copy of data.
func (m *RawMessage) UnmarshalJSON(data []byte) error {
	if m == nil {
		return errors.New("bundle.RawMessage: UnmarshalJSON on nil pointer")
	}
	*m = append((*m)[0:0], data...)
	return nil
}

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

	doc  map[string]RawMessage
	json JSON // nil: loaded without one
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

// Load reads dir/name (name is normally "config.json"), with js for what is
// beyond the plain case (nil: ErrNeedsJSON, see the package comment).
func Load(dir, name string, js JSON) (*Bundle, error) {
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
	doc, view, err := parse(data, js)
	if errors.Is(err, ErrNeedsJSON) {
		return nil, fmt.Errorf("%w: %s", err, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, p, err)
	}
	return &Bundle{Dir: dir, ConfigPath: p, Spec: view, doc: doc, json: js}, nil
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
// without reflection when it can (decodeMembers), else with js.
func parse(data []byte, js JSON) (map[string]RawMessage, *View, error) {
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
		if validJSON(data) {
			return nil, nil, err
		}
	}
	if js == nil {
		return nil, nil, ErrNeedsJSON
	}
	var doc map[string]RawMessage
	if jerr := js.Unmarshal(data, &doc); jerr != nil {
		return nil, nil, errors.New(js.Describe(data, jerr))
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
	if jerr := js.Unmarshal(data, view); jerr != nil {
		return nil, nil, errors.New(js.Describe(data, jerr))
	}
	return doc, view, nil
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
	js := b.json
	if js == nil {
		return fmt.Errorf("%w: %s: rewriting it", ErrNeedsJSON, b.ConfigPath)
	}
	hooks := map[string]RawMessage{}
	if raw, ok := b.doc["hooks"]; ok && !isNull(raw) {
		if err := js.Unmarshal(raw, &hooks); err != nil {
			return fmt.Errorf("%w: %s: hooks: %w", ErrInvalidConfig, b.ConfigPath, err)
		}
	}
	var list []RawMessage
	if raw, ok := hooks[stage]; ok && !isNull(raw) {
		if err := js.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("%w: %s: hooks.%s: %w", ErrInvalidConfig, b.ConfigPath, stage, err)
		}
	}
	if replaces != nil {
		kept := list[:0]
		for _, raw := range list {
			var old Hook
			if js.Unmarshal(raw, &old) == nil && replaces(old) {
				continue
			}
			kept = append(kept, raw)
		}
		list = kept
	}
	enc, err := js.Marshal(h)
	if err != nil {
		return err
	}
	list = append(list, enc)
	if hooks[stage], err = js.Marshal(list); err != nil {
		return err
	}
	if b.doc["hooks"], err = js.Marshal(hooks); err != nil {
		return err
	}
	return nil
}

// patch sets the value at a path of object keys, creating objects on the way
// and leaving every other key as it was in the file.
func (b *Bundle) patch(path []string, value any) error {
	if b.json == nil {
		return fmt.Errorf("%w: %s: rewriting it", ErrNeedsJSON, b.ConfigPath)
	}
	enc, err := b.json.Marshal(value)
	if err != nil {
		return err
	}
	if err := setIn(b.json, b.doc, path, enc); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, b.ConfigPath, err)
	}
	return nil
}

// setIn stores value at path inside obj, decoding and re-encoding only the
// objects along the path.
func setIn(js JSON, obj map[string]RawMessage, path []string, value RawMessage) error {
	if len(path) == 1 {
		obj[path[0]] = value
		return nil
	}
	child := map[string]RawMessage{}
	if raw, ok := obj[path[0]]; ok && !isNull(raw) {
		if err := js.Unmarshal(raw, &child); err != nil {
			return fmt.Errorf("%s is not an object: %w", path[0], err)
		}
	}
	if err := setIn(js, child, path[1:], value); err != nil {
		return err
	}
	enc, err := js.Marshal(child)
	if err != nil {
		return err
	}
	obj[path[0]] = enc
	return nil
}

func isNull(raw RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// Save writes the config back atomically (temp file, fsync, rename).
func (b *Bundle) Save() error {
	if b.json == nil {
		return fmt.Errorf("%w: %s: rewriting it", ErrNeedsJSON, b.ConfigPath)
	}
	data, err := b.json.Marshal(b.doc)
	if err != nil {
		return err
	}
	// No directory fsync: a bundle does not outlive a reboot's containers.
	return atomicfile.WriteFile(b.ConfigPath, data, 0o644, atomicfile.NoDirSync())
}
