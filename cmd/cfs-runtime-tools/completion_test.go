package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// allCommandNames is what completing an empty command must offer: every
// visible tool and every runtime command.
func allCommandNames() []string {
	var names []string
	for _, c := range toolCommands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	for _, rc := range oci.Commands() {
		if !slices.Contains(names, rc.Name) {
			names = append(names, rc.Name)
		}
	}
	slices.Sort(names)
	return names
}

// completionCases are command lines (the last word is being completed)
// and the exact completions both shells must offer.
type completionCase struct {
	line string
	want []string
}

var completionCases = []completionCase{
	{"cfs-runtime si", []string{"sign"}},
	{"cfs-runtime --root /x cr", []string{"create"}},
	{"cfs-runtime --cfs-config /c.toml --log /l --log-format json ki", []string{"kill"}},
	{"cfs-runtime sign --format ", []string{"annotations", "json", "podman"}},
	{"cfs-runtime --log-format ", []string{"json", "text"}},
	{"cfs-runtime verity ", []string{"digest", "enable", "measure"}},
	{"cfs-runtime verity digest --h", []string{"--hash-alg"}},
	{"cfs-runtime verity digest --hash-alg ", []string{"sha256", "sha512"}},
	{"cfs-runtime info mi", []string{"missing-objects"}},
	{"cfs-runtime policy ", []string{"check"}},
	{"cfs-runtime create --b", []string{"--bundle"}},
	{"cfs-runtime run --k", []string{"--keep"}},
	{"cfs-runtime delete --f", []string{"--force"}},
	{"cfs-runtime completion ", []string{"bash", "zsh"}},
}

func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	var script bytes.Buffer
	if err := writeBashCompletion(&script, completionTree(toolCommands)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scriptFile := filepath.Join(dir, "cfs-runtime.bash")
	if err := os.WriteFile(scriptFile, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stand-in for cfs-runtime that lists containers and records how it
	// was asked.
	prog := filepath.Join(dir, "cfs-runtime")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\necho \"$@\" >\"$0.args\"\necho ctr-one; echo ctr-two\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// complete LINE: COMP_WORDS as bash splits them (= is a word of its own).
	complete := func(line string) []string {
		t.Helper()
		words := strings.Fields(strings.ReplaceAll(line, "=", " = "))
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		words[0] = prog
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, bashQuote(w))
		}
		sh := "source " + bashQuote(scriptFile) + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
			"COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_cfs_runtime\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		return got
	}
	cases := append(completionCases[:len(completionCases):len(completionCases)],
		completionCase{"cfs-runtime ", allCommandNames()},
		completionCase{"cfs-runtime sign --format=", []string{"=annotations", "=json", "=podman"}},
		completionCase{"cfs-runtime --root=/r --debug kill ", []string{"ctr-one", "ctr-two"}},
		completionCase{"cfs-runtime kill ctr-one SIGK", []string{"SIGKILL"}},
	)
	for _, tc := range cases {
		if got := complete(tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("bash completion of %q = %q, want %q", tc.line, got, tc.want)
		}
	}
	// The global options reach `list -q` (--root=/r as bash splits it).
	args, err := os.ReadFile(prog + ".args")
	if err != nil || strings.TrimSpace(string(args)) != "--root =/r --debug list -q" {
		t.Errorf("container ids listed with %q (%v), want the global options and list -q", args, err)
	}
}

func TestCompletionZsh(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("zsh not installed (tests/install-deps.sh installs it)")
		}
		t.Skip("zsh not installed")
	}
	dir := t.TempDir()
	var script bytes.Buffer
	if err := writeZshCompletion(&script, completionTree(toolCommands)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "_cfs-runtime"), script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", filepath.Join(dir, "_cfs-runtime")).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	// Drive an interactive zsh through a pty (zsh/zpty): compinit loads the
	// script from $fpath, TAB completes each line, and a compadd wrapper
	// records every match offered.
	out := filepath.Join(dir, "out")
	driver := `zmodload zsh/zpty || exit 2
dir=$1 out=$2; shift 2
zpty z zsh -f -i
zpty -w z "PROMPT= ; fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "compadd() { builtin compadd -O __hits \"\$@\"; builtin print -rl -- \"\${(@)__hits/#/HIT:}\" >>$out; builtin compadd \"\$@\" }"
zpty -w z "bindkey '^I' complete-word"
# The terminal output is read and dropped: a full pty would block zsh.
drain() { local junk; while zpty -rt z junk; do :; done }
for line in "$@"; do
	zpty -w z "print -r -- 'LINE:$line' >>$out"
	zpty -w z "$line"$'\t'
	zpty -w z $'\C-u'
	drain
done
zpty -w z "print DONE >>$out"
for i in {1..200}; do drain; grep -q '^DONE$' $out 2>/dev/null && break; sleep 0.05; done
zpty -d z
`
	cases := append(completionCases[:len(completionCases):len(completionCases)],
		completionCase{"cfs-runtime ", allCommandNames()})
	// Option values: directories for --bundle, any file for --key.
	paths := filepath.Join(dir, "paths")
	if err := os.MkdirAll(filepath.Join(paths, "bdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(paths, "bfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pathCases := map[string][2]bool{ // line: offers bdir, offers bfile
		"cfs-runtime create --bundle " + paths + "/": {true, false},
		"cfs-runtime sign --key " + paths + "/":      {true, true},
	}
	args := []string{"-f", "-c", driver, "driver", dir, out}
	for _, tc := range cases {
		args = append(args, tc.line)
	}
	for line := range pathCases {
		args = append(args, line)
	}
	if b, err := exec.Command(zsh, args...).CombinedOutput(); err != nil {
		t.Fatalf("zsh driver: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	var cur string
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "LINE:"):
			cur = strings.TrimPrefix(l, "LINE:")
			got[cur] = []string{}
		case strings.HasPrefix(l, "HIT:") && l != "HIT:" && !slices.Contains(got[cur], l[4:]):
			got[cur] = append(got[cur], l[4:])
		}
	}
	if !strings.Contains(string(data), "DONE") {
		t.Fatalf("zsh did not finish:\n%s", data)
	}
	for line, want := range pathCases {
		g := got[line]
		if slices.Contains(g, "bdir") != want[0] || slices.Contains(g, "bfile") != want[1] {
			t.Errorf("zsh completion of %q = %q, want bdir %v, bfile %v", line, g, want[0], want[1])
		}
	}
	for _, tc := range cases {
		g := got[tc.line]
		slices.Sort(g)
		if !slices.Equal(g, tc.want) {
			t.Errorf("zsh completion of %q = %q, want %q", tc.line, g, tc.want)
		}
	}
}
