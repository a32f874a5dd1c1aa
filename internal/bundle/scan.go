package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// runc decodes config.json with encoding/json into specs.Spec, which does
// not read a document the way its text reads: a key given twice is decoded
// twice (the second object merged into the first, a scalar or array
// overwritten), and a key of a struct matches its field in any case
// ("Root", "ROOT", even "hooKs" with a Kelvin sign for the K). crun
// reads keys as written. cfs-runtime's rewrite of config.json, and what it
// verifies, would then disagree with what the runtime starts: scanConfig
// refuses every duplicate key (compared after unescaping, at every depth)
// and every key that is a runtime-spec field spelled in another case (in
// the objects specs.Spec decodes into structs; the keys of its maps, such
// as annotations, are exact). In what is left each key has one meaning,
// the same for encoding/json, for crun and for the rewrite.
//
// It does so in the one pass that also checks the syntax (exactly what
// json.Valid accepts) and splits the top-level object for the rewrite and
// for decodeFast: no reflection, no decoding into specs.Spec on every
// create. Which objects are structs comes from specschema.go, generated
// from specs-go's types by TestSpecSchema. FuzzScanConfig holds the scan
// equal to json.Valid and to encoding/json's own matching of keys;
// FuzzRewrite checks that runc reads a patched config as the original.

// errSyntax is JSON that json.Valid refuses; errNotObject a document that
// is not an object. For both, Load asks encoding/json for its error.
var (
	errSyntax    = errors.New("invalid JSON")
	errNotObject = errors.New("not a JSON object")
)

// maxDepth is encoding/json's limit on nested objects and arrays.
const maxDepth = 10000

// A keyError is a key that encoding/json (and so runc) would not read as it
// is written.
type keyError struct {
	path  []pathSeg // the object holding the key, from the top level
	key   string    // unescaped
	field string    // for a field spelled in another case: its spelling
}

// A pathSeg is an object member (index < 0) or an array element.
type pathSeg struct {
	key   string
	index int
}

func (e *keyError) Error() string {
	where := "at top level"
	if len(e.path) > 0 {
		where = "in " + formatPath(e.path)
	}
	if e.field != "" {
		return fmt.Sprintf("key %s %s: runc reads it as the runtime-spec field %q (its JSON decoder ignores case); write %q", quoteKey(e.key), where, e.field, e.field)
	}
	return fmt.Sprintf("duplicate key %s %s: runc would merge or overwrite the values; write each key once", quoteKey(e.key), where)
}

// formatPath writes a path as jq does (.linux.namespaces[0]."a.b"),
// eliding the middle of a very deep one.
func formatPath(path []pathSeg) string {
	var b strings.Builder
	for i, s := range path {
		if len(path) > 32 && i == 16 {
			b.WriteString("...")
		}
		if len(path) > 32 && i >= 16 && i < len(path)-16 {
			continue
		}
		switch {
		case s.index >= 0:
			fmt.Fprintf(&b, "[%d]", s.index)
		case isIdentifier(s.key):
			b.WriteString("." + s.key)
		default:
			b.WriteString("." + quoteKey(s.key))
		}
	}
	return b.String()
}

