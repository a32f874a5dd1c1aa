package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/audit"
	"github.com/urfave/cli/v2"
)

// auditCommand prints the audit trail of trust decisions.
var auditCommand = &cli.Command{
	Name:      "audit",
	Usage:     "print the audit trail: one line per trust decision of create",
	ArgsUsage: " ",
	Description: "Reads the audit file (audit_file of the configuration, " + audit.DefaultPath + ")\n" +
		"and its rotated predecessors (FILE.5 ... FILE.1), oldest first, and prints\n" +
		"every decision: time, allow / deny / unsigned-allowed, container id, image\n" +
		"reference, composefs digest, signer and key id, and the reason. --json\n" +
		"prints the JSON lines as they are stored. A line that is not valid JSON is\n" +
		"an error naming the file and line.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "only decisions from `DURATION` ago (1h, 30m) or since a TIME (RFC 3339, or YYYY-MM-DD)"},
		&cli.BoolFlag{Name: "json", Usage: "print the stored JSON lines"},
		&cli.StringFlag{Name: "file", Usage: "audit `FILE`", DefaultText: "audit_file of the configuration"},
	},
	Action: auditAction,
}

func auditAction(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("audit: takes no arguments (usage: cfs-runtime audit [--since DURATION|TIME] [--json])", 2)
	}
	var since time.Time
	if s := c.String("since"); s != "" {
		var err error
		if since, err = parseSince(s, time.Now()); err != nil {
			return cli.Exit("audit: --since: "+err.Error(), 2)
		}
	}
	path := c.String("file")
	if path == "" {
		cfg, err := loadConfig(c)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		path = cfg.AuditFile
	}
	if path == "" {
		return fmt.Errorf("audit: the configuration's audit_file is empty: no audit file is written")
	}
	files := []string{}
	for i := audit.Keep; i >= 1; i-- {
		files = append(files, path+"."+strconv.Itoa(i))
	}
	files = append(files, path)
	found := false
	for _, f := range files {
		err := printAuditFile(c.App.Writer, f, since, c.Bool("json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		found = true
	}
	if !found {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: note: no audit file %s yet: no decision recorded\n", path)
	}
	return nil
}

func printAuditFile(w io.Writer, path string, since time.Time, raw bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r audit.Event
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("%s:%d: not an audit record: %v", path, n, err)
		}
		if r.Time.Before(since) {
			continue
		}
		if raw {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		fmt.Fprintln(w, formatAudit(&r))
	}
	return sc.Err()
}

// formatAudit is one decision on one line: time, decision, container, then
// what is known, then the reason.
func formatAudit(r *audit.Event) string {
	s := []string{r.Time.UTC().Format(time.RFC3339), r.Decision, "container=" + r.ContainerID}
	for _, kv := range [][2]string{{"image", r.Image}, {"digest", r.Digest}, {"signer", r.Signer}, {"key", r.KeyID}, {"rule", r.Rule}, {"enforcement", r.Enforcement}} {
		if kv[1] != "" {
			s = append(s, kv[0]+"="+strconv.Quote(kv[1]))
		}
	}
	out := strings.Join(s, " ")
	if r.Reason != "" {
		out += ": " + r.Reason
	}
	return out
}

// parseSince reads --since: a duration before now, an RFC 3339 time or a
// date (its start, UTC).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (1h30m) nor a time (2026-12-07T10:00:00Z, 2026-12-07)", s)
}
