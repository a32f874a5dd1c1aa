package config

import (
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Decoding a TOML file with go-toml's reflection costs about 0.12 ms in a
// fresh process, and cfs-runtime decodes two (this configuration and the
// trust policy) before every create: together more than a third of what
// it adds to a pass-through `run`. go-toml's parser alone costs a tenth of
// that. DecodePlain walks the parser's expressions for the plain subset
// of TOML these files are written in, and reports false for anything else
// (and for any error): callers then decode with go-toml, whose results and
// error messages stay authoritative. FuzzDecodePlain* hold the two equal
// wherever the plain path answers.

// PlainTable holds a table's keys: string, int64, bool, or map[string]string
// (an inline table of strings).
type PlainTable map[string]any

// PlainDoc is a document of the plain subset: top-level keys, then arrays
// of tables ([[name]]) of the same keys.
type PlainDoc struct {
	Top    PlainTable
	Arrays map[string][]PlainTable
}

// DecodePlain decodes data if it is valid TOML of the plain subset: keys
// that are one bare or quoted name, each defined once; values that are
// strings, decimal integers, booleans or inline tables of strings; no
// [table] headers, only [[array]] ones.
func DecodePlain(data []byte) (PlainDoc, bool) {
	doc := PlainDoc{Top: PlainTable{}}
	cur := doc.Top
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			k, ok := singleKey(e)
			if !ok {
				return PlainDoc{}, false
			}
			if _, dup := cur[k]; dup {
				return PlainDoc{}, false
			}
			v, ok := plainValue(e.Value())
			if !ok {
				return PlainDoc{}, false
			}
			cur[k] = v
		case unstable.ArrayTable:
			k, ok := singleKey(e)
			if !ok {
				return PlainDoc{}, false
			}
			if _, clash := doc.Top[k]; clash {
				return PlainDoc{}, false
			}
			if doc.Arrays == nil {
				doc.Arrays = map[string][]PlainTable{}
			}
			cur = PlainTable{}
			doc.Arrays[k] = append(doc.Arrays[k], cur)
		default:
			return PlainDoc{}, false
		}
	}
	if p.Error() != nil {
		return PlainDoc{}, false
	}
	for k := range doc.Arrays {
		if _, clash := doc.Top[k]; clash {
			return PlainDoc{}, false
		}
	}
	return doc, true
}

// singleKey returns the key of a key-value or header made of one part.
func singleKey(n *unstable.Node) (string, bool) {
	it := n.Key()
	if !it.Next() {
		return "", false
	}
	k := string(it.Node().Data)
	return k, !it.Next()
}

func plainValue(v *unstable.Node) (any, bool) {
	switch v.Kind {
	case unstable.String:
		return string(v.Data), true
	case unstable.Bool:
		return string(v.Data) == "true", true
	case unstable.Integer:
		return plainInt(v.Data)
	case unstable.InlineTable:
		m := map[string]string{}
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			k, ok := singleKey(kv)
			if !ok || kv.Value().Kind != unstable.String {
				return nil, false
			}
			if _, dup := m[k]; dup {
				return nil, false
			}
			m[k] = string(kv.Value().Data)
		}
		return m, true
	}
	return nil, false
}

// plainInt accepts a decimal integer without underscores or leading zeros.
func plainInt(b []byte) (any, bool) {
	digits := b
	if len(digits) > 0 && (digits[0] == '+' || digits[0] == '-') {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return nil, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// plainConfig fills c from a plain document of known string keys; false
// (c untouched) for anything else: unknown keys, other types.
func plainConfig(data []byte, c *Config) bool {
	doc, ok := DecodePlain(data)
	if !ok || len(doc.Arrays) > 0 {
		return false
	}
	out := *c
	for k, v := range doc.Top {
		s, isString := v.(string)
		if !isString {
			return false
		}
		switch k {
		case "runtime":
			out.Runtime = s
		case "store_dir":
			out.StoreDir = s
		case "state_dir":
			out.StateDir = s
		case "log_file":
			out.LogFile = s
		case "log_level":
			out.LogLevel = s
		case "policy":
			out.Policy = s
		default:
			return false
		}
	}
	*c = out
	return true
}
