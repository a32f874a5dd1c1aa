package main

import (
	"errors"
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/hostcheck"
	"github.com/urfave/cli/v2"
)

// policyCommand validates the trust policy and prints it as it is in effect.
var policyCommand = &cli.Command{
	Name:            "policy",
	Usage:           "validate the trust policy and print the effective policy",
	ArgsUsage:       "check",
	HideHelpCommand: true,
	Subcommands: []*cli.Command{{
		Name:  "check",
		Usage: "load the trust policy exactly as create does, print it with defaults filled in, and check that this host can enforce it",
		Description: "Exit status 0 when the policy (and every key, certificate and trusted root it\n" +
			"names) loads and this host and store can enforce its enforcement level; 1\n" +
			"otherwise, with the file, line and key at fault, or what the host lacks and\n" +
			"what to change (a kernel or store filesystem with fs-verity, tune2fs -O verity,\n" +
			"or a weaker level). The policy is refused if a non-root user could change it\n" +
			"or anything it relies on. Sigstore trusted roots are checked in full by the\n" +
			"cfs-runtime-sigstore helper, which must be installed next to cfs-runtime (or\n" +
			"named by sigstore_helper). --no-host checks the file only (a policy meant for\n" +
			"another host). It prints each signer's scopes, not_after and max_age, the\n" +
			"revocation list with the signers each entry applies to, and warns (on stderr,\n" +
			"exit status 0) about a signer without scopes when others have scopes.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Usage: "trust policy `FILE`", DefaultText: "the configuration's policy, " + attest.DefaultPolicyPath},
			storeFlag(),
			&cli.BoolFlag{Name: "no-host", Usage: "do not check whether this host and store can enforce the level"},
			&cli.BoolFlag{Name: "json", Usage: "print the policy and the host's verdict as JSON"},
		},
		Action: policyCheckAction,
	}},
	Action: func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit("policy: no command given (usage: cfs-runtime policy check [--policy FILE] [--store DIR] [--no-host] [--json])", 2)
		}
		return cli.Exit(fmt.Sprintf("policy: unknown command %q (want check)", c.Args().First()), 2)
	},
}

// policyJSON is policy check's --json document.
type policyJSON struct {
	Policy        string         `json:"policy"`
	Enforcement   string         `json:"enforcement"`
	Unsigned      string         `json:"unsigned"`
	Signers       []policySigner `json:"signers"`
	AllowUnsigned []string       `json:"allow_unsigned"`
	// Warnings are what the text output warns about on stderr.
	Warnings []string `json:"warnings"`
	// Host is the host check, absent with --no-host.
	Host *policyHost `json:"host,omitempty"`
}

type policySigner struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type policyHost struct {
	Store string `json:"store"`
	// Filesystem is the store's ("ext4", "tmpfs", ...).
	Filesystem string `json:"filesystem"`
	CanEnforce bool   `json:"can_enforce"`
	// Problem and Fix say what the host lacks and what to change.
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

func policyCheckAction(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("policy check: takes no arguments (usage: cfs-runtime policy check [--policy FILE] [--store DIR] [--no-host] [--json])", 2)
	}
	// Unlike create, also have the cfs-runtime-sigstore helper parse
	// sigstore trusted roots fully (and prove it is there).
	p, err := loadTrustPolicy(c, attest.WithSigstoreCheck())
	if err != nil {
		return fmt.Errorf("policy check: %w", err)
	}
	// A revocation list that cannot be used refuses every signed
	// container: as much an error as the policy's.
	if _, err := p.Revocations(); err != nil {
		return fmt.Errorf("policy check: %w", err)
	}
	var (
		host    *policyHost
		hostErr error
	)
	if !c.Bool("no-host") {
		cfg, err := loadConfig(c)
		if err != nil {
			return fmt.Errorf("policy check: %w", err)
		}
		storeDir := cfg.StoreDir
		if c.IsSet("store") {
			storeDir = c.String("store")
		}
		h := probeHost(storeDir)
		host = &policyHost{Store: storeDir, Filesystem: h.FSType, CanEnforce: true}
		hostErr = h.Enforceable(p.Enforcement, hostcheck.Paths{Config: config.PathFromEnv(invocation(c).Own["cfs-config"]), Policy: p.Path})
		var pr *hostcheck.Problem
		if errors.As(hostErr, &pr) {
			host.CanEnforce, host.Problem, host.Fix = false, pr.Reason.Error(), pr.Fix
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		out := policyJSON{Policy: p.Path, Enforcement: string(p.Enforcement), Unsigned: "reject", Signers: []policySigner{}, AllowUnsigned: []string{}, Warnings: []string{}, Host: host}
		out.Warnings = append(out.Warnings, p.Warnings()...)
		if p.AllowUnsigned {
			out.Unsigned = "allow"
		}
		for _, s := range p.Signers {
			out.Signers = append(out.Signers, policySigner{Name: s.Name, Type: string(s.Type)})
		}
		for _, r := range p.Rules {
			out.AllowUnsigned = append(out.AllowUnsigned, r.Name)
		}
		if err := printJSON(w, out); err != nil {
			return err
		}
		if hostErr != nil {
			return cli.Exit("", 1)
		}
		return nil
	}
	// The policy as it is in effect; a host that can enforce it adds
	// nothing (exit status 0 says so), one that cannot an error.
	p.Describe(w)
	for _, warning := range p.Warnings() {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: warning: %s\n", warning)
	}
	if hostErr != nil {
		return fmt.Errorf("policy check: %w", hostErr)
	}
	return nil
}
