// Package bundlejson is encoding/json for package bundle (bundle.JSON):
// the programs that link it read every config.json and rewrite it; the
// front, which links no encoding/json, loads only the plain ones.
package bundlejson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// JSON is encoding/json, as a bundle.JSON.
var JSON codec

type codec struct{}

func (codec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Describe adds the byte offset, line and column to a JSON error.
func (codec) Describe(data []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err.Error()
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := bytes.Count(data[:off], []byte("\n")) + 1
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("invalid JSON at offset %d (line %d, column %d): %v", off, line, col, err)
}
