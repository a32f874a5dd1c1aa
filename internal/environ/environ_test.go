package environ

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// In a process started with duplicate keys, empty entries, entries without
// "=" and an empty key, Environ and Getenv return what os.Environ and
// os.Getenv do (a child of the test, which changes nothing first).
func TestSameAsOS(t *testing.T) {
	if os.Getenv("ENVIRON_TEST_CHILD") == "1" {
		return // the child's answer is in TestMain
	}
	env := []string{"ENVIRON_TEST_CHILD=1", "A=1", "B=2", "A=3", "", "NOEQ", "=empty", "=again", "C=x=y", "NOEQ", "B=", "D==d", "AB=1", "AB=2", "Q", "CD=3"}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := os.StartProcess(os.Args[0], []string{os.Args[0], "-test.run=^TestSameAsOS$"}, &os.ProcAttr{Env: env, Files: []*os.File{nil, w, os.Stderr}})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	var got report
	if err := json.NewDecoder(r).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Wait(); !st.Success() {
		t.Fatalf("child: %v", st)
	}
	if !slices.Equal(got.Environ, got.OSEnviron) {
		t.Errorf("Environ() = %q\nos.Environ() = %q", got.Environ, got.OSEnviron)
	}
	for k, v := range got.OSGetenv {
		if got.Getenv[k] != v {
			t.Errorf("Getenv(%q) = %q, os.Getenv: %q", k, got.Getenv[k], v)
		}
	}
	if len(got.OSEnviron) != 11 {
		t.Errorf("the child's environment is not the one given: %q", got.OSEnviron)
	}
}

type report struct {
	Environ, OSEnviron []string
	Getenv, OSGetenv   map[string]string
}

func TestMain(m *testing.M) {
	if os.Getenv("ENVIRON_TEST_CHILD") != "1" {
		os.Exit(m.Run())
	}
	// Ours first: os.Getenv builds syscall's table, and changes nothing
	// that runtimeEnvs reads.
	r := report{Environ: Environ(), Getenv: map[string]string{}, OSGetenv: map[string]string{}}
	keys := []string{"A", "B", "C", "D", "", "NOEQ", "MISSING", "ENVIRON_TEST_CHILD", "AB", "CD", "Q"}
	for _, k := range keys {
		r.Getenv[k] = Getenv(k)
	}
	for _, k := range keys {
		r.OSGetenv[k] = os.Getenv(k)
	}
	r.OSEnviron = os.Environ()
	json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}
