package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/urfave/cli/v2"
)

// signCommand signs a composefs digest and prints the annotations that carry
// the digest and the signature to the runtime.
var signCommand = &cli.Command{
	Name:      "sign",
	Usage:     "sign a composefs digest and print the annotations to attach to the container",
	ArgsUsage: "DIGEST | IMAGE | TREE",
	Description: "The argument is a composefs digest (sha256:HEX, sha512:HEX, fsverity-sha256-16:HEX\n" +
		"or bare hex; or a prefix of at least 4 hex digits that only one image of the store\n" +
		"starts with, as `cfs-runtime images` lists them), a composefs image file (its fs-verity digest is the composefs\n" +
		"digest), or a directory tree (its digest is computed as `cfs-runtime digest`\n" +
		"computes it; the composefs options below apply, --from-file reads a dump).\n\n" +
		"With --cert the signature is PKCS#7 (what `fsverity sign` makes; the certificate\n" +
		"file may carry a chain after the signer's certificate, which is embedded) under\n" +
		"the .sig annotation; without it, a key-pair signature (what `cosign sign-blob\n" +
		"--key` makes over the formatted digest) under the .cosign annotation.\n" +
		"Encrypted keys (ENCRYPTED SIGSTORE PRIVATE KEY from `cosign generate-key-pair`,\n" +
		"ENCRYPTED PRIVATE KEY) are decrypted with $COSIGN_PASSWORD, or, when it is not\n" +
		"set and stdin is a terminal, with the password typed at the prompt.\n\n" +
		"--format podman prints `--annotation K=V` flags for podman run/create, json a\n" +
		"JSON object (for `cfs-runtime verify --annotations`), annotations K=V lines.",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "key", Usage: "PEM private key `FILE`", Required: true},
		&cli.StringFlag{Name: "cert", Usage: "PEM certificate `FILE` of the key (PKCS#7 signature); may hold a chain after it"},
		&cli.StringFlag{Name: "format", Value: "podman", Usage: "output: podman, json or annotations"},
		&cli.StringFlag{Name: "algorithm", Usage: "fs-verity `ALGORITHM` of an IMAGE or TREE digest (fsverity-{sha256|sha512}-{12|16})", DefaultText: "fsverity-sha256-12"},
		&cli.StringFlag{Name: "message-out", Usage: "also write the signed bytes (struct fsverity_formatted_digest) to `FILE`, to sign with other tools"},
		storeFlag(),
	}, signTreeFlags()...),
	Action: signAction,
}

func signAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("sign: want exactly one DIGEST, IMAGE or TREE argument (usage: cfs-runtime sign --key KEY [--cert CERT] [--format podman|json|annotations] DIGEST|IMAGE|TREE)", 2)
	}
	format, err := annotationFormat(c, "sign")
	if err != nil {
		return err
	}
	d, err := signTarget(c, c.Args().First())
	if err != nil {
		return err
	}
	key, chain, err := signingKey(c)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	ann, err := attest.Sign(d, key, chain)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if p := c.String("message-out"); p != "" {
		if err := os.WriteFile(p, d.Message(), 0o644); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
	}
	return writeAnnotations(c.App.Writer, ann, format)
}

// signTarget resolves the argument: an existing directory is a TREE (or,
// with --from-file, a file is a dump), an existing file an IMAGE, anything
// else must parse as a digest.
func signTarget(c *cli.Context, arg string) (attest.Digest, error) {
	algName := c.String("algorithm")
	if algName == "" {
		algName = "fsverity-sha256-12"
	}
	alg, bs, err := attest.ParseAlgorithm(algName)
	if err != nil {
		return attest.Digest{}, cli.Exit("sign: --algorithm: "+err.Error(), 2)
	}
	d := attest.Digest{Algorithm: alg, BlockSize: bs}
	fi, statErr := os.Stat(arg)
	switch {
	case statErr == nil && (fi.IsDir() || c.Bool("from-file")):
		opts, err := composefsOptions(c)
		if err != nil {
			return d, cli.Exit("sign: "+err.Error(), 2)
		}
		// The files' digests with the image's algorithm, as import
		// --hash stores them.
		opts = append(opts, composefs.WithHash(alg))
		t, err := loadTree(c, arg, opts)
		if err != nil {
			return d, fmt.Errorf("sign: %w", err)
		}
		h, err := verity.NewHasher(d.VerityOptions()...)
		if err != nil {
			return d, fmt.Errorf("sign: %w", err)
		}
		if err := t.WriteImage(h, opts...); err != nil {
			return d, fmt.Errorf("sign: %s: %w", arg, err)
		}
		d.Value = h.Sum()
	case statErr == nil:
		if d.Value, err = verity.DigestFile(arg, d.VerityOptions()...); err != nil {
			return d, fmt.Errorf("sign: %w", err)
		}
	default:
		pd, err := attest.ParseDigest(arg)
		if err != nil {
			// A digest prefix names the one image of the store whose
			// digest starts with it (as fsck and images take it).
			if full, ok, perr := signPrefix(c, arg); ok {
				if perr != nil {
					return d, fmt.Errorf("sign: %w", perr)
				}
				fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: note: %s is image %s\n", arg, full)
				pd, err = attest.ParseDigest(full)
			}
		}
		if err != nil {
			return d, cli.Exit(fmt.Sprintf("sign: %q is neither a file, a directory nor a digest: %v", arg, err), 2)
		}
		if c.IsSet("algorithm") && (pd.Algorithm != alg || pd.BlockSize != bs) {
			if strings.Contains(arg, ":") {
				return d, cli.Exit(fmt.Sprintf("sign: digest %s does not match --algorithm %s", pd.Name(), algName), 2)
			}
			if len(pd.Value) != alg.Size() {
				return d, cli.Exit(fmt.Sprintf("sign: a %d-byte digest is not %s", len(pd.Value), algName), 2)
			}
			pd.Algorithm, pd.BlockSize = alg, bs
		}
		d = pd
	}
	return d, nil
}

// writeAnnotations prints annotations in one of sign's formats. Values are
// hex and base64, so the podman form needs no shell quoting and works as
// `podman run $(cfs-runtime sign ...) IMAGE`.
func writeAnnotations(w io.Writer, ann map[string]string, format string) error {
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	switch format {
	case "json":
		b, err := json.MarshalIndent(ann, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "annotations":
		for _, k := range keys {
			if _, err := fmt.Fprintf(w, "%s=%s\n", k, ann[k]); err != nil {
				return err
			}
		}
		return nil
	}
	flags := make([]string, len(keys))
	for i, k := range keys {
		flags[i] = "--annotation " + k + "=" + ann[k]
	}
	_, err := fmt.Fprintln(w, strings.Join(flags, " "))
	return err
}

// signTreeFlags are the composefs flags of a TREE but --hash: --algorithm
// says which.
func signTreeFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range composefsFlags() {
		if f.Names()[0] != "hash" {
			out = append(out, f)
		}
	}
	return out
}

// signPrefix resolves arg, when it has the form of a digest prefix (at
// least store.MinPrefix hex digits, optionally after sha256: or sha512:),
// among the images of the store; ok is false for anything else.
func signPrefix(c *cli.Context, arg string) (full string, ok bool, err error) {
	h, _ := wholeDigest(arg)
	if len(h) < store.MinPrefix || strings.Trim(h, "0123456789abcdef") != "" {
		return "", false, nil
	}
	s, _, err := openStore(c)
	if err != nil {
		return "", true, err
	}
	full, err = s.ResolvePrefix(h)
	return full, true, err
}
