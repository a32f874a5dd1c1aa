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

// The README's troubleshooting and reference sections must keep up with the
// code: every exported sentinel error's message, every key of config.toml
// and policy.toml and every command must appear in it. A new sentinel error
// or key fails this test until it is documented.

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

// readme returns README.md with table escapes (\|) undone.
func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(data), `\|`, "|")
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

func TestReadmeListsEverySentinelError(t *testing.T) {
	text := readme(t)
	errs := sentinelErrors(t)
	if len(errs) < 20 {
		t.Fatalf("found only %d sentinel errors: is the scan broken? %v", len(errs), errs)
	}
	for _, where := range slices.Sorted(maps.Keys(errs)) {
		if msg := errs[where]; !strings.Contains(text, msg) {
			t.Errorf("README.md (Troubleshooting) does not list the message of %s: %q", where, msg)
		}
	}
}

// TestReadmeDocumentsEveryKey: every TOML key of config.toml and policy.toml
// (struct tags in packages config and attest) is in the reference as `key`
// (or `[[key]]` for an array of tables).
func TestReadmeDocumentsEveryKey(t *testing.T) {
	text := readme(t)
	var keys []string
	goFiles(t, func(path string, f *ast.File) {
		dir := filepath.Dir(path)
		if dir != "internal/config" && dir != "attest" {
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
	if len(keys) < 20 {
		t.Fatalf("found only %d keys: is the scan broken? %v", len(keys), keys)
	}
	for _, k := range keys {
		// Arrays of tables are written as `[[signer]]`.
		if !strings.Contains(text, "`"+k+"`") && !strings.Contains(text, "`[["+k+"]]`") {
			t.Errorf("README.md does not document the key `%s`", k)
		}
	}
}

func TestReadmeNamesEveryCommand(t *testing.T) {
	text := readme(t)
	for _, c := range toolCommands {
		if !c.Hidden && !strings.Contains(text, "cfs-runtime "+c.Name) {
			t.Errorf("README.md never mentions `cfs-runtime %s`", c.Name)
		}
	}
}
