package audit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzJSON holds the hand-written encoder equal to encoding/json: every
// line is valid JSON that decodes to the event's strings (invalid UTF-8
// as encoding/json replaces it).
func FuzzJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\", "new\nline\ttab\r", "\x00\x1f\x7f", "é ü 漢字", "\xff\xfe bad", "\u2028\u2029", "</script>&"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, reason, signer string) {
		e := Event{Time: time.Unix(1, 5).UTC(), Decision: Deny, ContainerID: "c", Reason: reason, Signer: signer}
		line := e.JSON()
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one line: %q", line)
		}
		var d Event
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("invalid JSON %q: %v", line, err)
		}
		want, _ := json.Marshal(reason)
		var wantReason string
		json.Unmarshal(want, &wantReason)
		if d.Reason != wantReason || !d.Time.Equal(e.Time) || !bytes.Contains(line, []byte(`"time":"1970-01-01T00:00:01.000000005Z"`)) {
			t.Fatalf("decoded %+v, want reason %q", d, wantReason)
		}
	})
}

func TestWriteAndRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.jsonl")
	defer func(m int64, k int, j string) { MaxSize, Keep, JournalSocket = m, k, j }(MaxSize, Keep, JournalSocket)
	JournalSocket = filepath.Join(dir, "no-journal")
	MaxSize, Keep = 1000, 2
	for i := 0; i < 30; i++ {
		if err := Write(path, Event{Decision: Allow, ContainerID: fmt.Sprintf("c%02d", i), Reason: strings.Repeat("x", 100)}); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("audit dir: %v", err)
	}
	var ids []string
	for _, f := range []string{path + ".2", path + ".1", path} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) > MaxSize {
			t.Fatalf("%s: %d bytes", f, len(data))
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			var d Event
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("%s: %q: %v", f, l, err)
			}
			ids = append(ids, d.ContainerID)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more than Keep rotated files")
	}
	// The newest lines, in order, none lost between the files kept.
	last := ids[len(ids)-1]
	if last != "c29" {
		t.Fatalf("last = %s", last)
	}
	for i := 1; i < len(ids); i++ {
		var a, b int
		fmt.Sscanf(ids[i-1], "c%d", &a)
		fmt.Sscanf(ids[i], "c%d", &b)
		if b != a+1 {
			t.Fatalf("lines out of order or lost: %v", ids)
		}
	}
}

// Concurrent writers across a rotation lose no line and split none.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	defer func(m int64, k int, j string) { MaxSize, Keep, JournalSocket = m, k, j }(MaxSize, Keep, JournalSocket)
	JournalSocket = filepath.Join(dir, "no-journal")
	MaxSize, Keep = 20000, 50
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := Write(path, Event{Decision: Deny, ContainerID: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		fh, _ := os.Open(f)
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var d Event
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatalf("%s: %q: %v", f, sc.Text(), err)
			}
			if seen[d.ContainerID] {
				t.Fatalf("%s twice", d.ContainerID)
			}
			seen[d.ContainerID] = true
		}
		fh.Close()
	}
	if len(seen) != 400 {
		t.Fatalf("%d of 400 lines", len(seen))
	}
}

// The journal gets one native-protocol datagram per decision; a value with
// a newline is sent in the binary form.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	defer func(j string) { JournalSocket = j }(JournalSocket)
	JournalSocket = filepath.Join(dir, "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: JournalSocket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := Write("", Event{Decision: Deny, ContainerID: "c1", Image: "quay.io/a/b:1", Digest: "sha256:ab", Signer: "ci", Reason: "two\nlines"}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	b := buf[:n]
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("unterminated field in %q", buf[:n])
		}
		line := b[:nl]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			fields[string(k)] = string(v)
			b = b[nl+1:]
			continue
		}
		size := binary.LittleEndian.Uint64(b[nl+1 : nl+9])
		fields[string(line)] = string(b[nl+9 : nl+9+int(size)])
		if b[nl+9+int(size)] != '\n' {
			t.Fatal("binary field not followed by a newline")
		}
		b = b[nl+10+int(size):]
	}
	want := map[string]string{
		"MESSAGE_ID": MessageID, "PRIORITY": "4", "SYSLOG_IDENTIFIER": "cfs-runtime", "CFS_DECISION": "deny",
		"CFS_CONTAINER_ID": "c1", "CFS_IMAGE": "quay.io/a/b:1", "CFS_DIGEST": "sha256:ab", "CFS_SIGNER": "ci", "CFS_REASON": "two\nlines",
		"MESSAGE": "cfs-runtime deny: container c1, image quay.io/a/b:1, digest sha256:ab, signer \"ci\": two\nlines",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s = %q, want %q", k, fields[k], v)
		}
	}
	if _, ok := fields["CFS_TIME"]; !ok {
		t.Error("no CFS_TIME")
	}
}

// The struct tags readers decode with are the keys JSON writes.
func TestTagsMatchFields(t *testing.T) {
	var e Event
	f := e.fields()
	typ := reflect.TypeOf(e)
	if typ.NumField() != len(f) {
		t.Fatalf("%d fields, %d written", typ.NumField(), len(f))
	}
	for i := range f {
		if tag := typ.Field(i).Tag.Get("json"); tag != f[i][0] {
			t.Errorf("field %s: tag %q, written as %q", typ.Field(i).Name, tag, f[i][0])
		}
	}
}

// BenchmarkWrite is what a create pays for its audit line (no journal):
// open, lock, two stats, one write, close.
func BenchmarkWrite(b *testing.B) {
	dir := b.TempDir()
	defer func(j string) { JournalSocket = j }(JournalSocket)
	JournalSocket = filepath.Join(dir, "no-journal")
	path := filepath.Join(dir, "audit.jsonl")
	e := Event{Decision: Allow, ContainerID: "c", Image: "quay.io/a/b:1", Digest: "sha256:" + strings.Repeat("ab", 32), Signer: "ci", KeyID: strings.Repeat("cd", 32), Enforcement: "require", Reason: "composefs digest ...: cosign signature trusted by signer \"ci\""}
	for i := 0; i < b.N; i++ {
		if err := Write(path, e); err != nil {
			b.Fatal(err)
		}
	}
}
