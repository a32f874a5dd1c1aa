package bundle

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
)

// decodeSlow is what Load does without decodeFast.
func decodeSlow(data []byte) (map[string]json.RawMessage, *View, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	view := &View{}
	if err := json.Unmarshal(data, view); err != nil {
		return nil, nil, err
	}
	return doc, view, nil
}

// decodeFast either declines or gives exactly what encoding/json gives.
func checkDecodeFast(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	doc, view, ok := decodeFast(data)
	if !ok {
		return false
	}
	sdoc, sview, err := decodeSlow(data)
	if err != nil {
		t.Fatalf("decodeFast accepted %q, encoding/json: %v", data, err)
	}
	if sdoc == nil {
		t.Fatalf("decodeFast accepted %q, encoding/json decodes no object", data)
	}
	if len(doc) != len(sdoc) {
		t.Fatalf("%q: decodeFast has %d keys, encoding/json %d", data, len(doc), len(sdoc))
	}
	for k, v := range sdoc {
		if !bytes.Equal(doc[k], v) {
			t.Fatalf("%q: key %q: decodeFast %q, encoding/json %q", data, k, doc[k], v)
		}
	}
	if !reflect.DeepEqual(view, sview) {
		t.Fatalf("%q: decodeFast view %+v (root %+v), encoding/json %+v (root %+v)", data, view, view.Root, sview, sview.Root)
	}
	return true
}

var decodeFastCases = []testutil.FastPathCase{
	{Input: sample, Fast: true},
	{Input: `{}`, Fast: true},
	{Input: ` { "root" : null , "annotations" : null } `, Fast: true},
	{Input: `{"root": {"path": "/r", "readonly": false, "x": [1, {"y": "}"}]}, "annotations": {}}`, Fast: true},
	{Input: `{"a": "\"quoted\"", "b": [1.5e3, true, null, "x\\"]}`, Fast: true},
	{Input: `{"annotations": {"k": "ü"}, "process": {"env": ["A=b"]}}`, Fast: true},
	// Keys are compared unescaped, as encoding/json compares them.
	{Input: `{"\u0072oot": {"p\u0061th": "a"}, "annotations": {"\u00fc": "b", "\ud800": "c"}}`, Fast: true},
	// Declined: encoding/json decides.
	{Input: `null`, Fast: false},
	{Input: `[]`, Fast: false},
	{Input: `{"annotations": {"a": "\u0041"}}`, Fast: false},
	{Input: `{"annotations": {"a": 1}}`, Fast: false},
	{Input: `{"root": {"readonly": "yes"}}`, Fast: false},
	{Input: `{"root": "rootfs"}`, Fast: false},
	{Input: "{\"annotations\": {\"a\": \"\xff\"}}", Fast: false},
	{Input: `{"a": 1`, Fast: false},
	{Input: `{"a": 1} x`, Fast: false},
	// Declined: Load refuses them (scanConfig).
	{Input: `{"annotations": {"a": "1", "a": "2"}}`, Fast: false},
	{Input: `{"root": {"path": "a"}, "root": {"readonly": true}}`, Fast: false},
	{Input: `{"annotations": {"a": "1"}, "annotations": {"b": "2"}}`, Fast: false},
	{Input: `{"Root": {"path": "a"}}`, Fast: false},
	{Input: `{"ANNOTATIONS": {"a": "1"}}`, Fast: false},
	{Input: `{"root": {"Path": "a"}}`, Fast: false},
	{Input: `{"root": {"path": "a", "path": "b"}}`, Fast: false},
}

func TestDecodeFast(t *testing.T) {
	testutil.CheckFastPath(t, "decodeFast", decodeFastCases, checkDecodeFast)
}

func FuzzDecodeFast(f *testing.F) { testutil.FuzzFastPath(f, decodeFastCases, checkDecodeFast) }

// refScan is scanConfig's verdict reached another way: json.Valid for the
// syntax, json.Decoder's tokens for the keys (unescaped by encoding/json),
// reflection on specs-go's types for where its structs are, and
// encoding/json itself (DisallowUnknownFields) for the keys a struct takes.
func refScan(data []byte) ([]member, error) {
	if !json.Valid(data) {
		return nil, errSyntax
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc == nil {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := refValue(dec, reflect.TypeFor[specs.Spec]()); err != nil {
		ke := err.(*keyError)
		slices.Reverse(ke.path)
		return nil, ke
	}
	// The members, in document order.
	dec = json.NewDecoder(bytes.NewReader(data))
	var members []member
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			panic(err)
		}
		members = append(members, member{key: tok.(string), value: RawMessage(raw)})
	}
	return members, nil
}

