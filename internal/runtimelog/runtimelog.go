// Package runtimelog writes cfs-runtime's failure where the callers of an
// OCI runtime look for it. conmon, podman and containerd read a runtime's
// failure from the file given with --log (one JSON object per line with
// --log-format json, logrus text otherwise) and from stderr: cfs-runtime
// writes exactly one line there on its own failure and nothing at all on
// success; stdout is never used, because the container inherits it. (Its
// own log is package logging's; this one links no log/slog, for the front
// every runtime call goes through.)
package runtimelog

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/jsonstr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

// FailureLine formats msg as the runtime log line runc would write for an
// error: {"level":"error","msg":...,"time":RFC3339} for "json", logrus text
// otherwise.
func FailureLine(format, msg string, now time.Time) []byte {
	ts := now.Format(time.RFC3339)
	if format == "json" {
		// As json.Marshal writes the struct {Level, Msg, Time}, without
		// encoding/json (see package jsonstr).
		line := []byte(`{"level":"error","msg":`)
		line = jsonstr.Append(line, msg)
		line = append(line, `,"time":`...)
		line = jsonstr.Append(line, ts)
		return append(line, '}', '\n')
	}
	return []byte(fmt.Sprintf("time=%s level=error msg=%s\n", strconv.Quote(ts), strconv.Quote(msg)))
}

// AppendFailure appends FailureLine to the runtime log file path. A single
// write of O_APPEND keeps the line whole next to the runtime's own writes.
func AppendFailure(path, format, msg string, now time.Time) error {
	if path == "" {
		return nil
	}
	f, err := rawfile.OpenAppend(path, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(FailureLine(format, msg, now))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
