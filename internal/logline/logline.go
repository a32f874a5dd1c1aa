// Package logline appends one warning to cfs-runtime's own log in the text
// format of log/slog's TextHandler, which package logging writes: the
// runtime front, exec'd for every runtime call, does not link log/slog, yet
// its lines must read like cfs-runtime-mount's (tests and operators grep
// them). TestSameAsSlog and FuzzSameAsSlog hold the two equal.
package logline

import (
	"os"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

// Warn appends "time=… level=WARN msg=… pid=… k=v …" to the log at path
// when level (the configuration's log_level: debug, info, warn or error)
// lets warnings through; path "" is no log. kv alternates keys and values.
func Warn(path, level, msg string, kv ...string) error {
	if path == "" || level == "error" {
		return nil
	}
	f, err := rawfile.OpenAppend(path, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(Format(time.Now(), "WARN", msg, os.Getpid(), kv...))
	return err
}

// Format is the line, as slog.TextHandler writes a record at t with
// logger attribute pid and the record's attributes kv.
func Format(t time.Time, level, msg string, pid int, kv ...string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, t)
	b = append(b, " level="...)
	b = appendString(b, level)
	b = append(b, " msg="...)
	b = appendString(b, msg)
	b = append(b, " pid="...)
	b = strconv.AppendInt(b, int64(pid), 10)
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, ' ')
		b = appendString(b, kv[i])
		b = append(b, '=')
		b = appendString(b, kv[i+1])
	}
	return append(b, '\n')
}

// appendRFC3339Millis: RFC 3339 with exactly three fractional digits.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	// RFC3339Nano trims trailing zeros: add 1/10 ms, then drop the 4th digit.
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendString quotes s (strconv.Quote) where slog's text format does:
// empty, or holding a space, '=', a quote, a control character, invalid
// UTF-8 or an unprintable rune.
func appendString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' || c == ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
