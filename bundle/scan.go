package bundle

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Reading a config.json is on the path of every create, and decoding it
// with encoding/json's reflection costs about 0.25 ms in a fresh process
// (cold code and type caches), a quarter of all that cfs-runtime adds to a
// pass-through `run`. decodeFast splits the document and reads the two
// parts cfs-runtime needs (root and annotations) by scanning instead. It
// handles the plain case only: input that json.Valid accepts, no escapes in
// the keys and strings it decodes, no duplicate or case-folded spelling of
// the keys it reads. For anything else it reports false and Load decodes
// with encoding/json, so results and errors are encoding/json's (and
// runc's, which decodes with it too). FuzzDecodeFast holds the two equal.
func decodeFast(data []byte) (doc map[string]json.RawMessage, view *View, ok bool) {
	if !json.Valid(data) {
		return nil, nil, false
	}
	members, ok := splitObject(data)
	if !ok {
		return nil, nil, false
	}
	doc = make(map[string]json.RawMessage, len(members))
	view = &View{}
	var seenRoot, seenAnnotations bool
	for _, m := range members {
		doc[m.key] = m.value
		switch {
		case m.key == "root":
			if seenRoot {
				return nil, nil, false // encoding/json merges repeated objects
			}
			seenRoot = true
			if view.Root, ok = decodeRoot(m.value); !ok {
				return nil, nil, false
			}
		case m.key == "annotations":
			if seenAnnotations {
				return nil, nil, false
			}
			seenAnnotations = true
			if view.Annotations, ok = decodeStringMap(m.value); !ok {
				return nil, nil, false
			}
		case strings.EqualFold(m.key, "root"), strings.EqualFold(m.key, "annotations"):
			return nil, nil, false // encoding/json matches field names case-insensitively
		}
	}
	return doc, view, true
}

type member struct {
	key   string
	value json.RawMessage
}

// splitObject returns the members of the JSON object in data, which must be
// valid JSON; false if it is not an object or a key has an escape.
func splitObject(data []byte) ([]member, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	var members []member
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return members, true
	}
	for {
		end, plain := scanString(data, i)
		if !plain {
			return nil, false
		}
		key := string(data[i+1 : end-1])
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // ':'
		end = scanValue(data, i)
		members = append(members, member{key: key, value: data[i:end:end]})
		i = skipSpace(data, end)
		if data[i] == '}' {
			return members, true
		}
		i = skipSpace(data, i+1) // ','
	}
}

// decodeRoot reads the "root" object: null, or path (a string) and readonly
// (a boolean), other keys ignored as encoding/json ignores them.
func decodeRoot(raw json.RawMessage) (*specs.Root, bool) {
	if string(raw) == "null" {
		return nil, true
	}
	members, ok := splitObject(raw)
	if !ok {
		return nil, false
	}
	root := &specs.Root{}
	var seenPath, seenReadonly bool
	for _, m := range members {
		switch {
		case m.key == "path" && !seenPath:
			seenPath = true
			if root.Path, ok = plainString(m.value); !ok {
				return nil, false
			}
		case m.key == "readonly" && !seenReadonly:
			seenReadonly = true
			switch string(m.value) {
			case "true":
				root.Readonly = true
			case "false":
			default:
				return nil, false
			}
		case strings.EqualFold(m.key, "path"), strings.EqualFold(m.key, "readonly"):
			return nil, false
		}
	}
	return root, true
}

// decodeStringMap reads an object of strings (annotations): null gives nil.
func decodeStringMap(raw json.RawMessage) (map[string]string, bool) {
	if string(raw) == "null" {
		return nil, true
	}
	members, ok := splitObject(raw)
	if !ok {
		return nil, false
	}
	m := make(map[string]string, len(members))
	for _, mb := range members {
		if !utf8.ValidString(mb.key) {
			return nil, false
		}
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

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at data[i] and
// whether it is plain: no escapes and valid UTF-8.
func scanString(data []byte, i int) (end int, plain bool) {
	plain = true
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			plain = false
			j++
		case '"':
			return j + 1, plain && utf8.Valid(data[i+1:j])
		}
	}
	return len(data), false
}

// scanValue returns the index after the (valid) JSON value at data[i].
func scanValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		end, _ := scanString(data, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := scanString(data, j)
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	}
	// A number or a literal: up to the next delimiter.
	j := i
	for ; j < len(data); j++ {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
	}
	return j
}
