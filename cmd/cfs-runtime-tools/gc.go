package main

import (
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/urfave/cli/v2"
)

var gcCommand = &cli.Command{
	Name:      "gc",
	Usage:     "remove images no ref keeps and no container uses, and every object no kept image uses",
	ArgsUsage: " ",
	Description: `Keeps every image a ref names (cfs-runtime images tag) and every image a
container's composefs mount uses (the mount state under state_dir, whatever the
runtime says about the container), and removes every other image, every object
no kept image uses, the provenance records of removed images and the OCI layer
records no kept image names. An image that create imported from a bundle has no
ref: it stays while a container runs from it and goes at the next gc after
that; tag it to keep it.

gc holds the store lock exclusively: imports, creates, fsck and repair wait
for it, and it waits for them. --dry-run only says what would be removed.`,
	Flags: []cli.Flag{
		storeFlag(),
		&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be removed"},
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
	},
	Action: gcAction,
}

func gcAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit("gc: takes no arguments (usage: cfs-runtime gc [--dry-run] [--store DIR])", 2)
	}
	s, cfg, err := openStore(c)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	opts := []store.GCOption{store.WithInUse(imagesInUse(cfg.StateDir, s))}
	if c.Bool("dry-run") {
		opts = append(opts, store.WithGCDryRun())
	}
	rep, err := s.GC(opts...)
	if err != nil {
		return err // already says "gc: "
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rep)
	}
	w := c.App.Writer
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	for _, d := range rep.Images {
		fmt.Fprintf(w, "%s image %s\n", verb, d)
	}
	for _, l := range rep.Layers {
		fmt.Fprintf(w, "%s layer record %s\n", verb, l)
	}
	fmt.Fprintf(w, "%s %d images, %d objects (%s), %d provenance records, %d layer records; kept %d images\n",
		verb, len(rep.Images), rep.Objects, humanSize(rep.Bytes), rep.Provenance, len(rep.Layers), len(rep.Kept))
	return nil
}

// imagesInUse returns store.WithInUse's function: the digests of the
// images containers' composefs mounts use (mount state under stateDir).
func imagesInUse(stateDir string, s *store.Store) func() ([]string, error) {
	return func() ([]string, error) {
		users, err := containersByImage(stateDir, s)
		if err != nil {
			return nil, err
		}
		ds := make([]string, 0, len(users))
		for d := range users {
			ds = append(ds, d)
		}
		return ds, nil
	}
}
