package bundle

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
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
	{Input: `{"annotations": {"a": "1", "a": "2"}}`, Fast: true},
	{Input: `{"a": "\"quoted\"", "b": [1.5e3, true, null, "x\\"]}`, Fast: true},
	{Input: `{"annotations": {"k": "ü"}, "process": {"env": ["A=b"]}}`, Fast: true},
	// Declined: encoding/json decides.
	{Input: `null`, Fast: false},
	{Input: `[]`, Fast: false},
	{Input: `{"root": {"path": "a"}, "root": {"readonly": true}}`, Fast: false},
	{Input: `{"annotations": {"a": "1"}, "annotations": {"b": "2"}}`, Fast: false},
	{Input: `{"Root": {"path": "a"}}`, Fast: false},
	{Input: `{"ANNOTATIONS": {"a": "1"}}`, Fast: false},
	{Input: `{"root": {"Path": "a"}}`, Fast: false},
	{Input: `{"root": {"path": "a", "path": "b"}}`, Fast: false},
	{Input: `{"annotations": {"a": "\u0041"}}`, Fast: false},
	{Input: `{"\u0072oot": {"path": "a"}}`, Fast: false},
	{Input: `{"annotations": {"a": 1}}`, Fast: false},
	{Input: `{"root": {"readonly": "yes"}}`, Fast: false},
	{Input: `{"root": "rootfs"}`, Fast: false},
	{Input: "{\"annotations\": {\"a\": \"\xff\"}}", Fast: false},
	{Input: `{"a": 1`, Fast: false},
	{Input: `{"a": 1} x`, Fast: false},
}

func TestDecodeFast(t *testing.T) {
	testutil.CheckFastPath(t, "decodeFast", decodeFastCases, checkDecodeFast)
}

func FuzzDecodeFast(f *testing.F) { testutil.FuzzFastPath(f, decodeFastCases, checkDecodeFast) }
