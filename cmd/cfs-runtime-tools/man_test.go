package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/urfave/cli/v2"
)

// TestManPages checks that every visible command has its page, that each
// page names every option of its command, and that groff renders the pages
// without a warning.
func TestManPages(t *testing.T) {
	pages := manPages(toolCommands)
	want := []string{"cfs-runtime.8"}
	for _, c := range toolCommands {
		if c.Hidden {
			if _, ok := pages["cfs-runtime-"+c.Name+".8"]; ok {
				t.Errorf("hidden command %s has a page", c.Name)
			}
			continue
		}
		want = append(want, "cfs-runtime-"+c.Name+".8")
		page := pages["cfs-runtime-"+c.Name+".8"]
		if !strings.Contains(pages["cfs-runtime.8"], `\fBcfs\-runtime\-`+escape(c.Name)+`\fR(8)`) {
			t.Errorf("cfs-runtime.8 does not list %s", c.Name)
		}
		all := append([]*cli.Command{c}, c.Subcommands...)
		for _, cmd := range all {
			for _, f := range visibleFlags(cmd.Flags) {
				if !strings.Contains(page, `\fB`+escape(dashed(f.Names()[0]))+`\fR`) {
					t.Errorf("cfs-runtime-%s.8 lacks option %s of %s", c.Name, f.Names()[0], cmd.Name)
				}
			}
		}
	}
	if len(pages) != len(want) {
		t.Errorf("%d pages, want %d: %v", len(pages), len(want), want)
	}
	for _, rc := range oci.Commands() {
		if !strings.Contains(pages["cfs-runtime.8"], ".TP\n\\fB"+escape(rc.Name)+"\\fR\n") {
			t.Errorf("cfs-runtime.8 does not list the runtime command %s", rc.Name)
		}
	}

	// The section 5 pages, from docs/: every key of the file is an item.
	files, err := fileManPagesFrom(repoPath(t, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ page, pkg string }{{"cfs-runtime-config.toml.5", "internal/config"}, {"cfs-runtime-policy.toml.5", "attest/policy"}} {
		page := files[c.page]
		if !strings.HasPrefix(page, ".TH "+strings.ToUpper(escape(strings.TrimSuffix(c.page, ".5")))+" 5 ") {
			t.Errorf("%s: not a section 5 page:\n%.200s", c.page, page)
		}
		keys := tomlKeys(t, c.pkg)
		if len(keys) < 5 {
			t.Fatalf("found only %d keys in %s: is the scan broken?", len(keys), c.pkg)
		}
		for _, k := range keys {
			if !strings.Contains(page, `\fB`+escape(k)+`\fR`) && !strings.Contains(page, `\fB[[`+escape(k)+`]]\fR`) {
				t.Errorf("%s lacks the key %s", c.page, k)
			}
		}
		if !strings.Contains(pages["cfs-runtime.8"], `\fB`+escape(strings.TrimSuffix(c.page, ".5"))+`\fR(5)`) {
			t.Errorf("cfs-runtime.8 does not refer to %s", c.page)
		}
		pages[c.page] = page
	}

	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man not installed: pages not rendered")
	}
	dir := t.TempDir()
	for name, page := range pages {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(man, "--warnings", "-l", file)
		cmd.Env = append(os.Environ(), "MANWIDTH=80")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 || !strings.Contains(stdout.String(), "NAME") {
			t.Errorf("man -l %s: %v %s", name, err, stderr.String())
		}
	}
}

func TestRoffEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"a `b-c` d":        `a \fBb\-c\fR d`,
		".starts with dot": `\&.starts with dot`,
		`back\slash`:       `back\eslash`,
		"unpaired ` quote": "unpaired ` quote",
		"'quote at start":  `\&'quote at start`,
	} {
		if got := line(in); got != want {
			t.Errorf("line(%q) = %q, want %q", in, got, want)
		}
	}
}

// cfs-runtime --help lists --cfs-config, cfs-runtime's own global option.
func TestHelpShowsCfsConfig(t *testing.T) {
	out, code, err := runAttestCLI(t, "--help")
	if code != 0 || !strings.Contains(out, "GLOBAL OPTIONS:\n   --cfs-config FILE  cfs-runtime's configuration FILE, removed before the real runtime runs (default: \"/etc/cfs-runtime/config.toml\") [$CFS_RUNTIME_CONFIG]\n") {
		t.Errorf("--help: %d %v\n%s", code, err, out)
	}
}
