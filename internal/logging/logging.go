// Package logging is cfs-runtime's own log, where it does not interfere
// with the runtime's (failures for the engines: package runtimelog).
package logging

import (
	"io"
	"log/slog"
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

// Open returns cfs-runtime's own logger, writing text lines to path at level.
// A log file that cannot be opened is not fatal: the logger then discards,
// and the error is returned for the caller to mention if it wants.
func Open(path, level string) (*slog.Logger, io.Closer, error) {
	if path == "" {
		return Discard(), io.NopCloser(nil), nil
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	f, err := rawfile.OpenAppend(path, 0o640)
	if err != nil {
		return Discard(), io.NopCloser(nil), err
	}
	l := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: lv})).With("pid", os.Getpid())
	return l, f, nil
}

// Discard is a logger that writes nothing.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
