// Package config loads cfs-runtime's own configuration file. It reads the
// plain subset of TOML the file is written in (internal/plaintoml) and
// links no TOML decoder: the cfs-runtime front, exec'd for every runtime
// call, uses it as it is. Package tomlconfig adds go-toml for everything
// else, errors included (a Decoder for Load and Salvage).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

const (
	// DefaultPath is where the configuration lives unless CFS_RUNTIME_CONFIG
	// (or --cfs-config) says otherwise.
	DefaultPath = "/etc/cfs-runtime/config.toml"
	// EnvPath overrides DefaultPath.
	EnvPath = "CFS_RUNTIME_CONFIG"
)

var (
	// ErrInvalid marks a configuration file that cannot be used.
	ErrInvalid = errors.New("invalid configuration")
	// ErrNotPlain: the file is not in the plain subset of TOML and Load
	// was given no Decoder for the rest.
	ErrNotPlain = errors.New("configuration outside the plain subset of TOML")
)

// Decoder decodes what the plain path declines: with go-toml, in package
// tomlconfig.
type Decoder interface {
	// Strict decodes data into c, refusing unknown keys, and words its
	// errors "file:line: key k: problem".
	Strict(path string, data []byte, c *Config) error
	// Lenient decodes what it can, ignoring unknown keys.
	Lenient(data []byte, c *Config) error
}

