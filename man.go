//go:build !urfave_cli_no_docs

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// The release binary is built with urfave_cli_no_docs, which drops the
// markdown/man generator (and its package inits) from every runtime call.
// `make man` builds a separate binary without that tag, which has this
// hidden command.
func init() {
	toolCommands = append(toolCommands, &cli.Command{
		Name:      "generate-man",
		Hidden:    true,
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			dir := c.Args().First()
			if dir == "" {
				return fmt.Errorf("generate-man: missing output directory")
			}
			app := newApp()
			page, err := app.ToMan()
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "cfs-runtime.8"), []byte(page), 0o644)
		},
	})
}
