package handoff

import (
	"errors"
	"fmt"
	"os"
)

// codeError is an error with its own exit status. It satisfies urfave/cli's
// ExitCoder, so cfs-runtime-tools' commands may return it too.
type codeError struct {
	msg  string
	code int
}

func (e *codeError) Error() string { return e.msg }
func (e *codeError) ExitCode() int { return e.code }

// ExitError is an error that makes the command exit with code (2 for usage
// errors, as runc's own commands do).
func ExitError(msg string, code int) error { return &codeError{msg: msg, code: code} }

// ExitCode prints a command's error once, prefixed "cfs-runtime:", and
// returns its exit status: the error's own code, otherwise 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "cfs-runtime:", msg)
	}
	return code
}
