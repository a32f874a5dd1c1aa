package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/urfave/cli/v2"
)

// mkimageCommand writes a composefs image like mkcomposefs: byte-identical
// to mkcomposefs 1.0.8 for the same tree and options.
var mkimageCommand = &cli.Command{
	Name:      "mkimage",
	Usage:     "write the composefs image of a directory tree or composefs-dump(5) file",
	ArgsUsage: "TREE|--from-file DUMP IMAGE",
	Description: "Writes IMAGE (atomically: a temporary file renamed into place; \"-\" for stdout)\n" +
		"exactly as `mkcomposefs` 1.0.8 would. With --digest-store DIR, every file larger\n" +
		"than 64 bytes is first copied (reflinked if possible) into DIR as XX/YYYY...,\n" +
		"named by its fs-verity digest; existing objects are kept.",
	Flags: append(composefsFlags(),
		&cli.StringFlag{Name: "digest-store", Usage: "copy the file contents into this object directory"},
	),
	Action: mkimageAction,
}

func mkimageAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return cli.Exit("mkimage: want TREE (or --from-file DUMP) and IMAGE arguments (usage: cfs-runtime mkimage [options] TREE|--from-file DUMP IMAGE)", 2)
	}
	opts, err := composefsOptions(c)
	if err != nil {
		return cli.Exit("mkimage: "+err.Error(), 2)
	}
	store := c.String("digest-store")
	if store != "" && c.Bool("from-file") {
		return cli.Exit("mkimage: --digest-store needs a TREE: a dump file has no file contents to store", 2)
	}
	src, image := c.Args().Get(0), c.Args().Get(1)
	if image == "-" && isTerminal(os.Stdout) {
		return cli.Exit("mkimage: stdout is a terminal; refusing to write an image to it", 2)
	}
	t, err := loadTree(c, src, opts)
	if err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	if store != "" {
		if err := t.CopyObjects(store, opts...); err != nil {
			return fmt.Errorf("mkimage: %w", err)
		}
	}
	if image == "-" {
		if err := t.WriteImage(os.Stdout, opts...); err != nil {
			return fmt.Errorf("mkimage: %w", err)
		}
		return nil
	}
	if err := writeImageFile(t, image, opts); err != nil {
		return fmt.Errorf("mkimage: %w", err)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// writeImageFile streams the image into a temporary file next to path and
// renames it into place, so that path is either absent, the old file, or
// the complete new image.
func writeImageFile(t *composefs.Tree, path string, opts []composefs.Option) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := t.WriteImage(tmp, opts...); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return atomicfile.SyncDir(dir)
}
