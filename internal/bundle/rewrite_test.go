package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
)

// What create does to a bundle (create.go's patchBundle), with a hook path
// and mount point of its own.
const (
	testSelf = "/usr/local/bin/cfs-runtime"
	testRoot = "/run/cfs-runtime/c1/merged"
)

var testHook = Hook{Path: testSelf, Args: []string{"cfs-runtime", "cleanup", "c1"}}

func isTestHook(h Hook) bool { return h.Path == testSelf && slices.Contains(h.Args, "cleanup") }

// checkRewrite: Load refuses the config, or runc (encoding/json into
// specs.Spec) reads the patched file as the original apart from root.path
// and create's poststop hook, which comes last after the hooks that were
// there (an earlier create's own excepted). The View Load returns is what
// runc reads. A refusal is one that the reference (refScan) or runc makes.
func checkRewrite(t *testing.T, data []byte) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var orig specs.Spec
	origErr := json.Unmarshal(data, &orig)
	b, err := Load(dir, "config.json", bundlejson.JSON)
	if err != nil {
		if _, rerr := refScan(data); rerr == nil && origErr == nil {
			t.Fatalf("%q: Load refused what runc reads and the reference accepts: %v", data, err)
		}
		return
	}
	if origErr == nil {
		// The View is what runc reads.
		if (b.Spec.Root == nil) != (orig.Root == nil) || (orig.Root != nil && specs.Root(*b.Spec.Root) != *orig.Root) {
			t.Fatalf("%q: View root %+v, runc's %+v", data, b.Spec.Root, orig.Root)
		}
		want := orig.Annotations
		if want == nil {
			want = map[string]string{}
		}
		if !reflect.DeepEqual(b.Annotations(), want) {
			t.Fatalf("%q: View annotations %q, runc's %q", data, b.Annotations(), want)
		}
	}
	if err := b.SetRootPath(testRoot); err != nil {
		if origErr == nil {
			t.Fatalf("%q: SetRootPath: %v", data, err)
		}
		return
	}
	if err := b.AppendHook("poststop", testHook, isTestHook); err != nil {
		if origErr == nil {
			t.Fatalf("%q: AppendHook: %v", data, err)
		}
		return
	}
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	patched, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var got specs.Spec
	gotErr := json.Unmarshal(patched, &got)
	if (origErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: runc reads the original with error %v, the patched %q with %v", data, origErr, patched, gotErr)
	}
	if origErr != nil {
		return
	}
	if got.Root == nil || got.Root.Path != testRoot {
		t.Fatalf("%q: patched root %+v", data, got.Root)
	}
	if got.Hooks == nil || len(got.Hooks.Poststop) == 0 || !reflect.DeepEqual(got.Hooks.Poststop[len(got.Hooks.Poststop)-1], specs.Hook(testHook)) {
		t.Fatalf("%q: patched hooks %+v: want create's poststop hook last", data, got.Hooks)
	}
	// Apart from those two, the same.
	got.Root.Path = ""
	got.Hooks.Poststop = got.Hooks.Poststop[:len(got.Hooks.Poststop)-1]
	if orig.Root == nil {
		orig.Root = &specs.Root{}
	}
	orig.Root.Path = ""
	if orig.Hooks == nil {
		orig.Hooks = &specs.Hooks{}
	}
	orig.Hooks.Poststop = slices.DeleteFunc(orig.Hooks.Poststop, func(h specs.Hook) bool { return isTestHook(Hook(h)) })
	if len(orig.Hooks.Poststop) == 0 && len(got.Hooks.Poststop) == 0 {
		orig.Hooks.Poststop, got.Hooks.Poststop = nil, nil
	}
	if !reflect.DeepEqual(orig, got) {
		o, _ := json.Marshal(orig)
		g, _ := json.Marshal(got)
		t.Fatalf("%q: runc reads the patched config differently:\noriginal %s\npatched  %s\nfile %s", data, o, g, patched)
	}
}

func TestRewriteMeansTheSame(t *testing.T) {
	for _, s := range rewriteSeeds(t) {
		checkRewrite(t, s)
	}
}

// Issue #15: a config with two "linux" objects ran namespaced under runc
// and lost its namespaces in the rewrite. It is refused, naming the key.
func TestLoadRefusesDuplicateLinux(t *testing.T) {
	dir := writeBundle(t, configSeeds[0])
	_, err := Load(dir, "config.json", bundlejson.JSON)
	want := "invalid bundle config: " + filepath.Join(dir, "config.json") + `: duplicate key "linux" at top level: runc would merge or overwrite the values; write each key once`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	var spec specs.Spec
	if err := json.Unmarshal([]byte(configSeeds[0]), &spec); err != nil || len(spec.Linux.Namespaces) != 2 || len(spec.Linux.MaskedPaths) != 1 {
		t.Fatalf("the seed no longer shows encoding/json merging: %+v, %v", spec.Linux, err)
	}
}

// rewriteSeeds: configSeeds, decodeFastCases, podman's config, and one in
// which every field of specs.Spec is set.
func rewriteSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, s := range configSeeds {
		out = append(out, []byte(s))
	}
	for _, c := range decodeFastCases {
		out = append(out, []byte(c.Input))
	}
	podman, err := os.ReadFile("testdata/podman-config.json")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, podman, fullSpec(t))
}

// fullSpec is a config with a value in every field that specs.Spec has
// (each pointer set, each slice and map with one element), so that every
// struct and field of the schema is in the corpus.
func fullSpec(t testing.TB) []byte {
	var fill func(v reflect.Value, depth int)
	fill = func(v reflect.Value, depth int) {
		switch v.Kind() {
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), depth)
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					fill(v.Field(i), depth+1)
				}
			}
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			fill(v.Index(0), depth)
		case reflect.Map:
			v.Set(reflect.MakeMap(v.Type()))
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, depth)
			v.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), e)
		case reflect.String:
			v.SetString("s")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v.SetInt(1)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			v.SetUint(1)
		case reflect.Interface:
			v.Set(reflect.ValueOf(map[string]any{"k": "v"}))
		}
	}
	var spec specs.Spec
	fill(reflect.ValueOf(&spec).Elem(), 0)
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func FuzzRewrite(f *testing.F) {
	for _, s := range rewriteSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkRewrite)
}
