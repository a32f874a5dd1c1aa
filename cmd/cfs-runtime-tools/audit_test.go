package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/audit"
)

// audit reads the rotated files oldest first, then the file; --since
// filters by the record's time; a line that is not a record is an error
// naming its file and line.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	now := time.Now()
	line := func(id string, age time.Duration) string {
		e := audit.Event{Time: now.Add(-age), Decision: audit.Deny, ContainerID: id, Image: "quay.io/a/b:1", Reason: "why " + id}
		return string(e.JSON())
	}
	for f, text := range map[string]string{
		path + ".2": line("oldest", 3*time.Hour),
		path + ".1": line("older", 2*time.Hour) + line("old", 90*time.Minute),
		path:        line("new", time.Minute) + "\n",
	} {
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(out string) string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) > 2 {
				got = append(got, strings.TrimPrefix(f[2], "container="))
			}
		}
		return strings.Join(got, " ")
	}
	out, errOut, code := runSplit(t, "audit", "--file", path)
	if code != 0 || ids(out) != "oldest older old new" {
		t.Fatalf("audit: exit %d, %q %q", code, out, errOut)
	}
	if want := fmt.Sprintf(`%s deny container=new image="quay.io/a/b:1": why new`, now.Add(-time.Minute).UTC().Format(time.RFC3339)); !strings.Contains(out, want) {
		t.Fatalf("audit printed %q, want a line %q", out, want)
	}
	out, _, code = runSplit(t, "audit", "--file", path, "--since", "100m")
	if code != 0 || ids(out) != "old new" {
		t.Fatalf("--since 100m: exit %d, %q", code, out)
	}
	out, _, code = runSplit(t, "audit", "--file", path, "--json", "--since", now.Add(-2*time.Hour-time.Second).UTC().Format(time.RFC3339))
	if code != 0 || out != line("older", 2*time.Hour)+line("old", 90*time.Minute)+line("new", time.Minute) {
		t.Fatalf("--json --since TIME: exit %d, %q", code, out)
	}
	os.WriteFile(path+".1", []byte(line("older", 2*time.Hour)+"{not json\n"), 0o600)
	_, errOut, code = runSplit(t, "audit", "--file", path)
	if code != 1 || !strings.Contains(errOut, "cfs-runtime: audit: "+path+".1:2: not an audit record: ") {
		t.Fatalf("broken line: exit %d, %q", code, errOut)
	}
	_, errOut, code = runSplit(t, "audit", "--file", filepath.Join(dir, "none"))
	if code != 0 || errOut != "cfs-runtime: note: no audit file "+filepath.Join(dir, "none")+" yet: no decision recorded\n" {
		t.Fatalf("no file: exit %d, %q", code, errOut)
	}
}
