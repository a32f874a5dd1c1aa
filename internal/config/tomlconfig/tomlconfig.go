// Package tomlconfig decodes cfs-runtime's configuration with go-toml
// where the plain path of package config declines: any valid TOML, and
// every error worded "file:line: key k: problem". cfs-runtime-mount and
// cfs-runtime-tools use it; the front does not link it (it hands a call
// with such a file to cfs-runtime-mount).
package tomlconfig

import (
	"bytes"

	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/tomlerr"
	"github.com/pelletier/go-toml/v2"
)

// TOML is the go-toml Decoder.
var TOML config.Decoder = decoder{}

type decoder struct{}

func (decoder) Strict(path string, data []byte, c *config.Config) error {
	if err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(c); err != nil {
		return tomlerr.Error(path, err)
	}
	return nil
}

func (decoder) Lenient(data []byte, c *config.Config) error {
	return toml.NewDecoder(bytes.NewReader(data)).Decode(c)
}

// Load is config.Load with go-toml.
func Load(path string) (config.Config, error) { return config.Load(path, TOML) }

// Salvage is config.Salvage with go-toml.
func Salvage(path string) (config.Config, error) { return config.Salvage(path, TOML) }
