package main

import (
	"github.com/urfave/cli/v2"

	"github.com/cfs-runtime/cfs-runtime/internal/wrapper"
)

// toolCommands are cfs-runtime's own subcommands: one file per command, as
// in runc. The runtime binary knows them by name (handoff.ToolsBinaryCommands
// and handoff.RuntimePathCommands, which TestToolsBinaryCommands keeps
// equal to this list): add each new command in both places.
var toolCommands = []*cli.Command{verityCommand, digestCommand, mkimageCommand, infoCommand, importCommand, sealCommand, signCommand, verifyCommand, policyCommand, cleanupCommand, hookCommand, completionCommand, fsckCommand, gcCommand, imagesCommand, revokeCommand, auditCommand, doctorCommand}

const (
	cleanupUsage       = "unmount and remove the composefs state of containers the runtime no longer knows"
	cleanupDescription = `With ID, unmount that container's composefs root and remove its state
directory (this is the poststop hook that create injects). Without ID, do
that for every state directory whose container the runtime does not list.
Runtime global options (--root) given before "cleanup" are used to ask the
runtime, e.g. cfs-runtime --root /run/containerd/runc/k8s.io cleanup.`
)

const (
	hookUsage       = "run as an OCI createRuntime hook: verify a composefs root mounted by the container engine"
	hookDescription = "Reads the container's OCI state on stdin (as the runtime passes it to hooks),\n" +
		"loads the bundle's config.json and applies the trust policy to its annotations,\n" +
		"as create does. A hook cannot replace the root filesystem, so for a signed\n" +
		"digest the root (root.path) must already be an overlay mounted with\n" +
		"verity=require whose one lower layer is a mounted EROFS image that the kernel\n" +
		"measures as the signed digest. Anything else exits 1 with one line on stderr,\n" +
		"and the runtime refuses to start the container. See\n" +
		"contrib/oci-hooks.d/cfs-runtime.json for podman and CRI-O (oci-hooks(5))."
)

// cleanupCommand and hookCommand give the help of the two commands the
// runtime binary runs itself (internal/wrapper: Cleanup, Hook).
var cleanupCommand = &cli.Command{
	Name:        "cleanup",
	Usage:       cleanupUsage,
	ArgsUsage:   "[ID]",
	Description: cleanupDescription,
	Flags: []cli.Flag{
		&cli.IntFlag{Name: wrapper.AfterExitFlag, Hidden: true, Usage: wrapper.AfterExitUsage},
	},
	Action: func(c *cli.Context) error {
		var afterExit *int
		if c.IsSet(wrapper.AfterExitFlag) {
			v := c.Int(wrapper.AfterExitFlag)
			afterExit = &v
		}
		return wrapper.Cleanup(invocation(c), c.Args().Slice(), afterExit, c.App.Writer)
	},
}

var hookCommand = &cli.Command{
	Name:        "hook",
	Usage:       hookUsage,
	ArgsUsage:   "createRuntime",
	Description: hookDescription,
	Action: func(c *cli.Context) error {
		return wrapper.Hook(invocation(c), c.Args().Slice(), c.App.Reader)
	},
}
