package oci

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRuncDifferential runs a corpus of create and run command lines
// through the real runc and compares the container runc starts with what
// ParseLine(Runc) decides, and with runcOracle. runc is observed, not
// trusted to fail: every bundle's config.json has a createRuntime hook that
// writes the container state runc passes it (the id and the bundle runc
// chdir'd to) and then fails, so runc gets as far as starting the
// container and then destroys it.
func TestRuncDifferential(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and runc")
	}
	top := t.TempDir()
	cwd := filepath.Join(top, "cwd")
	out := filepath.Join(top, "state.json")
	b2 := filepath.Join(top, "B2")
	for _, dir := range []string{cwd, filepath.Join(cwd, "B1"), filepath.Join(cwd, "-x"), filepath.Join(cwd, "--"), filepath.Join(cwd, "ida"), b2} {
		writeHookBundle(t, dir, out)
	}
	if err := os.Mkdir(filepath.Join(cwd, "R"), 0o700); err != nil {
		t.Fatal(err)
	}
	// runc's corpus leaves out what would make it fail for reasons other
	// than its command line (no systemd, no console socket).
	var vocab []string
	for _, w := range runcVocabulary {
		if w != "B2" && w != "-bundle=B2" {
			vocab = append(vocab, w)
		}
	}
	vocab = append(vocab, b2, "-b="+b2)
	corpus := argvCorpus(3, 2500, append(vocab, "ida", "ida", "--bundle", "B1"), runcGlobalVocabulary)
	started, postParseFailures := 0, 0
	postParse := regexp.MustCompile(`runc (create|run) failed: `)
	for i, argv := range corpus {
		root := filepath.Join(top, "root", strconv.Itoa(i))
		full := append([]string{"--root", root}, argv...)
		os.Remove(out)
		cmd := exec.Command(runc, full...)
		cmd.Dir = cwd
		msg, runErr := cmd.CombinedOutput()
		var real *Line
		var realErr error
		if st, err := os.ReadFile(out); err == nil {
			var state struct{ ID, Bundle string }
			if err := json.Unmarshal(st, &state); err != nil {
				t.Fatal(err)
			}
			cmdName := "create"
			if l, _ := runcOracle(full); l != nil && l.Command != "" {
				cmdName = l.Command
			}
			real = &Line{Command: cmdName, Start: &Start{ID: state.ID, Bundle: state.Bundle}}
			started++
		} else if runErr != nil && postParse.Match(msg) {
			// runc read the line and failed later (no such bundle, an
			// invalid id): no container, and nothing to compare but the
			// reading, which the oracle has.
			postParseFailures++
			continue
		} else if runErr != nil {
			realErr = errors.New(strings.TrimSpace(string(msg)))
		} else {
			real = &Line{} // help or version
		}
		ours, oursErr := ParseLine(Runc, full)
		if oursErr == nil && ours.Start != nil && !ours.Start.Help {
			// Compare where the bundle is, as runc reports it (its working
			// directory after the chdir).
			b, _ := ours.Start.Paths(cwd)
			if rb, err := filepath.EvalSymlinks(b); err == nil {
				b = rb
			}
			s := *ours.Start
			s.Bundle = b
			ours = &Line{Command: ours.Command, Start: &s}
		}
		if err := agreeRunc(full, ours, oursErr, real, realErr); err != nil {
			t.Errorf("runc: %v", err)
		}
		oracle, oracleErr := runcOracle(full)
		oracleStarts := oracleErr == nil && oracle.Start != nil && !oracle.Start.Help
		realStarts := realErr == nil && real.Start != nil
		if oracleStarts != realStarts || (realStarts && oracle.Start.ID != real.Start.ID) {
			t.Errorf("%q: the oracle reads %v (%v), runc did %v (%v)", full, oracle, oracleErr, real, realErr)
		}
	}
	if started < 150 {
		t.Errorf("runc started only %d of %d command lines: the corpus does not reach the container", started, len(corpus))
	}
	t.Logf("%d command lines: runc started %d, refused %d after reading them", len(corpus), started, postParseFailures)
}

// writeHookBundle writes a bundle whose createRuntime hook saves the
// container's state to out and fails.
func writeHookBundle(t *testing.T, dir, out string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	config := map[string]any{
		"ociVersion": "1.0.2",
		"process":    map[string]any{"args": []string{"/nonexistent"}, "cwd": "/", "user": map[string]int{"uid": 0, "gid": 0}},
		"root":       map[string]any{"path": "rootfs"},
		"linux":      map[string]any{"namespaces": []map[string]string{{"type": "mount"}}},
		"hooks": map[string]any{"createRuntime": []map[string]any{{
			"path": "/bin/sh", "args": []string{"sh", "-c", "cat > " + out + "; exit 1"},
		}}},
	}
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
