//go:build linux

package hooks

import (
	"errors"
	"strings"
	"testing"
)

func TestReadState(t *testing.T) {
	// what runc 1.1 writes to a createRuntime hook's stdin
	st, err := ReadState(strings.NewReader(`{"ociVersion":"1.0.2-dev","id":"web-1","status":"creating","pid":4242,"bundle":"/run/bundles/web-1","annotations":{"a":"b"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "web-1" || st.Bundle != "/run/bundles/web-1" || st.Pid != 4242 || st.Status != "creating" || st.Annotations["a"] != "b" {
		t.Errorf("state %+v", st)
	}

	for _, tc := range []struct{ name, in, want string }{
		{"empty", " \n", "invalid OCI state on stdin: empty (the runtime passes the container's state as JSON; run this as an OCI hook)"},
		{"not-json", "{", "invalid OCI state on stdin: unexpected end of JSON input"},
		{"wrong-type", `{"id": 7}`, "invalid OCI state on stdin: json: cannot unmarshal number into Go struct field State.id of type string"},
		{"no-id", `{"bundle": "/b"}`, "invalid OCI state on stdin: no id"},
		{"no-bundle", `{"id": "c1"}`, "invalid OCI state on stdin: container c1: no bundle"},
		{"relative-bundle", `{"id": "c1", "bundle": "b"}`, `invalid OCI state on stdin: container c1: bundle "b" is not an absolute path`},
		{"too-large", `{"id": "c1", "annotations": {"a": "` + strings.Repeat("x", maxState) + `"}}`, "invalid OCI state on stdin: larger than 4194304 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadState(strings.NewReader(tc.in))
			if !errors.Is(err, ErrState) || err.Error() != tc.want {
				t.Errorf("\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}
