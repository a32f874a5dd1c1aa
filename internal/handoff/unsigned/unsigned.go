// Package unsigned starts unsigned containers from cfs-runtime's front,
// without cfs-runtime-mount: one exec less for every container the policy
// lets start unverified (a CRI sandbox, a podman container under
// unsigned = "allow"), the same decision (package policy is the one
// cfs-runtime-mount applies). Whatever is not plainly such a container
// goes to cfs-runtime-mount, which decides it and words every refusal: a
// broken configuration, a bundle that cannot be read or is in use, a
// policy that cannot be read without go-toml or is invalid or insecure,
// any annotation that mentions composefs, a container whose image the
// engine names (engineimage.FromAnnotations: its seal is in the image),
// and a container no rule allows.
//
// It is a package of its own, handed to handoff.Main by main, so that
// package handoff (every runtime call) imports none of what only a start
// reads: see main.go for why that matters.
package unsigned

import (
	"os"

	"github.com/cfs-runtime/cfs-runtime/attest/policy"
	"github.com/cfs-runtime/cfs-runtime/internal/audit"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/cfs-runtime/cfs-runtime/internal/logline"
)

// Start returns whether the container c starts is allowed to start
// unverified, having logged it as cfs-runtime-mount would; the caller then
// hands the call to the runtime.
func Start(c *handoff.Call) bool {
	start := c.Line.Start
	if c.CfgErr != nil || start == nil || start.Help || c.Line.Command == "restore" {
		return false
	}
	var cwd string
	if start.NeedsCwd() {
		var err error
		if cwd, err = os.Getwd(); err != nil {
			return false
		}
	}
	dir, configPath := start.Paths(cwd)
	b, unlock, err := bundle.OpenForStart(dir, configPath, c.Cfg.StateDir, start.ID, nil)
	if err != nil {
		return false
	}
	defer unlock()
	p, err := policy.Load(c.Cfg.Policy, policy.Reader{}, nil)
	if err != nil {
		return false
	}
	ann := b.Annotations()
	if policy.MentionsComposefs(ann) {
		return false
	}
	// The engine names the container's image: its seal, if any, is in
	// the image's manifest, which cfs-runtime-mount reads.
	if _, named := engineimage.FromAnnotations(ann); named {
		return false
	}
	rule, ok := p.Unsigned(ann)
	if !ok {
		return false
	}
	// Not fatal, as in cfs-runtime-mount: the container matters more than
	// our own log.
	_ = logline.Warn(c.Cfg.LogFile, c.Cfg.LogLevel, "starting unverified container", "id", start.ID, "bundle", b.Dir, "verdict", policy.UnsignedVerdict(rule))
	// The audit line cfs-runtime-mount's recordDecision would write; not
	// fatal either (cfs-runtime-mount logs a failure to write it too).
	ref, _ := imageref.FromAnnotations(ann)
	if err := audit.Write(c.Cfg.AuditFile, audit.Event{
		Decision: audit.UnsignedAllowed, ContainerID: start.ID, Image: ref, Rule: rule,
		Enforcement: string(p.Enforcement), Reason: policy.UnsignedVerdict(rule),
	}); err != nil {
		_ = logline.Warn(c.Cfg.LogFile, c.Cfg.LogLevel, "audit trail not written", "id", start.ID, "decision", audit.UnsignedAllowed, "err", err.Error())
	}
	return true
}
