package bundle

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
)

const sample = `{
  "ociVersion": "1.0.2",
  "process": {"args": ["sh"], "cwd": "/", "futureProcessField": {"x": [1, 2.50, 1e3]}},
  "root": {"path": "rootfs", "readonly": true, "futureRootField": "keep"},
  "annotations": {"a": "b"},
  "hooks": {"prestart": [{"path": "/bin/true"}]},
  "vendorExtension": {"big": 12345678901234567890}
}`

func writeBundle(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPatchKeepsUnknownFields(t *testing.T) {
	dir := writeBundle(t, sample)
	b, err := Load(dir, "config.json", bundlejson.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if b.RootPath() != filepath.Join(dir, "rootfs") || !b.ReadOnly() || b.Annotations()["a"] != "b" {
		t.Fatalf("view: root %q ro %v ann %v", b.RootPath(), b.ReadOnly(), b.Annotations())
	}
	if err := b.SetRootPath("/run/cfs-runtime/c1/merged"); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendHook("poststop", Hook{Path: "/usr/local/bin/cfs-runtime", Args: []string{"cfs-runtime", "cleanup", "old"}}, nil); err != nil {
		t.Fatal(err)
	}
	// A second create replaces the first one's hook.
	isOurs := func(h Hook) bool { return h.Path == "/usr/local/bin/cfs-runtime" }
	if err := b.AppendHook("poststop", Hook{Path: "/usr/local/bin/cfs-runtime", Args: []string{"cfs-runtime", "cleanup"}}, isOurs); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(sample), &want)
	want["root"].(map[string]any)["path"] = "/run/cfs-runtime/c1/merged"
	want["hooks"].(map[string]any)["poststop"] = []any{map[string]any{"path": "/usr/local/bin/cfs-runtime", "args": []any{"cfs-runtime", "cleanup"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patched config:\n%s", data)
	}
	// Numbers are kept as written, not rounded through float64.
	if !strings.Contains(string(data), "12345678901234567890") || !strings.Contains(string(data), "2.50") {
		t.Errorf("numbers changed: %s", data)
	}
	fi, _ := os.Stat(filepath.Join(dir, "config.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftovers in bundle: %v", entries)
	}
}

func TestSetRootPathWithoutRoot(t *testing.T) {
	dir := writeBundle(t, `{"ociVersion":"1.0.2"}`)
	b, err := Load(dir, "config.json", bundlejson.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if b.RootPath() != "" {
		t.Errorf("RootPath = %q", b.RootPath())
	}
	if err := b.SetRootPath("/m"); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if string(data) != `{"ociVersion":"1.0.2","root":{"path":"/m"}}` {
		t.Errorf("got %s", data)
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Load(missing, "config.json", bundlejson.JSON)
	// Worded without the strerror text podman misreads (package fserr),
	// still fs.ErrNotExist.
	if !errors.Is(err, ErrNoBundle) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "bundle not found: "+missing+" does not exist" {
		t.Errorf("missing bundle: %v", err)
	}
	empty := t.TempDir()
	_, err = Load(empty, "config.json", bundlejson.JSON)
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "invalid bundle config: "+filepath.Join(empty, "config.json")+" does not exist" {
		t.Errorf("missing config: %v", err)
	}
	bad := writeBundle(t, "{\n  \"ociVersion\": \"1.0.2\",\n  \"root\": {\"path\": 5}\n}")
	_, err = Load(bad, "config.json", bundlejson.JSON)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "at offset 47 (line 3, column 21)") {
		t.Errorf("type error: %v", err)
	}
	syn := writeBundle(t, "{\n  \"ociVersion\": \"1.0.2\",,\n}")
	_, err = Load(syn, "config.json", bundlejson.JSON)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "invalid JSON at offset 27 (line 2, column 26): invalid character ','") {
		t.Errorf("syntax error: %v", err)
	}
	arr := writeBundle(t, "null")
	if _, err = Load(arr, "config.json", bundlejson.JSON); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("null config: %v", err)
	}
}

// config.json must be a regular file within MaxConfigSize: a symlink to
// /dev/zero or a FIFO without a writer is refused at once, not read
// without end or waited on.
func TestLoadOnlyRegularConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	prefix := "invalid bundle config: " + p + ": "
	check := func(what, want string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := Load(dir, "config.json", bundlejson.JSON)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrInvalidConfig) || err.Error() != prefix+want {
				t.Errorf("%s:\n got %v\nwant %s", what, err, prefix+want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Load blocked", what)
		}
		os.Remove(p)
	}
	if err := os.Symlink("/dev/zero", p); err != nil {
		t.Fatal(err)
	}
	check("symlink to /dev/zero", "not a regular file: a character device (via symlink to /dev/zero); the bundle's config must be a regular file")
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	check("FIFO", "not a regular file: a FIFO; the bundle's config must be a regular file")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	check("directory", "not a regular file: a directory; the bundle's config must be a regular file")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, MaxConfigSize+1); err != nil {
		t.Fatal(err)
	}
	check("too large", "file too large: 4194305 bytes, more than 4194304; cfs-runtime reads a config of at most 4 MiB")

	// A symlink to a regular file is followed (as runc's os.Open does),
	// and a config of exactly MaxConfigSize is read.
	full := filepath.Join(t.TempDir(), "config.json")
	pad := MaxConfigSize - len(`{"root": {"path": "r"}, "x": ""}`)
	if err := os.WriteFile(full, []byte(`{"root": {"path": "r"}, "x": "`+strings.Repeat("x", pad)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(full, p); err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir, "config.json", bundlejson.JSON)
	if err != nil || b.RootPath() != filepath.Join(dir, "r") {
		t.Fatalf("symlink to a config of MaxConfigSize bytes: %v", err)
	}
}

// Root and Hook are runtime-spec's: the same fields (the conversions
// compile only then), types and JSON names.
func TestTypesAreTheSpecs(t *testing.T) {
	_, _ = specs.Root(Root{}), specs.Hook(Hook{})
	for _, pair := range [][2]reflect.Type{{reflect.TypeFor[Root](), reflect.TypeFor[specs.Root]()}, {reflect.TypeFor[Hook](), reflect.TypeFor[specs.Hook]()}} {
		for i := range pair[0].NumField() {
			if a, b := pair[0].Field(i).Tag.Get("json"), pair[1].Field(i).Tag.Get("json"); a != b {
				t.Errorf("%s.%s: json %q, runtime-spec %q", pair[0], pair[0].Field(i).Name, a, b)
			}
		}
	}
}

// Without a JSON (the front), Load reads a plain config, and leaves one
// beyond the plain case, or its rewrite, to a program that has one: never
// a guess.
func TestLoadWithoutJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(config string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"root":{"path":"rootfs"},"annotations":{"a":"b"}}`)
	b, err := Load(dir, "config.json", nil)
	if err != nil || b.RootPath() != filepath.Join(dir, "rootfs") || b.Annotations()["a"] != "b" {
		t.Fatalf("plain config: %+v, %v", b, err)
	}
	if err := b.SetRootPath("/x"); !errors.Is(err, ErrNeedsJSON) {
		t.Errorf("SetRootPath: %v, want %v", err, ErrNeedsJSON)
	}
	if err := b.Save(); !errors.Is(err, ErrNeedsJSON) {
		t.Errorf("Save: %v, want %v", err, ErrNeedsJSON)
	}
	for _, config := range []string{
		`{"annotations":{"a":"\u0062"}}`,   // an escape in a value
		`{"root":{"path":1}}`,              // a type encoding/json refuses
		`{"root":{"path":"x"}`,             // a syntax error
		`{"annotations":{"a":"b","a":"c"}`, // a duplicate key, then a syntax error
	} {
		write(config)
		if _, err := Load(dir, "config.json", nil); !errors.Is(err, ErrNeedsJSON) {
			t.Errorf("%s: %v, want %v", config, err, ErrNeedsJSON)
		}
		if _, err := Load(dir, "config.json", bundlejson.JSON); errors.Is(err, ErrNeedsJSON) {
			t.Errorf("%s with a JSON: %v", config, err)
		}
	}
	write(`{"annotations":{"a":"b","a":"c"}}`) // refused by the scan itself
	if _, err := Load(dir, "config.json", nil); err == nil || errors.Is(err, ErrNeedsJSON) || !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("duplicate key without a JSON: %v", err)
	}
}
