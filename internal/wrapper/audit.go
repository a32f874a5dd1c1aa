package wrapper

import (
	"log/slog"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/audit"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
)

// recordDecision appends the trust decision on container id to the audit
// trail (audit_file and the journal; never the runtime's log). policy is
// nil when it could not be loaded. A trail that cannot be written is
// reported in cfs-runtime's own log and does not change the decision: the
// decision is the policy's, and an unwritable log file must not stop
// every container on the host.
func recordDecision(cfg config.Config, log *slog.Logger, id, ref string, policy *attest.Policy, v attest.Verdict, err error) {
	e := audit.Event{ContainerID: id, Image: ref, Signer: v.Signer, KeyID: v.KeyID, Enforcement: string(v.Enforcement)}
	if e.Enforcement == "" && policy != nil {
		e.Enforcement = string(policy.Enforcement)
	}
	if v.Digest != nil {
		e.Digest = v.Digest.String()
	}
	switch {
	case err != nil:
		e.Decision, e.Reason = audit.Deny, err.Error()
	case v.Unsigned:
		e.Decision, e.Rule, e.Reason = audit.UnsignedAllowed, v.Rule, v.String()
	default:
		e.Decision, e.Reason = audit.Allow, v.String()
	}
	if werr := audit.Write(cfg.AuditFile, e); werr != nil {
		log.Error("audit trail not written", "id", id, "decision", e.Decision, "err", werr)
	}
}
