package main

import (
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/urfave/cli/v2"
)

// importCommand builds the composefs image of a tree and puts it, with every
// file it refers to, into the object store; it prints the image digest.
var importCommand = &cli.Command{
	Name:      "import",
	Usage:     "put a directory tree into the composefs object store and print its digest",
	ArgsUsage: "TREE",
	Description: "Builds the image mkcomposefs 1.0.8 would build from TREE, copies (or reflinks)\n" +
		"every file stored outside the image into STORE/objects/XX/YYYY... (named by\n" +
		"fs-verity digest, verified, fs-verity enabled where the filesystem supports it),\n" +
		"stores the image itself the same way, links it as STORE/images/DIGEST and prints\n" +
		"DIGEST. Everything is durable when it returns. Concurrent imports are safe.",
	Flags:  importFlags(),
	Action: importAction,
}

// importFlags are mkcomposefs' options for a directory, plus --store.
func importFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "object store directory (default: store_dir of the configuration, " + composefs.DefaultStoreDir + ")", TakesFile: true},
	}
	for _, f := range composefsFlags() {
		if f.Names()[0] != "from-file" {
			flags = append(flags, f)
		}
	}
	return flags
}

func importAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("import: want exactly one TREE argument (usage: cfs-runtime import [--store DIR] [options] TREE)", 2)
	}
	opts, err := composefsOptions(c)
	if err != nil {
		return cli.Exit("import: "+err.Error(), 2)
	}
	dir := c.String("store")
	if dir == "" {
		cfg, err := loadConfig(c)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		dir = cfg.StoreDir
	}
	var sopts []composefs.StoreOption
	if c.IsSet("threads") {
		sopts = append(sopts, composefs.WithStoreThreads(c.Int("threads")))
	}
	s, err := composefs.OpenStore(dir, sopts...)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	digest, err := s.ImportTree(c.Args().First(), opts...)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, digest)
	return err
}