// refValue checks the keys of the next value, of Go type t (nil: none).
func refValue(dec *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		panic(err) // json.Valid accepted it
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, _ := dec.Token()
			key := tok.(string)
			var child reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Struct && decodesField(t, key):
				fields := jsonFields(t)
				i := slices.IndexFunc(fields, func(f jsonField) bool { return f.name == key })
				if i < 0 {
					i = slices.IndexFunc(fields, func(f jsonField) bool { return strings.EqualFold(f.name, key) })
					return &keyError{key: key, field: fields[i].name}
				}
				child = fields[i].typ
			case t != nil && t.Kind() == reflect.Map:
				child = t.Elem()
			}
			if seen[key] {
				return &keyError{key: key}
			}
			seen[key] = true
			if err := refValue(dec, child); err != nil {
				ke := err.(*keyError)
				ke.path = append(ke.path, pathSeg{key: key, index: -1})
				return ke
			}
		}
		dec.Token()
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for n := 0; dec.More(); n++ {
			if err := refValue(dec, elem); err != nil {
				ke := err.(*keyError)
				ke.path = append(ke.path, pathSeg{index: n})
				return ke
			}
		}
		dec.Token()
	}
	return nil
}

// checkScan: scanConfig says what refScan says. A key error may hide a
// later syntax error (Load then reports encoding/json's).
func checkScan(t *testing.T, data []byte) {
	t.Helper()
	members, err := scanConfig(data)
	rmembers, rerr := refScan(data)
	if ke, ok := err.(*keyError); ok && rerr == errSyntax {
		if _, _, perr := parse(data, bundlejson.JSON); perr == nil || perr == error(ke) || !strings.HasPrefix(perr.Error(), "invalid JSON at offset") {
			t.Fatalf("%q: key error %v before a syntax error, parse says %v", data, ke, perr)
		}
		return
	}
	if !reflect.DeepEqual(err, rerr) {
		t.Fatalf("%q: scanConfig: %#v (%v), reference: %#v (%v)", data, err, err, rerr, rerr)
	}
	if err == nil && !reflect.DeepEqual(members, rmembers) && !(len(members) == 0 && len(rmembers) == 0) {
		t.Fatalf("%q: scanConfig members %q, reference %q", data, members, rmembers)
	}
}

// configSeeds are the shapes that decide what runc reads: duplicate keys
// at several depths, keys in another case and with escapes, big numbers,
// unknown fields, hooks. FuzzScanConfig and FuzzRewrite start from them.
var configSeeds = []string{
	// Issue #15: the second "linux" lost the first one's namespaces.
	`{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}, "linux": {"maskedPaths": ["/proc/kcore"]}}`,
	`{"root": {"path": "rootfs"}, "root": {"readonly": true}}`,
	`{"hooks": {"poststop": [{"path": "/a"}]}, "hooks": {"prestart": [{"path": "/b"}]}}`,
	`{"hooks": {"poststop": [{"path": "/a"}], "poststop": [{"path": "/b"}]}}`,
	`{"linux": {"namespaces": [{"type": "pid", "type": "network"}]}}`,
	`{"linux": {"resources": {"memory": {"limit": 1, "limit": 2}}}}`,
	`{"annotations": {"a": "1", "a": "2"}}`,
	`{"linux": {"sysctl": {"net.ipv4.ip_forward": "1", "net.ipv4.ip_forward": "0"}}}`,
	`{"process": {"env": ["A=1"], "user": {"uid": 0, "gid": 0}}, "vendor": {"x": 1, "x": 2}}`,
	`{"process": {"args": [{"a": 1, "a": 2}]}}`,
	// Escapes: the same key twice, or a field name.
	`{"root": {"path": "a"}, "\u0072oot": {"path": "b"}}`,
	`{"\u0072oot": {"path": "rootfs", "r\u0065adonly": true}, "annotations": {"\u0061": "x"}}`,
	`{"annotations": {"\ud800": "1", "\udbff": "2"}}`,
	"{\"annotations\": {\"\xff\": \"1\", \"\xfe\": \"2\"}}",
	`{"annotations": {"a\u0000b": "1", "a\/b": "2", "a/b": "3"}}`,
	// Field names in another case; map keys are exact.
	`{"Root": {"path": "rootfs"}}`,
	`{"root": {"path": "rootfs"}, "ROOT": {"path": "/evil"}}`,
	`{"hooks": {"Poststop": [{"path": "/a"}]}}`,
	"{\"hoo\u212as\": {\"poststop\": [{\"path\": \"/a\"}]}}",
	"{\"linux\": {\"namespaces\": [{\"type\": \"pid\"}]}, \"linu\u017f\": {}}",
	`{"linux": {"Namespaces": []}}`,
	`{"process": {"User": {"uid": 1}}}`,
	`{"annotations": {"a": "1", "A": "2"}, "linux": {"sysctl": {"k": "1", "K": "2"}}}`,
	`{"linux": {"resources": {"unified": {"memory.max": "1", "MEMORY.MAX": "2"}}}}`,
	`{"linux": {"timeOffsets": {"boottime": {"secs": 1, "Secs": 2}}}}`,
	`{"linux": {"resources": {"blockIO": {"weightDevice": [{"major": 8, "MAJOR": 9}]}}}}`,
	// Big numbers: kept as written, where runc ignores or refuses them.
	`{"vendor": {"big": 18446744073709551616, "huge": 1e400, "neg": -1e-400}, "root": {"path": "r"}}`,
	`{"process": {"user": {"uid": 18446744073709551616}}}`,
	`{"linux": {"resources": {"memory": {"limit": 1e400}}}}`,
	`{"process": {"oomScoreAdj": 1.5}}`,
	// Unknown fields and hooks, nested.
	`{"ociVersion": "1.2.0", "future": {"root": {"path": "x"}, "root": 1}, "root": {"path": "r", "future": [1, {"k": "v"}]}}`,
	`{"hooks": {"prestart": [{"path": "/p", "args": ["p"], "env": ["A=1"], "timeout": 5}], "poststop": [{"path": "/s"}, {"path": "/usr/local/bin/cfs-runtime", "args": ["cfs-runtime", "cleanup", "old"]}], "future": [{"path": "/f"}]}}`,
	`{"hooks": null, "root": null, "annotations": null}`,
	`{"hooks": {"poststop": null}}`,
	`{"hooks": {"poststop": [{"path": "/s", "timeout": "x"}]}}`,
	`{"hooks": []}`,
	`{"hooks": {"poststop": {}}}`,
	`{"root": {"path": 5}}`,
	`{"root": [], "hooks": {}}`,
	`{"annotations": {"<&>": "\u2028"}, "process": {"args": ["<script>", "a&b"]}}`,
	// Not objects, not JSON.
	`[{"a": 1, "a": 2}]`, `null`, `"x"`, ``, ` `, `{`, `{"a": 1,}`, `{"a" 1}`, `{"a": 01}`,
	`{"a": 1.}`, `{"a": -}`, `{"a": 1e}`, `{"a": tru}`, `{"a": "\x"}`, "{\"a\": \"\x01\"}",
	`{"a": "\u12"}`, `{"a": [1, 2,]}`, `{"a": 1} {}`, `{"a": 1, "a": 2`, "\ufeff{}",
}