func isIdentifier(s string) bool {
	for i, c := range []byte(s) {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// quoteKey quotes a key for a one-line message, in ASCII ("hoo\u212as",
// not a Kelvin sign that looks like a K), cutting a long one.
func quoteKey(k string) string {
	const max = 64
	if len(k) <= max {
		return strconv.QuoteToASCII(k)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return strconv.QuoteToASCII(k[:cut]) + "..."
}

// A jtype is what specs.Spec decodes a JSON object or array into, where it
// matters for keys: a struct (its fields, by JSON name), or a map or slice
// of something that holds structs. nil is anything else.
type jtype struct {
	kind   jkind
	fields []jfield
	elem   *jtype
}

type jkind uint8

const (
	jStruct jkind = iota
	jMap
	jSlice
)

type jfield struct {
	name string
	typ  *jtype
}

// field returns the index of the field named exactly key, -1 if none.
// Documents written by Go (podman, containerd) have their keys in field
// order: the search starts after the previous match, at *hint.
func (t *jtype) field(key []byte, hint *int) int {
	n := len(t.fields)
	for k := range n {
		j := *hint + k
		if j >= n {
			j -= n
		}
		if t.fields[j].name == string(key) {
			*hint = j + 1
			return j
		}
	}
	return -1
}

// foldedField returns the field that encoding/json matches key to when no
// field is named exactly key ("" for none): encoding/json folds names as
// bytes.EqualFold does.
func (t *jtype) foldedField(key []byte) string {
	for _, f := range t.fields {
		if strings.EqualFold(string(key), f.name) {
			return f.name
		}
	}
	return ""
}

type member struct {
	key   string // unescaped
	value RawMessage
}

// scanner reads a JSON document that it checks as it goes.
type scanner struct {
	data []byte
	keys [][]byte // the keys seen so far in each object being scanned
	// syntaxOnly: check the syntax alone, as json.Valid does (keys are
	// not compared).
	syntaxOnly bool
}

// scanConfig checks a config.json (see the top of this file) and returns
// the members of its top-level object. Its errors are errSyntax,
// errNotObject or a *keyError (which may hide a later syntax error: the
// scan stops at the key).
func scanConfig(data []byte) ([]member, error) {
	return scanObject(data, &specSpec)
}

// scanObject scans data, an object of type t (nil: no struct anywhere).
func scanObject(data []byte, t *jtype) ([]member, error) {
	s := scanner{data: data}
	i := skipSpace(data, 0)
	if i == len(data) {
		return nil, errSyntax
	}
	if data[i] != '{' {
		if !validJSON(data) { // only on the way to an error
			return nil, errSyntax
		}
		return nil, errNotObject
	}
	var members []member
	end, err := s.object(i, t, 1, &members)
	if err != nil {
		if ke, ok := err.(*keyError); ok {
			// Segments were added from the innermost object outwards.
			for a, b := 0, len(ke.path)-1; a < b; a, b = a+1, b-1 {
				ke.path[a], ke.path[b] = ke.path[b], ke.path[a]
			}
		}
		return nil, err
	}
	if skipSpace(data, end) != len(data) {
		return nil, errSyntax
	}
	return members, nil
}

// value scans the value at data[i] (no space before it), of type t, inside
// depth objects and arrays; it returns the index after it.
func (s *scanner) value(i int, t *jtype, depth int) (int, error) {
	data := s.data
	if i >= len(data) {
		return i, errSyntax
	}
	switch c := data[i]; {
	case c == '{':
		return s.object(i, t, depth+1, nil)
	case c == '[':
		return s.array(i, t, depth+1)
	case c == '"':
		end, _, ok := s.str(i)
		if !ok {
			return i, errSyntax
		}
		return end, nil
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number(i)
	}
	return i, errSyntax
}

// object scans the object at data[i]; collect, if not nil, gets its members.
func (s *scanner) object(i int, t *jtype, depth int, collect *[]member) (int, error) {
	if depth > maxDepth {
		return i, errSyntax
	}
	data := s.data
	var st, elem *jtype
	if t != nil {
		switch t.kind {
		case jStruct:
			st = t
		case jMap:
			elem = t.elem
		}
	}
	base := len(s.keys)
	defer func() { s.keys = s.keys[:base] }()
	var seen map[string]struct{} // for large objects (annotations)
	hint := 0
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return i, errSyntax
		}
		kend, plain, ok := s.str(i)
		if !ok {
			return i, errSyntax
		}
		if s.syntaxOnly {
			i = skipSpace(data, kend)
			if i >= len(data) || data[i] != ':' {
				return i, errSyntax
			}
			end, err := s.value(skipSpace(data, i+1), nil, depth)
			if err != nil {
				return end, err
			}
			var done bool
			if i, done, err = s.next(end, '}'); done || err != nil {
				return i, err
			}
			continue
		}
		key := data[i+1 : kend-1]
		if !plain && (bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key)) {
			// As encoding/json unquotes a key: escapes decoded, invalid
			// UTF-8 replaced by U+FFFD.
			k, ok := unquote(data[i:kend])
			if !ok {
				return i, errSyntax
			}
			key = k
		}
		child := elem
		if st != nil {
			if f := st.field(key, &hint); f >= 0 {
				child = st.fields[f].typ
			} else if name := st.foldedField(key); name != "" {
				return i, &keyError{key: string(key), field: name}
			}
		}
		if seen == nil {
			for _, k := range s.keys[base:] {
				if bytes.Equal(k, key) {
					return i, &keyError{key: string(key)}
				}
			}
			s.keys = append(s.keys, key)
			if len(s.keys)-base > 32 {
				seen = make(map[string]struct{}, 2*(len(s.keys)-base))
				for _, k := range s.keys[base:] {
					seen[string(k)] = struct{}{}
				}
			}
		} else {
			if _, dup := seen[string(key)]; dup {
				return i, &keyError{key: string(key)}
			}
			seen[string(key)] = struct{}{}
		}
		i = skipSpace(data, kend)
		if i >= len(data) || data[i] != ':' {
			return i, errSyntax
		}
		i = skipSpace(data, i+1)
		end, err := s.value(i, child, depth)
		if err != nil {
			if ke, ok := err.(*keyError); ok {
				ke.path = append(ke.path, pathSeg{key: string(key), index: -1})
			}
			return end, err
		}
		if collect != nil {
			*collect = append(*collect, member{key: string(key), value: data[i:end:end]})
		}
		var done bool
		if i, done, err = s.next(end, '}'); done || err != nil {
			return i, err
		}
	}
}

