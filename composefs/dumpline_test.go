package composefs

import (
	"errors"
	"testing"
)

func TestDumpLineRoundTrip(t *testing.T) {
	for _, c := range []struct {
		line, path, link string
	}{
		{"/ 0 40755 1 0 0 0 0.0 - - -\n", "/", ""},
		{"/a/b\\x20c 3 100644 1 1000 1000 0 1700000000.5 - hi\\n - user.x=1 trusted.overlay.opaque=y\n", "/a/b c", ""},
		{"/deep/er/still/f 0 @100644 1 0 0 0 0.0 /other/target - -\n", "/deep/er/still/f", "/other/target"},
		{"/d/.wh..wh..opq 0 100644 1 0 0 0 0.0 - - -\n", "/d/.wh..wh..opq", ""},
		{"/dev/null 0 20666 1 0 0 259 0.0 - - -\n", "/dev/null", ""},
	} {
		p, n, link, err := ParseDumpLine(c.line[:len(c.line)-1])
		if err != nil || p != c.path || link != c.link || n.Parent != nil {
			t.Fatalf("ParseDumpLine(%q) = %q, %+v, %q, %v", c.line, p, n, link, err)
		}
		if got := string(AppendDumpLine(nil, p, n, link)); got != c.line {
			t.Errorf("AppendDumpLine: %q, want %q", got, c.line)
		}
	}
	for _, bad := range []string{"a 0 40755 1 0 0 0 0.0 - - -", "/x 0 99999 1 0 0 0 0.0 - - -", "/x/../y 0 100644 1 0 0 0 0.0 - - -", "/x 1 100644 1"} {
		if _, _, _, err := ParseDumpLine(bad); !errors.Is(err, ErrInvalidDump) {
			t.Errorf("ParseDumpLine(%q): %v", bad, err)
		}
	}
}
