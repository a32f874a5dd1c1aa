package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// revokeCommand adds a digest or a key id to the policy's revocation list.
var revokeCommand = &cli.Command{
	Name:      "revoke",
	Usage:     "add a composefs digest or a signer's key id to the policy's revocation list",
	ArgsUsage: "sha256:DIGEST|key:KEYID",
	Description: "Appends one line to the file the trust policy's `revoked` key names: a\n" +
		"composefs digest (sha256:HEX, sha512:HEX) or the key id of a signing key\n" +
		"(key:HEX, the SHA-256 of its public key as `cfs-runtime policy check`\n" +
		"prints it), with --comment after a #. Every create from then on refuses\n" +
		"it, and fsck and images flag a revoked image. The list is rewritten to a\n" +
		"temporary file and renamed over the old one under an exclusive lock on\n" +
		"its directory: a create reads either the old list or the new one, never\n" +
		"half a line, and two revokes at once both land. An entry already listed is\n" +
		"not added twice.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "comment", Usage: "why (written after a # on the entry's line)"},
		&cli.StringFlag{Name: "policy", Usage: "trust policy `FILE`", DefaultText: "the configuration's policy, " + attest.DefaultPolicyPath},
	},
	Action: revokeAction,
}

func revokeAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("revoke: want one sha256:DIGEST or key:KEYID (usage: cfs-runtime revoke [--comment TEXT] sha256:DIGEST|key:KEYID)", 2)
	}
	entry, err := attest.CanonicalRevocation(c.Args().First())
	if err != nil {
		return cli.Exit("revoke: "+err.Error(), 2)
	}
	comment := c.String("comment")
	if strings.ContainsAny(comment, "\n\r") {
		return cli.Exit("revoke: --comment must be one line", 2)
	}
	p, err := loadTrustPolicy(c, attest.DeferParsing())
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if p.Revoked == "" {
		return fmt.Errorf("revoke: policy %s has no revocation list: add revoked = \"/etc/cfs-runtime/revoked.txt\" to it (a root-owned file; it may be empty)", p.Path)
	}
	// A list that exists must pass the checks create applies (owner,
	// mode, every line): revoke adds to it, never repairs it.
	if _, err := os.Lstat(p.Revoked); err == nil {
		if _, err := p.Revocations(); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	}
	added, err := appendRevocation(p, entry, comment)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if !added {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: note: %s is already revoked by %s\n", entry, p.Revoked)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "revoked %s (%s)\n", entry, p.Revoked)
	return nil
}

// appendRevocation adds the entry to the list: under an flock on the
// list's directory (the list itself is replaced, so it cannot hold a
// lock), the list is read, checked, and replaced by temp file and rename
// (with its mode). Rename, not an O_APPEND write: a reader never sees a
// partial line, and the new inode invalidates every create's index of the
// list at once.
func appendRevocation(p *attest.Policy, entry, comment string) (bool, error) {
	dir, err := os.Open(filepath.Dir(p.Revoked))
	if err != nil {
		return false, err
	}
	defer dir.Close()
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("locking %s: %w", dir.Name(), err)
	}
	return rewriteRevocations(p, entry, comment)
}

func rewriteRevocations(p *attest.Policy, entry, comment string) (bool, error) {
	data, err := os.ReadFile(p.Revoked)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	list, err := attest.ParseRevocations(p.Revoked, data)
	if err != nil {
		return false, fmt.Errorf("%w (fix the list before adding to it)", err)
	}
	for _, r := range list {
		if r.Entry == entry {
			return false, nil
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	line := entry
	if comment != "" {
		line += " # " + comment
	}
	data = append(data, line+"\n"...)
	if err := atomicfile.WriteFile(p.Revoked, data, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// revokedImages maps each image digest (hex) of digests that the policy's
// revocation list revokes to the entry's description. No policy file, or
// no list, is no revocation; a list that cannot be read is an error.
func revokedImages(cfg config.Config, digests []string) (map[string]string, error) {
	path := cfg.Policy
	if path == "" {
		path = attest.DefaultPolicyPath
	}
	p, err := attest.LoadPolicy(path, attest.DeferParsing())
	if errors.Is(err, attest.ErrNoPolicy) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	list, err := p.Revocations()
	if err != nil {
		return nil, err
	}
	byEntry := map[string]attest.Revocation{}
	for _, r := range list {
		byEntry[r.Entry] = r
	}
	out := map[string]string{}
	for _, d := range digests {
		if r, ok := byEntry["sha256:"+strings.TrimPrefix(d, "sha256:")]; ok {
			out[d] = fmt.Sprintf("revoked by %s line %d", p.Revoked, r.Line)
			if r.Comment != "" {
				out[d] += " (" + r.Comment + ")"
			}
		}
	}
	return out, nil
}
