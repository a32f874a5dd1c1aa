package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The reference in docs/ must keep up with the code: every exported
// sentinel error's message is in docs/errors.md, every key of config.toml
// and policy.toml in docs/config.md and docs/policy.md, every command in
// docs/commands.md. A new sentinel error, key or command fails these tests
// until it is documented. The README is the front door: it maps every doc,
// and the links between the docs must lead somewhere.

// repoPath makes a name from the repository's root absolute. TestMain
// changes to the root before go test starts logging what the tests open,
// so a relative name would be checked against the package's directory
// when go test decides whether a cached result still holds: an edited doc
// would not run the tests again.
func repoPath(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// doc returns the named files (from the repository's root), joined, with
// table escapes (\|) undone.
func doc(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range names {
		data, err := os.ReadFile(repoPath(t, name))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	return strings.ReplaceAll(b.String(), `\|`, "|")
}

// goFiles parses every non-test Go file of the module (test data, tests/
// and hidden directories excluded) and calls fn for each, with its path
// from the repository's root.
func goFiles(t *testing.T, fn func(path string, f *ast.File)) {
	t.Helper()
	fset := token.NewFileSet()
	root := repoPath(t, ".")
	err := filepath.WalkDir(root, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		path, err := filepath.Rel(root, abs)
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tests" || name == "bin" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, abs, nil, 0)
		if err != nil {
			return err
		}
		fn(path, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sentinelErrors returns the message of every exported package-level
// `ErrX = errors.New("message")`, by "file: ErrX".
func sentinelErrors(t *testing.T) map[string]string {
	out := map[string]string{}
	goFiles(t, func(path string, f *ast.File) {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) || !name.IsExported() || !strings.HasPrefix(name.Name, "Err") {
						continue
					}
					if msg, ok := errorsNewArg(vs.Values[i]); ok {
						out[path+": "+name.Name] = msg
					}
				}
			}
		}
	})
	return out
}

// errorsNewArg returns the string literal of errors.New("...").
func errorsNewArg(e ast.Expr) (string, bool) {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "New" {
		return "", false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "errors" {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func TestDocsListEverySentinelError(t *testing.T) {
	text := doc(t, "docs/errors.md")
	errs := sentinelErrors(t)
	if len(errs) < 20 {
		t.Fatalf("found only %d sentinel errors: is the scan broken? %v", len(errs), errs)
	}
	for _, where := range slices.Sorted(maps.Keys(errs)) {
		if msg := errs[where]; !strings.Contains(text, msg) {
			t.Errorf("docs/errors.md does not list the message of %s: %q", where, msg)
		}
	}
}

// TestDocsDocumentEveryKey: every TOML key of config.toml (struct tags in
// package config) is in docs/config.md, every key of policy.toml (package
// attest/policy) in docs/policy.md, as `key` (or `[[key]]` for an array of tables).
func TestDocsDocumentEveryKey(t *testing.T) {
	for _, c := range []struct {
		pkg, doc string
		min      int // fewer found: the scan is broken
	}{
		{"internal/config", "docs/config.md", 5},
		{"attest/policy", "docs/policy.md", 15},
	} {
		text := doc(t, c.doc)
		keys := tomlKeys(t, c.pkg)
		if len(keys) < c.min {
			t.Fatalf("found only %d keys in %s: is the scan broken? %v", len(keys), c.pkg, keys)
		}
		for _, k := range keys {
			// Arrays of tables are written as `[[signer]]`.
			if !strings.Contains(text, "`"+k+"`") && !strings.Contains(text, "`[["+k+"]]`") {
				t.Errorf("%s does not document the key `%s` (%s)", c.doc, k, c.pkg)
			}
		}
	}
}

// tomlKeys returns the toml struct tags of the non-test files of the
// package in dir.
func tomlKeys(t *testing.T, dir string) []string {
	var keys []string
	goFiles(t, func(path string, f *ast.File) {
		if filepath.Dir(path) != dir {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				return true
			}
			key, _, _ := strings.Cut(reflect.StructTag(tag).Get("toml"), ",")
			if key != "" && key != "-" {
				keys = append(keys, key)
			}
			return true
		})
	})
	return keys
}

func TestDocsNameEveryCommand(t *testing.T) {
	text := doc(t, "docs/commands.md")
	for _, c := range toolCommands {
		if !c.Hidden && !strings.Contains(text, "cfs-runtime "+c.Name) {
			t.Errorf("docs/commands.md never mentions `cfs-runtime %s`", c.Name)
		}
	}
}

// pendingDocs are docs that the README's map may name before they exist
// (none now). A link to one passes while the file is absent; once it
// exists, its links and anchors are checked like every other doc's.
var pendingDocs = map[string]bool{}

// markdownDocs returns README.md and docs/*.md.
func markdownDocs(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoPath(t, "docs"), "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{"README.md"}
	for _, path := range paths {
		docs = append(docs, filepath.Join("docs", filepath.Base(path)))
	}
	return docs
}

var (
	linkRE     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	linkTextRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	codeSpanRE = regexp.MustCompile("`[^`\n]*`")
)

// scanMarkdown returns the anchors of a markdown file's headings, as
// GitHub makes them, and the targets of its links; fenced code blocks and
// code spans hold neither.
func scanMarkdown(text string) (anchors map[string]bool, links []string) {
	anchors = map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if h := strings.TrimLeft(line, "#"); h != line && len(line)-len(h) <= 6 && strings.HasPrefix(h, " ") {
			a := headingAnchor(h)
			if n := seen[a]; n > 0 {
				seen[a]++
				a += "-" + strconv.Itoa(n)
			} else {
				seen[a] = 1
			}
			anchors[a] = true
			continue
		}
		for _, m := range linkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(line, ""), -1) {
			links = append(links, m[1])
		}
	}
	return anchors, links
}

