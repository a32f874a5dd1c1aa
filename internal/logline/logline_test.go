package logline

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// slogLine is what package logging's logger writes for the same record.
func slogLine(t time.Time, msg string, pid int, kv ...string) []byte {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, nil).WithAttrs([]slog.Attr{slog.Int("pid", pid)})
	r := slog.NewRecord(t, slog.LevelWarn, msg, 0)
	for i := 0; i+1 < len(kv); i += 2 {
		r.AddAttrs(slog.String(kv[i], kv[i+1]))
	}
	h.Handle(context.Background(), r)
	return buf.Bytes()
}

func checkSame(t *testing.T, tm time.Time, msg string, kv ...string) {
	t.Helper()
	got, want := Format(tm, "WARN", msg, 4242, kv...), slogLine(tm, msg, 4242, kv...)
	if !bytes.Equal(got, want) {
		t.Fatalf("logline:\n%s\nslog:\n%s", got, want)
	}
}

var cases = [][]string{
	{"starting unverified container", "id", "c1", "bundle", "/run/b", "verdict", `no composefs digest: allowed unsigned by rule "sandbox"`},
	{"", "", "", "a=b", "x y", "q", `"`},
	{"tab\there", "k", "back\\slash", "ctl", "\x01\x7f", "uni", "héllo", "nbsp", "a\u00a0b", "bad", "\xff"},
}

func TestSameAsSlog(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 7, 4, 5, 6, 0, time.UTC),
		time.Date(2026, 12, 7, 4, 5, 6, 999_999_999, time.FixedZone("x", 3600+1800)),
		time.Date(2026, 1, 2, 3, 4, 5, 120_000_000, time.Local),
	} {
		for _, c := range cases {
			checkSame(t, tm, c[0], c[1:]...)
		}
	}
}

func FuzzSameAsSlog(f *testing.F) {
	for _, c := range cases {
		f.Add(c[0], c[1], c[2], int64(1765080306123456789))
	}
	f.Fuzz(func(t *testing.T, msg, k, v string, ns int64) {
		checkSame(t, time.Unix(0, ns).UTC(), msg, k, v)
	})
}

func TestWarnHonoursLevel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "own.log")
	if err := Warn(p, "error", "hidden"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("log_level error wrote a warning: %v", err)
	}
	for _, lv := range []string{"debug", "info", "warn"} {
		if err := Warn(p, lv, "shown", "level", lv); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(p)
	if n := bytes.Count(data, []byte("level=WARN msg=shown pid=")); n != 3 {
		t.Fatalf("%d warnings in %q", n, data)
	}
	if err := Warn("", "debug", "nowhere"); err != nil {
		t.Fatal(err)
	}
}
