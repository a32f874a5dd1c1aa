// Package plaintoml reads the plain subset of TOML that cfs-runtime's
// configuration and trust policy are written in, without go-toml, and
// words go-toml's errors as "file:line: key k: problem".
package plaintoml

import "unicode/utf8"

// Decoding a TOML file with go-toml's reflection is costly in a fresh
// process, and cfs-runtime decodes two (this configuration and the trust
// policy) before every create; even go-toml's parser alone costs the
// front, which reads the configuration for every runtime call (state,
// kill, ...), a measurable part of its hand-off (docs/performance.md).
// Decode is a scanner of its own for the plain subset of TOML these files
// are written in, and reports false for anything else (and for any
// error): callers then decode with go-toml, whose results and error
// messages stay authoritative. FuzzDecode holds it equal to go-toml
// wherever it answers, as do the callers' fuzz targets (config, attest).

// Table holds a table's keys: string, int64, bool, map[string]string
// (an inline table of strings) or []string (an array of strings).
type Table map[string]any

// Doc is a document of the plain subset: top-level keys, then arrays
// of tables ([[name]]) of the same keys.
type Doc struct {
	Top    Table
	Arrays map[string][]Table
}

// Decode decodes data if it is valid TOML of the plain subset: keys
// that are one bare or quoted name, each defined once; values that are
// strings, decimal integers, booleans, inline tables of strings or
// arrays of strings; no [table] headers, only [[array]] ones. Where
// TOML's rules leave room for doubt (a carriage return in a multi-line
// string, quotes right before a multi-line string's closing ones,
// escapes beyond TOML 1.0's), it declines too.
func Decode(data []byte) (Doc, bool) {
	s := scanner{data: data}
	doc := Doc{Top: Table{}}
	cur := doc.Top
	for {
		if !s.skipLines() {
			return Doc{}, false
		}
		if s.i == len(data) {
			break
		}
		if data[s.i] == '[' {
			if !s.consume("[[") {
				return Doc{}, false // a [table] header
			}
			s.skipSpace()
			k, ok := s.key()
			s.skipSpace()
			if !ok || !s.consume("]]") || !s.endOfLine() {
				return Doc{}, false
			}
			if _, clash := doc.Top[k]; clash {
				return Doc{}, false
			}
			if doc.Arrays == nil {
				doc.Arrays = map[string][]Table{}
			}
			cur = Table{}
			doc.Arrays[k] = append(doc.Arrays[k], cur)
			continue
		}
		k, ok := s.key()
		if !ok {
			return Doc{}, false
		}
		s.skipSpace()
		if !s.consume("=") {
			return Doc{}, false // a dotted key, or no value
		}
		s.skipSpace()
		v, ok := s.value()
		if !ok || !s.endOfLine() {
			return Doc{}, false
		}
		if _, dup := cur[k]; dup {
			return Doc{}, false
		}
		cur[k] = v
	}
	for k := range doc.Arrays {
		if _, clash := doc.Top[k]; clash {
			return Doc{}, false
		}
	}
	return doc, true
}

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) peek(c byte) bool { return s.i < len(s.data) && s.data[s.i] == c }

