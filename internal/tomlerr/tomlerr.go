// Package tomlerr words go-toml's errors as "file:line: key k: problem",
// for the configuration and the trust policy.
package tomlerr

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
)

// Describe turns a go-toml error into "file:line: key k: problem".
func Describe(path string, err error) string {
	var serr *toml.StrictMissingError
	if errors.As(err, &serr) && len(serr.Errors) > 0 {
		e := serr.Errors[0]
		row, _ := e.Position()
		return fmt.Sprintf("%s:%d: key %s: unknown key", path, row, strings.Join(e.Key(), "."))
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, _ := derr.Position()
		msg := friendlyTOML(strings.TrimPrefix(derr.Error(), "toml: "))
		if k := derr.Key(); len(k) > 0 {
			return fmt.Sprintf("%s:%d: key %s: %s", path, row, strings.Join(k, "."), msg)
		}
		return fmt.Sprintf("%s:%d: %s", path, row, msg)
	}
	return fmt.Sprintf("%s: %v", path, err)
}

// tomlTypeRe is compiled on first use: only a bad file needs it, and
// cfs-runtime runs every package initializer at each runtime call.
var tomlTypeRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^cannot decode TOML (\w+) into struct field \S+ of type (\S+)$`)
})

// friendlyTOML rewords go-toml's type errors without Go type names.
func friendlyTOML(msg string) string {
	m := tomlTypeRe().FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := "a value of another type"
	switch t := m[2]; {
	case strings.HasPrefix(t, "[]"):
		want = "an array of tables"
	case strings.HasPrefix(t, "map"):
		want = "a table"
	case t == "string":
		want = "a string"
	case t == "int" || t == "*int":
		want = "an integer"
	}
	return fmt.Sprintf("is a TOML %s, want %s", m[1], want)
}

// describedError is an error as Describe words it, still wrapping it.
type describedError struct {
	msg string
	err error
}

func (e *describedError) Error() string { return e.msg }
func (e *describedError) Unwrap() error { return e.err }

// Error is err, worded by Describe.
func Error(path string, err error) error { return &describedError{Describe(path, err), err} }
