package bundle

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
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

var decodeFastCases = []struct {
	json string
	fast bool
}{
	{sample, true},
	{`{}`, true},
	{` { "root" : null , "annotations" : null } `, true},
	{`{"root": {"path": "/r", "readonly": false, "x": [1, {"y": "}"}]}, "annotations": {}}`, true},
	{`{"annotations": {"a": "1", "a": "2"}}`, true},
	{`{"a": "\"quoted\"", "b": [1.5e3, true, null, "x\\"]}`, true},
	{`{"annotations": {"k": "ü"}, "process": {"env": ["A=b"]}}`, true},
	// Declined: encoding/json decides.
	{`null`, false},
	{`[]`, false},
	{`{"root": {"path": "a"}, "root": {"readonly": true}}`, false},
	{`{"annotations": {"a": "1"}, "annotations": {"b": "2"}}`, false},
	{`{"Root": {"path": "a"}}`, false},
	{`{"ANNOTATIONS": {"a": "1"}}`, false},
	{`{"root": {"Path": "a"}}`, false},
	{`{"root": {"path": "a", "path": "b"}}`, false},
	{`{"annotations": {"a": "\u0041"}}`, false},
	{`{"\u0072oot": {"path": "a"}}`, false},
	{`{"annotations": {"a": 1}}`, false},
	{`{"root": {"readonly": "yes"}}`, false},
	{`{"root": "rootfs"}`, false},
	{"{\"annotations\": {\"a\": \"\xff\"}}", false},
	{`{"a": 1`, false},
	{`{"a": 1} x`, false},
}

func TestDecodeFast(t *testing.T) {
	for _, c := range decodeFastCases {
		if got := checkDecodeFast(t, []byte(c.json)); got != c.fast {
			t.Errorf("decodeFast(%q) took the fast path: %v, want %v", c.json, got, c.fast)
		}
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, c := range decodeFastCases {
		f.Add([]byte(c.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeFast(t, data) })
}