// consume skips lit if it comes next.
func (s *scanner) consume(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

func (s *scanner) skipSpace() {
	for s.i < len(s.data) && (s.data[s.i] == ' ' || s.data[s.i] == '\t') {
		s.i++
	}
}

// newline skips a newline (LF or CRLF) if one comes next.
func (s *scanner) newline() bool { return s.consume("\n") || s.consume("\r\n") }

// comment skips a comment if one comes next, up to its newline; false
// for a character TOML forbids in comments.
func (s *scanner) comment() bool {
	if !s.peek('#') {
		return true
	}
	for s.i++; s.i < len(s.data) && s.data[s.i] != '\n' && s.data[s.i] != '\r'; {
		if _, ok := s.char(false); !ok {
			return false
		}
	}
	return true
}

// endOfLine skips what may end a line after a value or header: blanks, a
// comment, then a newline or the end of the document.
func (s *scanner) endOfLine() bool {
	s.skipSpace()
	if !s.comment() {
		return false
	}
	return s.i == len(s.data) || s.newline()
}

// skipLines skips blank and comment lines (and the blanks before the
// next line's content).
func (s *scanner) skipLines() bool {
	for {
		s.skipSpace()
		if !s.comment() {
			return false
		}
		if s.i == len(s.data) || !s.newline() {
			return true
		}
	}
}

// char skips one character that TOML allows in comments and strings (a
// tab, printable ASCII, valid UTF-8 beyond ASCII; a newline too if
// newline) and returns its bytes; false for any other.
func (s *scanner) char(newline bool) ([]byte, bool) {
	c := s.data[s.i]
	if c == '\t' || (c >= 0x20 && c < 0x7f) || (newline && c == '\n') {
		s.i++
		return s.data[s.i-1 : s.i], true
	}
	if c < 0x80 {
		return nil, false
	}
	r, n := utf8.DecodeRune(s.data[s.i:])
	if r == utf8.RuneError && n <= 1 {
		return nil, false
	}
	s.i += n
	return s.data[s.i-n : s.i], true
}

func isBare(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// key reads a bare or quoted (single-line) key.
func (s *scanner) key() (string, bool) {
	if s.peek('"') || s.peek('\'') {
		if s.i+2 < len(s.data) && s.data[s.i+1] == s.data[s.i] && s.data[s.i+2] == s.data[s.i] {
			return "", false // a multi-line string
		}
		if s.peek('"') {
			return s.basic()
		}
		return s.literal()
	}
	start := s.i
	for s.i < len(s.data) && isBare(s.data[s.i]) {
		s.i++
	}
	return string(s.data[start:s.i]), s.i > start
}

// value reads a value of the plain subset.
func (s *scanner) value() (any, bool) {
	if s.i == len(s.data) {
		return nil, false
	}
	switch c := s.data[s.i]; {
	case c == '"' || c == '\'':
		return s.str()
	case c == '{':
		return s.inlineTable()
	case c == '[':
		return s.array()
	case s.consume("true"):
		return true, true
	case s.consume("false"):
		return false, true
	}
	return s.integer()
}

// str reads a string of any of TOML's four kinds.
func (s *scanner) str() (string, bool) {
	switch {
	case s.consume(`"""`):
		return s.multiBasic()
	case s.consume("'''"):
		return s.multiLiteral()
	case s.peek('"'):
		return s.basic()
	case s.peek('\''):
		return s.literal()
	}
	return "", false
}

// inlineTable reads { k = "v", ... } (on one line, no trailing comma).
func (s *scanner) inlineTable() (map[string]string, bool) {
	s.i++ // {
	m := map[string]string{}
	s.skipSpace()
	if s.consume("}") {
		return m, true
	}
	for {
		k, ok := s.key()
		if !ok {
			return nil, false
		}
		s.skipSpace()
		if !s.consume("=") {
			return nil, false
		}
		s.skipSpace()
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
		s.skipSpace()
		switch {
		case s.consume("}"):
			return m, true
		case !s.consume(","):
			return nil, false
		}
		s.skipSpace()
	}
}

// array reads [ "a", 'b', ] (newlines and comments allowed).
func (s *scanner) array() ([]string, bool) {
	s.i++ // [
	l := []string{}
	for {
		if !s.skipLines() {
			return nil, false
		}
		if s.consume("]") {
			return l, true
		}
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		l = append(l, v)
		if !s.skipLines() {
			return nil, false
		}
		if s.consume("]") {
			return l, true
		}
		if !s.consume(",") {
			return nil, false
		}
	}
}

// integer reads a decimal integer without underscores or leading zeros;
// what follows is the caller's to check (a "." or "-" after the digits
// makes a float or a date, which it refuses).
func (s *scanner) integer() (int64, bool) {
	neg := false
	switch {
	case s.consume("-"):
		neg = true
	case s.consume("+"):
	}
	start := s.i
	var n int64
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		n = n*10 + int64(s.data[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 18 || (s.data[start] == '0' && digits > 1) {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// literal reads a single-line literal string 'like this'.
func (s *scanner) literal() (string, bool) {
	s.i++ // '
	start := s.i
	for s.i < len(s.data) {
		if s.consume("'") {
			return string(s.data[start : s.i-1]), true
		}
		if _, ok := s.char(false); !ok {
			return "", false
		}
	}
	return "", false
}

// multiLiteral reads a multi-line literal string after its opening ”'.
func (s *scanner) multiLiteral() (string, bool) {
	s.consume("\n") // trimmed (a CR is refused below)
	start := s.i
	for s.i < len(s.data) {
		if s.consume("'''") {
			if s.peek('\'') {
				return "", false // quotes before the closing ones
			}
			return string(s.data[start : s.i-3]), true
		}
		if _, ok := s.char(true); !ok {
			return "", false
		}
	}
	return "", false
}

// basic reads a single-line basic string "like this".
func (s *scanner) basic() (string, bool) {
	s.i++ // "
	start := s.i
	var buf []byte // only once there is an escape
	for s.i < len(s.data) {
		switch {
		case s.consume(`"`):
			if buf == nil {
				return string(s.data[start : s.i-1]), true
			}
			return string(buf), true
		case s.peek('\\'):
			if buf == nil {
				buf = append([]byte{}, s.data[start:s.i]...)
			}
			var ok bool
			if buf, ok = s.escape(buf); !ok {
				return "", false
			}
		default:
			c, ok := s.char(false)
			if !ok {
				return "", false
			}
			if buf != nil {
				buf = append(buf, c...)
			}
		}
	}
	return "", false
}

// multiBasic reads a multi-line basic string after its opening """.
func (s *scanner) multiBasic() (string, bool) {
	s.consume("\n") // trimmed (a CR is refused below)
	var buf []byte
	for s.i < len(s.data) {
		switch {
		case s.consume(`"""`):
			if s.peek('"') {
				return "", false // quotes before the closing ones
			}
			return string(buf), true
		case s.peek('\\'):
			if s.lineEndingBackslash() {
				continue
			}
			var ok bool
			if buf, ok = s.escape(buf); !ok {
				return "", false
			}
		default:
			c, ok := s.char(true)
			if !ok {
				return "", false
			}
			buf = append(buf, c...)
		}
	}
	return "", false
}

// lineEndingBackslash skips a backslash that ends a line (blanks may
// follow it) and the blanks and newlines after it.
func (s *scanner) lineEndingBackslash() bool {
	j := s.i + 1
	for j < len(s.data) && (s.data[j] == ' ' || s.data[j] == '\t') {
		j++
	}
	if j == len(s.data) || s.data[j] != '\n' {
		return false
	}
	for j < len(s.data) && (s.data[j] == ' ' || s.data[j] == '\t' || s.data[j] == '\n') {
		j++
	}
	s.i = j
	return true
}

// escape decodes the escape sequence at s.i onto buf: TOML 1.0's.
func (s *scanner) escape(buf []byte) ([]byte, bool) {
	if s.i+1 >= len(s.data) {
		return nil, false
	}
	c := s.data[s.i+1]
	s.i += 2
	switch c {
	case 'b':
		return append(buf, '\b'), true
	case 't':
		return append(buf, '\t'), true
	case 'n':
		return append(buf, '\n'), true
	case 'f':
		return append(buf, '\f'), true
	case 'r':
		return append(buf, '\r'), true
	case '"', '\\':
		return append(buf, c), true
	case 'u':
		return s.unicode(buf, 4)
	case 'U':
		return s.unicode(buf, 8)
	}
	return nil, false
}

// unicode decodes the n hex digits of a \u or \U escape.
func (s *scanner) unicode(buf []byte, n int) ([]byte, bool) {
	if len(s.data)-s.i < n {
		return nil, false
	}
	var r rune
	for _, c := range s.data[s.i : s.i+n] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return nil, false
		}
	}
	s.i += n
	if !utf8.ValidRune(r) {
		return nil, false
	}
	return utf8.AppendRune(buf, r), true
}
