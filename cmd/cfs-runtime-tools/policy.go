package main

import (
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/attest"
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
		Usage: "load the trust policy exactly as create does and print it with defaults filled in",
		Description: "Exit status 0 when the policy (and every key, certificate and trusted root it\n" +
			"names) loads; 1 with the file, line and key at fault otherwise. The policy is\n" +
			"refused if a non-root user could change it or anything it relies on. Sigstore\n" +
			"trusted roots are checked in full by the cfs-runtime-sigstore helper, which\n" +
			"must be installed next to cfs-runtime (or named by sigstore_helper).\n" +
			"It prints each signer's scopes, not_after and max_age, the revocation list\n" +
			"with the signers each entry applies to, and warns (on stderr, exit status 0)\n" +
			"about a signer without scopes when others have scopes.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Usage: "trust policy `FILE`", DefaultText: "the configuration's policy, " + attest.DefaultPolicyPath},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("policy check: takes no arguments (usage: cfs-runtime policy check [--policy FILE])", 2)
			}
			// Unlike create, also have the cfs-runtime-sigstore helper
			// parse sigstore trusted roots fully (and prove it is there).
			p, err := loadTrustPolicy(c, attest.WithSigstoreCheck())
			if err != nil {
				return fmt.Errorf("policy check: %w", err)
			}
			// A revocation list that cannot be used refuses every
			// signed container: as much an error as the policy's.
			if _, err := p.Revocations(); err != nil {
				return fmt.Errorf("policy check: %w", err)
			}
			p.Describe(c.App.Writer)
			for _, w := range p.Warnings() {
				fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: warning: %s\n", w)
			}
			return nil
		},
	}},
	Action: func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit("policy: no command given (usage: cfs-runtime policy check [--policy FILE])", 2)
		}
		return cli.Exit(fmt.Sprintf("policy: unknown command %q (want check)", c.Args().First()), 2)
	},
}
