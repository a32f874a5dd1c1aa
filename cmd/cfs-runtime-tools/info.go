package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/urfave/cli/v2"
)

// infoCommand lists composefs images like upstream composefs-info: the
// output of dump, ls, objects and missing-objects is byte for byte what
// composefs-info 1.0.8 prints, so scripts written for one work with the
// other. Images are parsed as untrusted input.
var infoCommand = &cli.Command{
	Name:      "info",
	Usage:     "list the contents of composefs images (like composefs-info)",
	ArgsUsage: "dump|ls|objects|missing-objects [--basedir DIR] IMAGE...",
	Flags:     []cli.Flag{basedirFlag()},
	Subcommands: []*cli.Command{
		{
			Name:      "dump",
			Usage:     "print the images as composefs-dump(5) text",
			ArgsUsage: "IMAGE...",
			Action:    infoAction(dumpImage),
		},
		{
			Name:      "ls",
			Usage:     "list the paths of the images",
			ArgsUsage: "IMAGE...",
			Action:    infoAction(lsImage),
		},
		{
			Name:      "objects",
			Usage:     "list the objects the images refer to",
			ArgsUsage: "IMAGE...",
			Action:    objectsAction(false),
		},
		{
			Name:      "missing-objects",
			Usage:     "list the objects the images refer to that are missing from --basedir (default: the store's objects)",
			ArgsUsage: "IMAGE...",
			Flags:     []cli.Flag{basedirFlag()},
			Action:    objectsAction(true),
		},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit("info: no command given (usage: cfs-runtime info dump|ls|objects|missing-objects [--basedir DIR] IMAGE...)", 2)
		}
		return cli.Exit(fmt.Sprintf("info: unknown command %q (want dump, ls, objects or missing-objects)", c.Args().First()), 2)
	},
}

func basedirFlag() cli.Flag {
	return &cli.StringFlag{Name: "basedir", Usage: "object directory to check for missing-objects", TakesFile: true}
}

// infoImages returns the IMAGE arguments, or a usage error.
func infoImages(c *cli.Context) ([]string, error) {
	if c.NArg() == 0 {
		return nil, cli.Exit(fmt.Sprintf("info %s: no IMAGE given (usage: cfs-runtime info %s IMAGE...)", c.Command.Name, c.Command.Name), 2)
	}
	return c.Args().Slice(), nil
}

// infoAction runs print on every image in turn, writing to stdout.
func infoAction(print func(img *composefs.Image, w *bufio.Writer) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		images, err := infoImages(c)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(c.App.Writer, 64<<10)
		defer w.Flush()
		for _, p := range images {
			img, err := composefs.ReadImageFile(p)
			if err != nil {
				return err
			}
			// Check the whole image first, as composefs-info loads it
			// before printing: a corrupt image prints nothing.
			if err := img.Walk(func(*composefs.Entry) error { return nil }); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if err := print(img, w); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return w.Flush()
	}
}

func dumpImage(img *composefs.Image, w *bufio.Writer) error { return img.WriteDump(w) }
func lsImage(img *composefs.Image, w *bufio.Writer) error   { return img.WriteLs(w) }

// objectsAction lists the objects of all images together, each once, sorted
// (composefs-info collects them across its IMAGE arguments the same way).
func objectsAction(missing bool) cli.ActionFunc {
	return func(c *cli.Context) error {
		images, err := infoImages(c)
		if err != nil {
			return err
		}
		// --basedir may come before or after the subcommand name.
		var basedir string
		for _, ctx := range c.Lineage() {
			if ctx.IsSet("basedir") {
				basedir = ctx.String("basedir")
				break
			}
		}
		if missing && basedir == "" {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			basedir = filepath.Join(cfg.StoreDir, "objects")
		}
		if missing {
			if fi, err := os.Stat(basedir); err != nil {
				return fmt.Errorf("basedir: %w", err)
			} else if !fi.IsDir() {
				return fmt.Errorf("basedir %s is not a directory", basedir)
			}
		}
		var all []string
		for _, p := range images {
			img, err := composefs.ReadImageFile(p)
			if err != nil {
				return err
			}
			var objs []string
			if missing {
				objs, err = img.MissingObjects(basedir)
			} else {
				objs, err = img.Objects()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			all = append(all, objs...)
		}
		slices.Sort(all)
		all = slices.Compact(all)
		w := bufio.NewWriterSize(c.App.Writer, 64<<10)
		for _, o := range all {
			w.WriteString(o)
			w.WriteByte('\n')
		}
		return w.Flush()
	}
}
