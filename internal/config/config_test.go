package config_test

import (
	"errors"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/config/tomlconfig"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMissingFileIsDefaults(t *testing.T) {
	c, err := tomlconfig.Load(filepath.Join(t.TempDir(), "none.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c != config.Defaults() {
		t.Errorf("got %+v, want defaults", c)
	}
}

func TestLoad(t *testing.T) {
	p := write(t, "# cfs\nruntime = \"/usr/sbin/runc\"\nstore_dir = \"/s\"\nlog_level = \"debug\"\n")
	c, err := tomlconfig.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Defaults()
	want.Runtime, want.StoreDir, want.LogLevel, want.Path = "/usr/sbin/runc", "/s", "debug", p
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct{ content, want string }{
		{"runtime = \"/r\"\nbogus = 1\n", ":2: key bogus: unknown key"},
		{"runtime = \"/r\"\n\nstore_dir = 5\n", ":3: key store_dir:"},
		{"runtime = \n", ":1:"},
		{"log_level = \"loud\"\n", `:1: key log_level: "loud" is not one of debug, info, warn, error`},
		{"\nruntime = \"runc\"\n", `:2: key runtime: "runc" is not an absolute path`},
		// Several bad paths: always the first in the Config's order.
		{"policy = \"p\"\nstate_dir = \"s\"\nruntime = \"r\"\n", `:3: key runtime: "r" is not an absolute path`},
	}
	for _, tc := range tests {
		p := write(t, tc.content)
		_, err := tomlconfig.Load(p)
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("%q: err = %v, want config.ErrInvalid", tc.content, err)
		}
		if !strings.Contains(err.Error(), p+tc.want) {
			t.Errorf("%q: error %q does not contain %q", tc.content, err, p+tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

func TestPathFromEnv(t *testing.T) {
	t.Setenv(config.EnvPath, "/env.toml")
	if config.PathFromEnv("") != "/env.toml" || config.PathFromEnv("/o.toml") != "/o.toml" {
		t.Error("env override")
	}
	t.Setenv(config.EnvPath, "")
	if config.PathFromEnv("") != config.DefaultPath {
		t.Error("default")
	}
}

// A configuration that exists but cannot be read is named as a file with
// what is wrong with it, in words the fserr package chose (podman misreads
// the system's texts for EACCES and ENOENT); the errno stays reachable.
func TestUnreadableFileIsNamed(t *testing.T) {
	dir := t.TempDir()
	_, err := tomlconfig.Load(dir)
	want := "invalid configuration: configuration file " + dir + ": read: is a directory"
	if err == nil || err.Error() != want || !errors.Is(err, config.ErrInvalid) || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// Without a Decoder, a file outside the plain subset is neither loaded nor
// refused: the front hands such calls to cfs-runtime-mount.
func TestNotPlainWithoutDecoder(t *testing.T) {
	p := write(t, "runtime = \"/usr/sbin/runc\"\n[extra]\nx = 1\n")
	if _, err := config.Load(p, nil); !errors.Is(err, config.ErrNotPlain) {
		t.Fatalf("Load: %v, want ErrNotPlain", err)
	}
	if c, err := config.Salvage(p, nil); !errors.Is(err, config.ErrNotPlain) || c.Runtime != "" {
		t.Fatalf("Salvage: %+v, %v", c, err)
	}
	if _, err := tomlconfig.Load(p); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("tomlconfig.Load: %v", err)
	}
	plain := write(t, "runtime = \"/usr/sbin/runc\"\n")
	if c, err := config.Load(plain, nil); err != nil || c.Runtime != "/usr/sbin/runc" {
		t.Fatalf("plain: %+v, %v", c, err)
	}
}
