package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/logging"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/oci"
	"github.com/urfave/cli/v2"
)

var cleanupCommand = &cli.Command{
	Name:      "cleanup",
	Usage:     "unmount and remove the composefs state of containers the runtime no longer knows",
	ArgsUsage: "[ID]",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "after-exit", Hidden: true, Usage: "wait until the process behind this pidfd exits, then clean up ID only if the runtime does not know it"},
	},
	Description: `With ID, unmount that container's composefs root and remove its state
directory (this is the poststop hook that create injects). Without ID, do
that for every state directory whose container the runtime does not list.
Runtime global options (--root) given before "cleanup" are used to ask the
runtime, e.g. cfs-runtime --root /run/containerd/runc/k8s.io cleanup.`,
	Action: func(c *cli.Context) error {
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		log, closer, _ := logging.Open(cfg.LogFile, cfg.LogLevel)
		defer closer.Close()
		if c.NArg() > 1 {
			return cli.Exit("cleanup: at most one container id", 2)
		}
		if id := c.Args().First(); id != "" {
			if !validID.MatchString(id) {
				return fmt.Errorf("cleanup: invalid container id %q", id)
			}
			if c.IsSet("after-exit") {
				if err := waitExit(c.Int("after-exit")); err != nil {
					return fmt.Errorf("cleanup: waiting for the runtime: %w", err)
				}
				path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
				if err != nil {
					return err
				}
				if oci.Knows(path, invocation(c), id) {
					return nil // the runtime has it; delete and the poststop hook clean up
				}
				log.Info("runtime rejected the container after mount: unmounting", "id", id)
			}
			return mount.Unmount(filepath.Join(cfg.StateDir, id), mount.WithLogger(log))
		}
		path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
		if err != nil {
			return err
		}
		args := append(append([]string{}, invocation(c).GlobalArgs()...), "list", "-q")
		out, err := exec.Command(path, args...).Output()
		if err != nil {
			return fmt.Errorf("cleanup: asking %s for its containers: %w", path, err)
		}
		known := map[string]bool{}
		for _, id := range strings.Fields(string(out)) {
			known[id] = true
		}
		// A container being created right now is mounted before the runtime
		// lists it: keep state younger than a minute.
		keep := func(id string) bool {
			if known[id] {
				return true
			}
			st, err := mount.ReadState(filepath.Join(cfg.StateDir, id))
			return err == nil && time.Since(st.Created) < time.Minute
		}
		removed, err := mount.Cleanup(cfg.StateDir, keep, mount.WithLogger(log))
		for _, id := range removed {
			fmt.Fprintf(c.App.Writer, "removed %s\n", id)
		}
		return err
	},
}
