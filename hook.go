package main

import (
	"fmt"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/hooks"
	"github.com/cfs-runtime/cfs-runtime/logging"
	"github.com/urfave/cli/v2"
)

// hookCommand is hook mode: for hosts where the container engine mounts the
// composefs root itself and runs the plain runtime, cfs-runtime runs as the
// container's createRuntime hook and fails closed (package hooks).
var hookCommand = &cli.Command{
	Name:      "hook",
	Usage:     "run as an OCI createRuntime hook: verify a composefs root mounted by the container engine",
	ArgsUsage: "createRuntime",
	Description: "Reads the container's OCI state on stdin (as the runtime passes it to hooks),\n" +
		"loads the bundle's config.json and applies the trust policy to its annotations,\n" +
		"as create does. A hook cannot replace the root filesystem, so for a signed\n" +
		"digest the root (root.path) must already be an overlay mounted with\n" +
		"verity=require whose one lower layer is a mounted EROFS image that the kernel\n" +
		"measures as the signed digest. Anything else exits 1 with one line on stderr,\n" +
		"and the runtime refuses to start the container. See\n" +
		"contrib/oci-hooks.d/cfs-runtime.json for podman and CRI-O (oci-hooks(5)).",
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 || c.Args().First() != "createRuntime" {
			return cli.Exit(fmt.Sprintf("hook: want the stage createRuntime, got %q (usage: cfs-runtime hook createRuntime <STATE)", strings.Join(c.Args().Slice(), " ")), 2)
		}
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		log, closer, _ := logging.Open(cfg.LogFile, cfg.LogLevel)
		defer closer.Close()
		policy, err := loadPolicy(cfg.Policy)
		if err != nil {
			return err
		}
		res, err := hooks.CreateRuntime(c.App.Reader, policy)
		if err != nil {
			log.Error("hook createRuntime: refused", "err", err)
			return err
		}
		if res.Verdict.Unsigned {
			log.Warn("hook createRuntime: starting unverified container", "id", res.ID, "bundle", res.Bundle, "verdict", res.Verdict.String())
			return nil
		}
		log.Info("hook createRuntime: verified", "id", res.ID, "root", res.Root, "image", res.Image, "loop", res.Loop, "verdict", res.Verdict.String())
		return nil
	},
}
