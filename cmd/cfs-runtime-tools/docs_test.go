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
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The reference in docs/ must keep up with the code: every exported
// sentinel error's message is in docs/errors.md, every key of config.toml
// and policy.toml in docs/config.md and docs/policy.md, every command in
// docs/commands.md. A new sentinel error, key or command fails these tests
// until it is documented.

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
// attest) in docs/policy.md, as `key` (or `[[key]]` for an array of tables).
func TestDocsDocumentEveryKey(t *testing.T) {
	for _, c := range []struct {
		pkg, doc string
		min      int // fewer found: the scan is broken
	}{
		{"internal/config", "docs/config.md", 5},
		{"attest", "docs/policy.md", 15},
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

