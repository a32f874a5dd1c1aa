package runtimelog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var when = time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)

func TestFailureLine(t *testing.T) {
	got := string(FailureLine("json", `cfs-runtime: bad "bundle" <x>`, when))
	want := `{"level":"error","msg":"cfs-runtime: bad \"bundle\" \u003cx\u003e","time":"2026-11-25T19:00:00Z"}` + "\n"
	if got != want {
		t.Errorf("json:\n got %q\nwant %q", got, want)
	}
	got = string(FailureLine("text", `cfs-runtime: bad "bundle"`, when))
	want = `time="2026-11-25T19:00:00Z" level=error msg="cfs-runtime: bad \"bundle\""` + "\n"
	if got != want {
		t.Errorf("text:\n got %q\nwant %q", got, want)
	}
}

func TestAppendFailure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log.json")
	os.WriteFile(p, []byte("{\"level\":\"info\",\"msg\":\"before\"}\n"), 0o644)
	if err := AppendFailure(p, "json", "cfs-runtime: x", when); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || lines[1] != `{"level":"error","msg":"cfs-runtime: x","time":"2026-11-25T19:00:00Z"}` {
		t.Errorf("log = %q", data)
	}
	if err := AppendFailure(filepath.Join(p, "not-a-dir"), "json", "x", when); err == nil {
		t.Error("expected an error for an unopenable log")
	}
	if err := AppendFailure("", "json", "x", when); err != nil {
		t.Error(err)
	}
}