// array scans the array at data[i].
func (s *scanner) array(i int, t *jtype, depth int) (int, error) {
	if depth > maxDepth {
		return i, errSyntax
	}
	data := s.data
	var elem *jtype
	if t != nil && t.kind == jSlice {
		elem = t.elem
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		end, err := s.value(i, elem, depth)
		if err != nil {
			if ke, ok := err.(*keyError); ok {
				ke.path = append(ke.path, pathSeg{index: n})
			}
			return end, err
		}
		var done bool
		if i, done, err = s.next(end, ']'); done || err != nil {
			return i, err
		}
	}
}

// next reads what follows a member or element ending at data[i]: the
// closing bracket (done, the index after it) or a comma (the index of the
// next value).
func (s *scanner) next(i int, closing byte) (int, bool, error) {
	i = skipSpace(s.data, i)
	switch {
	case i >= len(s.data):
		return i, false, errSyntax
	case s.data[i] == closing:
		return i + 1, true, nil
	case s.data[i] == ',':
		return skipSpace(s.data, i+1), false, nil
	}
	return i, false, errSyntax
}

// str scans the string at data[i] and reports whether it is plain: no
// escapes, only ASCII.
func (s *scanner) str(i int) (end int, plain, ok bool) {
	data := s.data
	plain = true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1, plain, true
		case c == '\\':
			plain = false
			j++
			if j >= len(data) {
				return j, false, false
			}
			switch data[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(data) || !isHex(data[j+1]) || !isHex(data[j+2]) || !isHex(data[j+3]) || !isHex(data[j+4]) {
					return j, false, false
				}
				j += 4
			default:
				return j, false, false
			}
		case c < 0x20:
			return j, false, false
		case c >= utf8.RuneSelf:
			plain = false // encoding/json accepts any bytes here
		}
	}
	return len(data), false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (s *scanner) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(s.data[i:], []byte(lit)) {
		return i, errSyntax
	}
	return i + len(lit), nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number(i int) (int, error) {
	data := s.data
	j := i
	if data[j] == '-' {
		j++
	}
	switch {
	case j < len(data) && data[j] == '0':
		j++
	case j < len(data) && '1' <= data[j] && data[j] <= '9':
		j = skipDigits(data, j)
	default:
		return j, errSyntax
	}
	if j < len(data) && data[j] == '.' {
		if j++; j >= len(data) || !isDigit(data[j]) {
			return j, errSyntax
		}
		j = skipDigits(data, j)
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		if j++; j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		if j >= len(data) || !isDigit(data[j]) {
			return j, errSyntax
		}
		j = skipDigits(data, j)
	}
	return j, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipDigits(data []byte, j int) int {
	for j < len(data) && isDigit(data[j]) {
		j++
	}
	return j
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// Reading a config.json is on the path of every create, and decoding it
// with encoding/json's reflection is costly in a fresh process (cold code
// and type caches; docs/performance.md says how costly). decodeFast reads
// the two parts cfs-runtime needs (root and annotations) from scanConfig's
// split instead. It handles the plain case only: no escapes in the strings
// it decodes, values of the types specs.Spec has. For anything else it
// reports false and Load decodes with encoding/json, so results and errors
// are encoding/json's (and runc's, which decodes with it too).
// FuzzDecodeFast holds the two equal.
func decodeFast(data []byte) (doc map[string]RawMessage, view *View, ok bool) {
	members, err := scanConfig(data)
	if err != nil {
		return nil, nil, false
	}
	return decodeMembers(members)
}

// decodeMembers is decodeFast on scanConfig's split.
func decodeMembers(members []member) (doc map[string]RawMessage, view *View, ok bool) {
	doc = make(map[string]RawMessage, len(members))
	view = &View{}
	for _, m := range members {
		doc[m.key] = m.value
		switch m.key {
		case "root":
			if view.Root, ok = decodeRoot(m.value); !ok {
				return nil, nil, false
			}
		case "annotations":
			if view.Annotations, ok = decodeStringMap(m.value); !ok {
				return nil, nil, false
			}
		}
	}
	return doc, view, true
}

// decodeRoot reads the "root" object: null, or path (a string) and readonly
// (a boolean), other keys ignored as encoding/json ignores them. (Keys are
// unique and spelled as the spec spells them: scanConfig checked.)
func decodeRoot(raw RawMessage) (*Root, bool) {
	if string(raw) == "null" {
		return nil, true
	}
	members, err := scanObject(raw, nil)
	if err != nil {
		return nil, false
	}
	root := &Root{}
	var ok bool
	for _, m := range members {
		switch m.key {
		case "path":
			if root.Path, ok = plainString(m.value); !ok {
				return nil, false
			}
		case "readonly":
			switch string(m.value) {
			case "true":
				root.Readonly = true
			case "false":
			default:
				return nil, false
			}
		}
	}
	return root, true
}

// decodeStringMap reads an object of strings (annotations): null gives nil.
func decodeStringMap(raw RawMessage) (map[string]string, bool) {
	if string(raw) == "null" {
		return nil, true
	}
	members, err := scanObject(raw, nil)
	if err != nil {
		return nil, false
	}
	m := make(map[string]string, len(members))
	for _, mb := range members {
		v, ok := plainString(mb.value)
		if !ok {
			return nil, false
		}
		m[mb.key] = v
	}
	return m, true
}

// plainString decodes a JSON string without escapes whose bytes are valid
// UTF-8 (encoding/json would replace invalid bytes with U+FFFD).
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

// validJSON is json.Valid: one JSON value, space around it.
func validJSON(data []byte) bool {
	s := scanner{data: data, syntaxOnly: true}
	end, err := s.value(skipSpace(data, 0), nil, 0)
	return err == nil && skipSpace(data, end) == len(data)
}

// unquote decodes a JSON string (quotes included) that the scan accepted,
// as encoding/json does: escapes decoded, a \u escape of half a surrogate
// pair alone and each byte of invalid UTF-8 replaced by U+FFFD.
// FuzzUnquote holds it equal to encoding/json.
func unquote(q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	s := q[1 : len(q)-1]
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			r++
			if r >= len(s) {
				return nil, false
			}
			switch s[r] {
			case '"', '\\', '/':
				b = append(b, s[r])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				if rr < 0 {
					return nil, false
				}
				r += 4
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r+1:])); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec) // a pair
						r += 6
						break
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
			default:
				return nil, false
			}
			r++
		case c == '"' || c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	return b, true
}

// getu4 decodes \uXXXX at the start of s, -1 if there is none.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
