package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const infoVectors = "testdata/vectors/out"

// runInfo runs `cfs-runtime ARGS...` as a tool command and returns stdout.
func runInfo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(append([]string{"cfs-runtime"}, args...))
	return out.String(), err
}

// TestInfoVectors: `cfs-runtime info dump|ls|objects` print exactly what
// composefs-info printed for every golden image.
func TestInfoVectors(t *testing.T) {
	ents, err := os.ReadDir(infoVectors)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 15 {
		t.Fatalf("%d vectors, want 15", len(ents))
	}
	for _, e := range ents {
		img := filepath.Join(infoVectors, e.Name(), "image.cfs")
		for _, cmd := range []string{"dump", "ls", "objects"} {
			got, err := runInfo(t, "info", cmd, img)
			if err != nil {
				t.Fatalf("%s %s: %v", e.Name(), cmd, err)
			}
			want, err := os.ReadFile(filepath.Join(infoVectors, e.Name(), cmd+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s: info %s differs from composefs-info", e.Name(), cmd)
			}
		}
	}
}

func TestInfoMissingObjects(t *testing.T) {
	img := filepath.Join(infoVectors, "05-large-files", "image.cfs")
	base := t.TempDir()
	have := "da/286ea6642c252551f309b6ec3765b0863bdace3e74c0ee6d3bee12b3f1794d"
	os.MkdirAll(filepath.Join(base, "da"), 0o755)
	if err := os.WriteFile(filepath.Join(base, have), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "a5/0c05f4072af6969a3070019ef1dfd6116961259ce569d9902e95660e0b3309\n" +
		"ee/d0b48fedc2770500335cbb97bb11923f8fadbb3f89faf5d78775438b21abb7\n"
	for _, args := range [][]string{
		{"info", "missing-objects", "--basedir", base, img},
		{"info", "--basedir", base, "missing-objects", img},
	} {
		got, err := runInfo(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%q printed %q, want %q", args, got, want)
		}
	}
}

func TestInfoErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.cfs")
	data, err := os.ReadFile(filepath.Join(infoVectors, "03-small-files", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 0
	os.WriteFile(bad, data, 0o644)
	// A corrupt directory deep in the image: nothing may be printed.
	deep, err := os.ReadFile(filepath.Join(infoVectors, "07-deep", "image.cfs"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(deep, []byte("leaf.txt"))
	deep[i+4] = '/'
	badDeep := filepath.Join(t.TempDir(), "deep.cfs")
	os.WriteFile(badDeep, deep, 0o644)
	if out, err := runInfo(t, "info", "dump", badDeep); err == nil || !strings.Contains(err.Error(), "contains '/'") || out != "" {
		t.Errorf("dump of a corrupt image: error %v, output %q", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"info", "dump"}, "no IMAGE given"},
		{[]string{"info", "dump", bad}, "bad.cfs: invalid composefs image: bad composefs magic"},
		{[]string{"info", "frob", bad}, `unknown command "frob"`},
	} {
		_, err := runInfo(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
}
