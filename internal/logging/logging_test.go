package logging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenUnopenableIsNotFatal(t *testing.T) {
	l, c, err := Open("/proc/nonexistent/dir/log", "debug")
	if err == nil || l == nil || c == nil {
		t.Fatalf("got %v %v %v", l, c, err)
	}
	l.Info("goes nowhere")
	p := filepath.Join(t.TempDir(), "own.log")
	l, c, err = Open(p, "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", "v")
	c.Close()
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), "hidden") || !strings.Contains(string(data), "level=WARN msg=shown") {
		t.Errorf("log = %q", data)
	}
}
