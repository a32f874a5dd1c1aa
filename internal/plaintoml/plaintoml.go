// Package plaintoml reads the plain subset of TOML that cfs-runtime's
// configuration and trust policy are written in, without go-toml's
// reflection, and words go-toml's errors as "file:line: key k: problem".
package plaintoml

import (
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Decoding a TOML file with go-toml's reflection is costly in a fresh
// process, and cfs-runtime decodes two (this configuration and the trust
// policy) before every create; go-toml's parser alone costs a fraction of
// it (docs/performance.md says how much). Decode walks the parser's
// expressions for the plain subset of TOML these files are written in, and
// reports false for anything else (and for any error): callers then decode
// with go-toml, whose results and error messages stay authoritative. The
// callers' fuzz targets (config, attest) hold the two equal wherever the
// plain path answers.

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
// arrays of strings; no
// [table] headers, only [[array]] ones.
func Decode(data []byte) (Doc, bool) {
	doc := Doc{Top: Table{}}
	cur := doc.Top
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			k, ok := singleKey(e)
			if !ok {
				return Doc{}, false
			}
			if _, dup := cur[k]; dup {
				return Doc{}, false
			}
			v, ok := plainValue(e.Value())
			if !ok {
				return Doc{}, false
			}
			cur[k] = v
		case unstable.ArrayTable:
			k, ok := singleKey(e)
			if !ok {
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
		default:
			return Doc{}, false
		}
	}
	if p.Error() != nil {
		return Doc{}, false
	}
	for k := range doc.Arrays {
		if _, clash := doc.Top[k]; clash {
			return Doc{}, false
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
	case unstable.Array:
		l := []string{}
		it := v.Children()
		for it.Next() {
			if it.Node().Kind != unstable.String {
				return nil, false
			}
			l = append(l, string(it.Node().Data))
		}
		return l, true
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