// Config is cfs-runtime's configuration. A missing file means defaults.
type Config struct {
	// Runtime is the real OCI runtime; empty = search oci.DefaultRuntimes.
	Runtime string `toml:"runtime"`
	// StoreDir holds composefs images and content objects.
	StoreDir string `toml:"store_dir"`
	// StateDir holds per-container mount state.
	StateDir string `toml:"state_dir"`
	// LogFile is cfs-runtime's own log (never the runtime's --log); empty
	// disables it.
	LogFile string `toml:"log_file"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `toml:"log_level"`
	// Policy is the trust policy file (see package attest).
	Policy string `toml:"policy"`
	// ContainerdAddress and ContainerdNamespace reach containerd's API,
	// where create reads the manifest of an image that containerd's CRI
	// names (package engineimage).
	ContainerdAddress   string `toml:"containerd_address"`
	ContainerdNamespace string `toml:"containerd_namespace"`
	// ContainersStorage is containers-storage's root (CRI-O, podman).
	ContainersStorage string `toml:"containers_storage"`
	// AuditFile receives one JSON line per trust decision (see package
	// audit); empty disables the file (the journal still gets them).
	AuditFile string `toml:"audit_file"`

	// Path is the file the configuration was read from ("" = defaults only).
	Path string `toml:"-"`
}

// Defaults returns the configuration used when no file exists.
func Defaults() Config {
	return Config{
		StoreDir: "/var/lib/cfs-runtime",
		StateDir: "/run/cfs-runtime",
		LogFile:  "/var/log/cfs-runtime.log",
		LogLevel: "info",
		Policy:   "/etc/cfs-runtime/policy.toml",

		ContainerdAddress:   "/run/containerd/containerd.sock",
		ContainerdNamespace: "k8s.io",
		ContainersStorage:   "/var/lib/containers/storage",
		// audit.DefaultPath (not imported: the front links this package).
		AuditFile: "/var/log/cfs-runtime/audit.jsonl",
	}
}

// PathFromEnv returns the configuration path: override if not empty, then
// $CFS_RUNTIME_CONFIG, then DefaultPath.
func PathFromEnv(override string) string { return Path(override, os.Getenv) }

// Path is PathFromEnv reading the environment with getenv (the front's is
// package environ's).
func Path(override string, getenv func(string) string) string {
	if override != "" {
		return override
	}
	if p := getenv(EnvPath); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads the configuration at path. A missing file yields the defaults;
// an invalid one an error naming the file, the line and the key. A file
// outside the plain subset needs dec (nil: ErrNotPlain).
func Load(path string, dec Decoder) (Config, error) {
	var c Config
	err := c.load(path, dec)
	return c, err
}

// load is Load into c. The front's state path reads the file through
// pointers only (SalvageInto): a Config is 200 bytes, and a copy of it in
// each frame above rawfile.ReadFile made the main goroutine grow its
// stack there.
func (c *Config) load(path string, dec Decoder) error {
	*c = Defaults()
	data, err := rawfile.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, fserr.New("configuration file", path, err))
	}
	c.Path = path
	if !plainConfig(data, c) {
		if dec == nil {
			return fmt.Errorf("%w: %s", ErrNotPlain, path)
		}
		if err := dec.Strict(path, data, c); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if err := c.validate(data); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (c *Config) validate(data []byte) error {
	at := func(key string) string { return fmt.Sprintf("%s:%d: key %s", c.Path, lineOf(data, key), key) }
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s: %q is not one of debug, info, warn, error", at("log_level"), c.LogLevel)
	}
	// In a fixed order, not a map's: the error names the
	// same key every time.
	for _, p := range [...]struct{ key, v string }{
		{"runtime", c.Runtime}, {"store_dir", c.StoreDir}, {"state_dir", c.StateDir},
		{"log_file", c.LogFile}, {"policy", c.Policy}, {"audit_file", c.AuditFile},
		{"containerd_address", c.ContainerdAddress}, {"containers_storage", c.ContainersStorage},
	} {
		if p.v != "" && !filepath.IsAbs(p.v) {
			return fmt.Errorf("%s: %q is not an absolute path", at(p.key), p.v)
		}
	}
	if c.StoreDir == "" || c.StateDir == "" {
		return fmt.Errorf("%s: store_dir and state_dir must not be empty", c.Path)
	}
	return nil
}

// lineOf finds the line where key is assigned (0 if not found).
func lineOf(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		k, _, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return i + 1
		}
	}
	return 0
}

// Salvage loads path as Load does. When that fails it also returns the
// best configuration it can read from the file: the keys that decode and
// validate, defaults for the rest (all defaults when the file is not TOML).
// Commands that only reach a container the runtime already runs (state,
// kill, exec, delete, the poststop cleanup) use it, so that a broken file
// never strands running containers; create and run refuse on the error.
//
// Without dec, a file outside the plain subset yields the defaults and an
// error wrapping ErrNotPlain: the caller cannot tell a valid file from a
// broken one and should hand the call to a program that links a Decoder.
func Salvage(path string, dec Decoder) (Config, error) {
	var c Config
	err := SalvageInto(&c, path, dec)
	return c, err
}

// SalvageInto is Salvage into *c, for the front, which reads the
// configuration for every runtime call: no copy of a Config on its stack
// (see load).
func SalvageInto(c *Config, path string, dec Decoder) error {
	err := c.load(path, dec)
	if err == nil || errors.Is(err, ErrNotPlain) {
		return err
	}
	c.salvage(path, dec)
	return err
}

// salvage is the rest of Salvage, for a broken file: a function of its
// own, so that the frames of every runtime call's Salvage stay small (the
// front's main goroutine then needs no larger stack).
func (best *Config) salvage(path string, dec Decoder) {
	*best = Defaults()
	best.Path = path
	data, rerr := rawfile.ReadFile(path)
	var raw Config
	if rerr != nil || dec == nil || dec.Lenient(data, &raw) != nil {
		return
	}
	for _, f := range []struct{ from, to *string }{
		{&raw.Runtime, &best.Runtime}, {&raw.StoreDir, &best.StoreDir}, {&raw.StateDir, &best.StateDir},
		{&raw.LogFile, &best.LogFile}, {&raw.Policy, &best.Policy}, {&raw.AuditFile, &best.AuditFile},
		{&raw.ContainerdAddress, &best.ContainerdAddress}, {&raw.ContainersStorage, &best.ContainersStorage},
	} {
		if filepath.IsAbs(*f.from) {
			*f.to = *f.from
		}
	}
	switch raw.LogLevel {
	case "debug", "info", "warn", "error":
		best.LogLevel = raw.LogLevel
	}
}
