// Package audit records every trust decision (allow, deny, unsigned
// allowed) as one JSON line appended to the audit file, and to the
// systemd journal when it runs. It is tiny and links no crypto, no slog
// and no encoding/json, so that the cfs-runtime front could use it too.
// The audit trail is never written to the runtime's log.
package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/jsonstr"
	"golang.org/x/sys/unix"
)

// DefaultPath is the audit file unless the configuration's audit_file
// says otherwise.
const DefaultPath = "/var/log/cfs-runtime/audit.jsonl"

// Decisions.
const (
	Allow           = "allow"
	Deny            = "deny"
	UnsignedAllowed = "unsigned-allowed"
)

// MessageID is the journal's MESSAGE_ID of every decision (journalctl
// MESSAGE_ID=... lists them).
const MessageID = "5a0f6c3e8b2d4e7f9a1c3b5d7e9f0a2c"

// MaxSize is the size at which the audit file is rotated; Keep rotated
// files (FILE.1 newest ... FILE.Keep oldest) are kept.
var (
	MaxSize int64 = 16 << 20
	Keep          = 5
)

// JournalSocket is journald's native protocol socket; a decision is sent
// there when it exists.
var JournalSocket = "/run/systemd/journal/socket"

// Event is one decision. The tags name the JSON keys for readers (JSON
// writes them by hand); keep them equal to fields().
type Event struct {
	Time        time.Time `json:"time"`
	Decision    string    `json:"decision"` // Allow, Deny, UnsignedAllowed
	ContainerID string    `json:"container_id"`
	Image       string    `json:"image"`  // the image reference, "" if none known
	Digest      string    `json:"digest"` // the composefs digest, "" if none
	Signer      string    `json:"signer"`
	KeyID       string    `json:"key_id"`
	Rule        string    `json:"rule"` // the [[allow_unsigned]] rule of an unsigned container
	Enforcement string    `json:"enforcement"`
	Reason      string    `json:"reason"`
}

// fields are the event's keys in the order written; JSON keys and, upper
// cased with a CFS_ prefix, journal fields.
func (e *Event) fields() [][2]string {
	return [][2]string{
		{"time", e.Time.UTC().Format(time.RFC3339Nano)},
		{"decision", e.Decision},
		{"container_id", e.ContainerID},
		{"image", e.Image},
		{"digest", e.Digest},
		{"signer", e.Signer},
		{"key_id", e.KeyID},
		{"rule", e.Rule},
		{"enforcement", e.Enforcement},
		{"reason", e.Reason},
	}
}

// JSON is the event as one line of JSON, newline included. Empty fields
// other than time and decision are left out.
func (e *Event) JSON() []byte {
	b := []byte{'{'}
	for i, f := range e.fields() {
		if f[1] == "" && i > 1 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, f[0])
		b = append(b, ':')
		b = jsonstr.Append(b, f[1])
	}
	return append(b, '}', '\n')
}

// Write appends the event to the audit file at path (created 0600 with its
// directory 0700 when missing, rotated when it has reached MaxSize) in one
// write(2) of one line, and sends it to the journal when journald's socket
// exists. path "" writes no file. A journal that cannot be reached is not
// an error; a file that cannot be written is.
func Write(path string, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	line := e.JSON()
	sendJournal(&e)
	if path == "" {
		return nil
	}
	return appendLine(path, line)
}

// appendLine appends under an exclusive lock on the file, so that
// rotation and concurrent creates never lose or split a line.
func appendLine(path string, line []byte) error {
	for attempt := 0; ; attempt++ {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, unix.ENOENT) && attempt == 0 {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("audit file %s: %w", path, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("audit file %s: %w", path, err)
		}
		done, err := appendLocked(fd, path, line)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("audit file %s: %w", path, err)
		}
		if done {
			return nil
		}
		if attempt > 10 {
			return fmt.Errorf("audit file %s: keeps being replaced", path)
		}
	}
}

// appendLocked writes line to fd unless the file was rotated away since it
// was opened (false: open it again).
func appendLocked(fd int, path string, line []byte) (bool, error) {
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return false, err
	}
	var st, cur unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &cur); err != nil || cur.Ino != st.Ino || cur.Dev != st.Dev {
		return false, nil // rotated meanwhile
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, errors.New("not a regular file")
	}
	if st.Size > 0 && st.Size+int64(len(line)) > MaxSize {
		if err := rotate(path); err != nil {
			return false, err
		}
		return false, nil
	}
	n, err := unix.Write(fd, line)
	if err == nil && n != len(line) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(line))
	}
	return err == nil, err
}

// rotate renames FILE.(Keep-1) to FILE.Keep ... FILE to FILE.1.
func rotate(path string) error {
	for i := Keep - 1; i >= 1; i-- {
		if err := os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Rename(path, path+".1")
}

// sendJournal sends the event with journald's native protocol: one
// datagram of FIELD=value lines (a value with a newline as FIELD, newline,
// 64-bit little-endian length, value).
func sendJournal(e *Event) {
	if _, err := os.Stat(JournalSocket); err != nil {
		return
	}
	msg := fmt.Sprintf("cfs-runtime %s: container %s", e.Decision, e.ContainerID)
	if e.Image != "" {
		msg += ", image " + e.Image
	}
	if e.Digest != "" {
		msg += ", digest " + e.Digest
	}
	if e.Signer != "" {
		msg += ", signer " + strconv.Quote(e.Signer)
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	prio := "6" // info
	if e.Decision != Allow {
		prio = "4" // warning
	}
	var b []byte
	b = journalField(b, "MESSAGE", msg)
	b = journalField(b, "MESSAGE_ID", MessageID)
	b = journalField(b, "PRIORITY", prio)
	b = journalField(b, "SYSLOG_IDENTIFIER", "cfs-runtime")
	for _, f := range e.fields() {
		if f[1] != "" {
			b = journalField(b, "CFS_"+upper(f[0]), f[1])
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = unix.Sendto(fd, b, 0, &unix.SockaddrUnix{Name: JournalSocket})
}

func journalField(b []byte, k, v string) []byte {
	b = append(b, k...)
	for i := 0; i < len(v); i++ {
		if v[i] == '\n' {
			b = append(b, '\n')
			n := uint64(len(v))
			for j := 0; j < 8; j++ {
				b = append(b, byte(n>>(8*j)))
			}
			b = append(b, v...)
			return append(b, '\n')
		}
	}
	b = append(b, '=')
	b = append(b, v...)
	return append(b, '\n')
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
