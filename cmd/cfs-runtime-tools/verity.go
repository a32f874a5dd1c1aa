package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/urfave/cli/v2"
)

// verityCommand is a pure-Go stand-in for fsverity-utils' `fsverity`: digest
// prints exactly what `fsverity digest` prints, so scripts and signatures made
// with either agree.
var verityCommand = &cli.Command{
	Name:  "verity",
	Usage: "compute, enable and measure fs-verity digests",
	Subcommands: []*cli.Command{
		{
			Name:      "digest",
			Usage:     "compute the fs-verity digest of files (like `fsverity digest`)",
			ArgsUsage: "FILE...",
			Flags: append(verityParamFlags(),
				&cli.BoolFlag{Name: "compact", Usage: "print only the hex digest"},
				&cli.BoolFlag{Name: "for-builtin-sig", Usage: "print the formatted digest (the message a signature signs)"},
			),
			Action: verityDigest,
		},
		{
			Name:      "enable",
			Usage:     "enable fs-verity on files (like `fsverity enable`)",
			ArgsUsage: "FILE...",
			Flags:     verityParamFlags(),
			Action:    verityEnable,
		},
		{
			Name:      "measure",
			Usage:     "print the fs-verity digest the kernel holds for files (like `fsverity measure`)",
			ArgsUsage: "FILE...",
			Action:    verityMeasure,
		},
	},
}

func verityParamFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "hash-alg", Value: "sha256", Usage: "hash algorithm: sha256 or sha512"},
		&cli.IntFlag{Name: "block-size", Value: verity.DefaultBlockSize, Usage: "Merkle tree block size in bytes"},
		&cli.StringFlag{Name: "salt", Usage: "salt, in hex"},
	}
}

// verityOptions turns the flags into digest options; errors are usage errors.
func verityOptions(c *cli.Context) ([]verity.Option, error) {
	var alg verity.Algorithm
	switch c.String("hash-alg") {
	case "sha256":
		alg = verity.SHA256
	case "sha512":
		alg = verity.SHA512
	default:
		return nil, fmt.Errorf("unknown hash algorithm %q (available: sha256 sha512)", c.String("hash-alg"))
	}
	salt, err := hex.DecodeString(c.String("salt"))
	if err != nil {
		return nil, fmt.Errorf("salt %q is not a valid hex string", c.String("salt"))
	}
	opts := []verity.Option{verity.WithAlgorithm(alg), verity.WithBlockSize(c.Int("block-size")), verity.WithSalt(salt)}
	if _, err := verity.NewParams(opts...); err != nil {
		return nil, err
	}
	return opts, nil
}

// verityFiles returns the FILE arguments, or a usage error naming cmd.
func verityFiles(c *cli.Context, cmd string) ([]string, error) {
	if c.NArg() == 0 {
		return nil, cli.Exit(fmt.Sprintf("verity %s: no FILE given (usage: cfs-runtime verity %s [options] FILE...)", cmd, cmd), 2)
	}
	files := c.Args().Slice()
	// fsverity (getopt) also takes options after the files; urfave/cli stops
	// at the first file, so say so rather than trying to open "--salt=..".
	for _, f := range files {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if strings.HasPrefix(f, "-") && hasFlag(c.Command, name) {
			return nil, cli.Exit(fmt.Sprintf("verity %s: option %s after FILE arguments; put options first", cmd, f), 2)
		}
	}
	return files, nil
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, fl := range cmd.Flags {
		for _, n := range fl.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func verityDigest(c *cli.Context) error {
	files, err := verityFiles(c, "digest")
	if err != nil {
		return err
	}
	opts, err := verityOptions(c)
	if err != nil {
		return cli.Exit("verity digest: "+err.Error(), 2)
	}
	alg := verity.SHA256
	if c.String("hash-alg") == "sha512" {
		alg = verity.SHA512
	}
	// One write per line would cost a syscall per file on large trees.
	w := bufio.NewWriter(c.App.Writer)
	// Like fsverity, print each digest in order and stop at the first file
	// that cannot be read (after printing those before it); the files are
	// hashed in parallel meanwhile.
	err = verity.DigestFiles(c.Context, files, func(fd verity.FileDigest) error {
		if fd.Err != nil {
			return fmt.Errorf("verity digest: %w", fd.Err)
		}
		d := fd.Digest
		if c.Bool("for-builtin-sig") {
			d = verity.FormattedDigest(alg, d)
		}
		var err error
		if c.Bool("compact") {
			_, err = fmt.Fprintf(w, "%x\n", d)
		} else if c.Bool("for-builtin-sig") {
			_, err = fmt.Fprintf(w, "%x %s\n", d, fd.Path)
		} else {
			_, err = fmt.Fprintf(w, "%s:%x %s\n", alg, d, fd.Path)
		}
		return err
	}, opts...)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func verityEnable(c *cli.Context) error {
	files, err := verityFiles(c, "enable")
	if err != nil {
		return err
	}
	opts, err := verityOptions(c)
	if err != nil {
		return cli.Exit("verity enable: "+err.Error(), 2)
	}
	for _, f := range files {
		if err := verity.Enable(f, opts...); err != nil {
			return err
		}
	}
	return nil
}

func verityMeasure(c *cli.Context) error {
	files, err := verityFiles(c, "measure")
	if err != nil {
		return err
	}
	for _, f := range files {
		alg, d, err := verity.Measure(f)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(c.App.Writer, "%s:%x %s\n", alg, d, f); err != nil {
			return err
		}
	}
	return nil
}
