// Command cfs-runtime-tools holds cfs-runtime's own commands (import,
// sign, seal, verify, fsck, gc, images, ...) and their help. Users type
// cfs-runtime: the runtime binary execs this one for them, so that its own
// start, before every runc call, pays for none of them.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/config/tomlconfig"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/urfave/cli/v2"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	inv := oci.Parse(os.Args[1:])
	switch {
	case isTool(inv.Command):
		os.Exit(runTool(inv))
	case inv.WantsVersion():
		fmt.Printf("cfs-runtime-tools version %s\n", version)
	case inv.Command == "":
		os.Exit(runHelp(inv))
	default:
		fmt.Fprintf(os.Stderr, "cfs-runtime: %q is not a command of cfs-runtime-tools: runtime commands go through cfs-runtime\n", inv.Command)
		os.Exit(2)
	}
}

// runHelp prints cfs-runtime's help, then the runtime's (cfs-runtime execs
// this binary for --help).
func runHelp(inv *oci.Invocation) int {
	printOwnHelp()
	cfg, _ := tomlconfig.Salvage(config.PathFromEnv(inv.Own["cfs-config"]))
	path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cfs-runtime:", err)
		return 1
	}
	fmt.Printf("\nRuntime commands and options (%s):\n\n", path)
	return handoff.RunChild(path, inv.Args)
}

// isTool reports whether name is one of cfs-runtime's own commands.
func isTool(name string) bool { return findTool(name) != nil }

// printOwnHelp prints cfs-runtime's help (before the runtime's).
func printOwnHelp() { _ = newApp().Run([]string{"cfs-runtime", "--help"}) }

// findTool returns cfs-runtime's own command of that name, nil for runtime
// subcommands.
func findTool(name string) *cli.Command {
	for _, c := range toolCommands {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "cfs-runtime",
		Usage:   "run OCI containers only from signed, fs-verity protected composefs images",
		Version: version,
		UsageText: "cfs-runtime [runtime global options] COMMAND [options] [arguments]\n\n" +
			"Every runc/crun command (create, run, start, state, kill, delete, exec, ...) is\n" +
			"accepted with the real runtime's options; create and run verify and mount the\n" +
			"container's composefs root filesystem first. The commands below are cfs-runtime's own.",
		Commands: toolCommands,
		// cfs-runtime's one global option of its own (internal/oci takes
		// it off the command line before anything else reads it): listed
		// here so that --help shows it.
		Flags: []cli.Flag{&cli.StringFlag{
			Name:      "cfs-config",
			Usage:     "cfs-runtime's configuration `FILE`, removed before the real runtime runs",
			TakesFile: true,
			EnvVars:   []string{config.EnvPath},
			Value:     config.DefaultPath,
		}},
		HideHelpCommand: true,
		Writer:          os.Stdout,
		ErrWriter:       os.Stderr,
		ExitErrHandler: func(c *cli.Context, err error) {
			// Errors are printed once by runTool, with the exit code of the
			// command (cli.Exit) or 1.
		},
	}
}

// runTool runs one of cfs-runtime's own commands. Runtime global options
// given before it (--root, --log, ...) are kept in the invocation for
// commands that need them (cleanup).
func runTool(inv *oci.Invocation) int {
	app := newApp()
	app.Metadata = map[string]any{"invocation": inv}
	args := append([]string{"cfs-runtime", inv.Command}, inv.CommandArgs...)
	return handoff.ExitCode(usageError(app.Run(args)))
}

// usageError gives urfave/cli's own refusals of a command line (a required
// flag missing, an unknown flag, a flag without its value or with a bad
// one) exit status 2, as every other usage error of cfs-runtime and runc.
func usageError(err error) error {
	var ec cli.ExitCoder
	if err == nil || errors.As(err, &ec) {
		return err
	}
	msg := err.Error()
	for _, p := range []string{"Required flag", "flag provided but not defined", "flag needs an argument", "invalid value", "invalid boolean"} {
		if strings.HasPrefix(msg, p) {
			return handoff.ExitError(msg, 2)
		}
	}
	return err
}

// printJSON writes v as the indented JSON document of a --json flag.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// invocation returns the runtime command line a tool was started with.
func invocation(c *cli.Context) *oci.Invocation {
	if inv, ok := c.App.Metadata["invocation"].(*oci.Invocation); ok {
		return inv
	}
	return oci.Parse(nil)
}

// loadConfig loads cfs-runtime's configuration for a tool command.
func loadConfig(c *cli.Context) (config.Config, error) {
	return tomlconfig.Load(config.PathFromEnv(invocation(c).Own["cfs-config"]))
}