// headingAnchor is GitHub's anchor of a heading: its text lower-cased,
// spaces made hyphens, punctuation other than - and _ dropped.
func headingAnchor(h string) string {
	h = linkTextRE.ReplaceAllString(strings.TrimSpace(h), "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// The anchors GitHub gives headings of the kinds the docs have (the old
// README linked the first two).
func TestHeadingAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Hook mode (`cfs-runtime hook createRuntime`)":  "hook-mode-cfs-runtime-hook-createruntime",
		"Configuration: config.toml":                    "configuration-configtoml",
		"The runtime path's start-up cost":              "the-runtime-paths-start-up-cost",
		"podman save → import → seal → podman run":      "podman-save--import--seal--podman-run",
		"`--canonical oci` (default) or `composefs-rs`": "--canonical-oci-default-or-composefs-rs",
		"See [the store](store.md#gc)":                  "see-the-store",
	} {
		if got := headingAnchor(heading); got != want {
			t.Errorf("headingAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestDocsLinksResolve: every relative link of the README and the docs
// names a file that exists and, with a #fragment, a heading of it.
func TestDocsLinksResolve(t *testing.T) {
	anchors := map[string]map[string]bool{}
	links := map[string][]string{}
	for _, name := range markdownDocs(t) {
		anchors[name], links[name] = scanMarkdown(doc(t, name))
	}
	checked := 0
	for _, name := range markdownDocs(t) {
		for _, link := range links[name] {
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			checked++
			file, frag, _ := strings.Cut(link, "#")
			target := name
			if file != "" {
				target = filepath.Join(filepath.Dir(name), file)
			}
			if _, err := os.Stat(repoPath(t, target)); err != nil {
				if !pendingDocs[target] {
					t.Errorf("%s: link %q: %v", name, link, err)
				}
				continue
			}
			if frag == "" {
				continue
			}
			a, ok := anchors[target]
			if !ok {
				t.Errorf("%s: link %q: a #fragment into a file that is not README.md or docs/*.md", name, link)
			} else if !a[frag] {
				t.Errorf("%s: link %q: %s has no heading with that anchor", name, link, target)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d links: is the scan broken?", checked)
	}
}

// TestReadmeMapsEveryDoc: the README's map of the docs names each of them.
func TestReadmeMapsEveryDoc(t *testing.T) {
	readme := doc(t, "README.md")
	docs := append(slices.Sorted(maps.Keys(pendingDocs)), markdownDocs(t)[1:]...)
	if len(docs) < 10 {
		t.Fatalf("found only %d docs: %v", len(docs), docs)
	}
	for _, name := range docs {
		if !strings.Contains(readme, "]("+name+")") {
			t.Errorf("README.md does not link %s", name)
		}
	}
}

// TestReadmeSetupCommands: the two commands a newcomer starts with stand in
// the README as they are, and CI runs exactly the README's test command.
func TestReadmeSetupCommands(t *testing.T) {
	readme := doc(t, "README.md")
	for _, cmd := range []string{"make deps install demo", "make deps-test test"} {
		if !strings.Contains(readme, "\n    "+cmd+"\n") {
			t.Errorf("README.md has no code line %q", cmd)
		}
	}
	lines := strings.Split(strings.TrimSpace(doc(t, ".ci/run")), "\n")
	if last := lines[len(lines)-1]; last != "make deps-test test" {
		t.Errorf(".ci/run ends with %q, not the README's test command %q", last, "make deps-test test")
	}
}