func TestScanConfig(t *testing.T) {
	for _, s := range rewriteSeeds(t) {
		checkScan(t, s)
	}
	// encoding/json's nesting limit, 10000.
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		objects := strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
		arrays := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}"
		for _, doc := range []string{objects, arrays} {
			_, err := scanConfig([]byte(doc))
			if (err == nil) != (depth <= maxDepth) {
				t.Errorf("depth %d: %v", depth, err)
			}
			checkScan(t, []byte(doc))
		}
	}
	for _, c := range []struct{ in, want string }{
		{configSeeds[0], `duplicate key "linux" at top level: runc would merge or overwrite the values; write each key once`},
		{configSeeds[4], `duplicate key "type" in .linux.namespaces[0]: runc would merge or overwrite the values; write each key once`},
		{configSeeds[7], `duplicate key "net.ipv4.ip_forward" in .linux.sysctl: runc would merge or overwrite the values; write each key once`},
		{configSeeds[10], `duplicate key "root" at top level: runc would merge or overwrite the values; write each key once`},
		{configSeeds[13], `duplicate key "\ufffd" in .annotations: runc would merge or overwrite the values; write each key once`},
		{configSeeds[15], `key "Root" at top level: runc reads it as the runtime-spec field "root" (its JSON decoder ignores case); write "root"`},
		{configSeeds[18], `key "hoo\u212as" at top level: runc reads it as the runtime-spec field "hooks" (its JSON decoder ignores case); write "hooks"`},
		{configSeeds[25], `key "MAJOR" in .linux.resources.blockIO.weightDevice[0]: runc reads it as the runtime-spec field "major" (its JSON decoder ignores case); write "major"`},
		{`{"annotations": {"a.b": {"c": 1, "c": 2}}}`, `duplicate key "c" in .annotations."a.b": runc would merge or overwrite the values; write each key once`},
	} {
		if _, err := scanConfig([]byte(c.in)); err == nil || err.Error() != c.want {
			t.Errorf("%s:\n got %v\nwant %s", c.in, err, c.want)
		}
	}
	// Map keys are exact, annotations and sysctl alike.
	if _, err := scanConfig([]byte(configSeeds[22])); err != nil {
		t.Errorf("keys that differ in case in maps: %v", err)
	}
}

func FuzzScanConfig(f *testing.F) {
	for _, s := range rewriteSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkScan(t, data) })
}

// unquote decodes every string the scan accepts as encoding/json does.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`""`, `"plain"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u0041\u00e9\u212a"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`, "\"\xff\xfe\"", "\"é\"", `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		sc := scanner{data: q}
		end, _, ok := sc.str(0)
		if len(q) == 0 || q[0] != '"' || !ok || end != len(q) {
			return
		}
		var want string
		if err := json.Unmarshal(q, &want); err != nil {
			t.Fatalf("the scan accepted %q, encoding/json: %v", q, err)
		}
		got, ok := unquote(q)
		if !ok || string(got) != want {
			t.Fatalf("unquote(%q) = %q, %v; encoding/json: %q", q, got, ok, want)
		}
	})
}

// validJSON is json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, ` 1 `, `"x"`, `{"a":1,"a":2}`, `{"a":}`, `[1,]`, `nul`, `{"a":[{"b":null}]}`, ``, ` `, `1 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid: %v", data, got, want)
		}
	})
}
