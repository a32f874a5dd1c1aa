package wrapper

import (
	"fmt"
	"github.com/cfs-runtime/cfs-runtime/attest"
	"io"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/hooks"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/config/tomlconfig"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
)

// Hook mode: for hosts where the container engine mounts the composefs root
// itself and runs the plain runtime, cfs-runtime runs as the container's
// createRuntime hook and fails closed (package hooks). Both builds run it
// (the runtime calls it for every container), so it has no urfave/cli in
// it: see cleanup.go (its help text is with hookCommand in commands.go).

// Hook is `cfs-runtime hook createRuntime`, the state on stdin. The
// runtime puts a failed hook's stderr into its own error, which podman
// pattern-matches: the refusal is scrubbed of the phrases it misreads.
func Hook(inv *oci.Invocation, args []string, stdin io.Reader) (err error) {
	defer func() { err = fserr.Scrubbed(err) }()
	if len(args) != 1 || args[0] != "createRuntime" {
		return handoff.ExitError(fmt.Sprintf("hook: want the stage createRuntime, got %q (usage: cfs-runtime hook createRuntime <STATE)", strings.Join(args, " ")), 2)
	}
	cfg, err := tomlconfig.Load(config.PathFromEnv(inv.Own["cfs-config"]))
	if err != nil {
		return err
	}
	log, closer, _ := logging.Open(cfg.LogFile, cfg.LogLevel)
	defer closer.Close()
	policy, err := attest.LoadPolicy(cfg.Policy, attest.DeferParsing(), attest.WithRevocationIndex(cfg.StateDir))
	if err != nil {
		recordDecision(cfg, log, "", "", nil, attest.Verdict{}, err)
		return err
	}
	res, err := hooks.CreateRuntime(stdin, policy)
	if res != nil {
		recordDecision(cfg, log, res.ID, res.Verdict.Reference, policy, res.Verdict, err)
	} else if err != nil {
		recordDecision(cfg, log, "", "", policy, attest.Verdict{}, err)
	}
	if err != nil {
		log.Error("hook createRuntime: refused", "err", err)
		return err
	}
	if res.Verdict.Unsigned {
		log.Warn("hook createRuntime: starting unverified container", "id", res.ID, "bundle", res.Bundle, "verdict", res.Verdict)
		return nil
	}
	log.Info("hook createRuntime: verified", "id", res.ID, "root", res.Root, "image", res.Image, "loop", res.Loop, "verdict", res.Verdict)
	return nil
}
