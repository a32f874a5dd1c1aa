package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"github.com/urfave/cli/v2"
)

// digestCommand prints the composefs digest of a tree, exactly what
// `mkcomposefs --print-digest-only` prints: the value a signature covers.
var digestCommand = &cli.Command{
	Name:      "digest",
	Usage:     "print the composefs digest of a directory tree or composefs-dump(5) file",
	ArgsUsage: "TREE | --from-file DUMP",
	Description: "Prints the fs-verity digest of the composefs image mkcomposefs 1.0.8 would build\n" +
		"(like `mkcomposefs --print-digest-only`). With --from-file the argument is a\n" +
		"composefs-dump(5) file (\"-\" for stdin); the scan options then do not apply.",
	Flags:  composefsFlags(),
	Action: digestAction,
}

// composefsFlags are mkcomposefs' options, shared by digest and mkimage.
func composefsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "from-file", Usage: "the source is a composefs-dump(5) file, not a directory"},
		&cli.IntFlag{Name: "min-version", Usage: "lowest image format version", DefaultText: "0"},
		&cli.IntFlag{Name: "max-version", Usage: "highest image format version (0 if only --min-version is given)", DefaultText: "1"},
		&cli.BoolFlag{Name: "use-epoch", Usage: "make all mtimes zero"},
		&cli.BoolFlag{Name: "skip-xattrs", Usage: "don't store file xattrs"},
		&cli.BoolFlag{Name: "user-xattrs", Usage: "only store user.* xattrs"},
		&cli.BoolFlag{Name: "skip-devices", Usage: "don't store device nodes"},
		&cli.IntFlag{Name: "threads", Usage: "number of files hashed (and copied) in parallel", DefaultText: "number of CPUs"},
		&cli.StringFlag{Name: "hash", Value: "sha256", Usage: "fs-verity hash `ALGORITHM` of the file digests and of the image digest: sha256 (mkcomposefs) or sha512 (cfsctl --hash sha512, bootc)"},
	}
}

// hashAlgorithm reads --hash; errors are usage errors.
func hashAlgorithm(c *cli.Context) (verity.Algorithm, error) {
	switch h := c.String("hash"); h {
	case "", "sha256":
		return verity.SHA256, nil
	case "sha512":
		return verity.SHA512, nil
	default:
		return 0, fmt.Errorf("unknown --hash %q (want sha256 or sha512)", h)
	}
}

// composefsOptions turns the flags into options; errors are usage errors.
func composefsOptions(c *cli.Context) ([]composefs.Option, error) {
	alg, err := hashAlgorithm(c)
	if err != nil {
		return nil, err
	}
	opts := []composefs.Option{composefs.WithHash(alg)}
	for _, v := range []string{"min-version", "max-version"} {
		if c.IsSet(v) && (c.Int(v) < 0 || c.Int(v) > composefs.MaxVersion) {
			return nil, fmt.Errorf("invalid --%s %d (supported: 0..%d)", v, c.Int(v), composefs.MaxVersion)
		}
	}
	if c.IsSet("min-version") {
		opts = append(opts, composefs.WithMinVersion(c.Int("min-version")))
	}
	if c.IsSet("max-version") {
		opts = append(opts, composefs.WithMaxVersion(c.Int("max-version")))
	}
	if c.Bool("skip-xattrs") && c.Bool("user-xattrs") {
		return nil, fmt.Errorf("--skip-xattrs and --user-xattrs exclude each other")
	}
	if c.Bool("use-epoch") {
		opts = append(opts, composefs.WithUseEpoch())
	}
	if c.Bool("skip-xattrs") {
		opts = append(opts, composefs.WithSkipXattrs())
	}
	if c.Bool("user-xattrs") {
		opts = append(opts, composefs.WithUserXattrs())
	}
	if c.Bool("skip-devices") {
		opts = append(opts, composefs.WithSkipDevices())
	}
	if c.IsSet("threads") {
		if c.Int("threads") < 1 {
			return nil, fmt.Errorf("invalid --threads %d", c.Int("threads"))
		}
		opts = append(opts, composefs.WithThreads(c.Int("threads")))
	}
	return opts, nil
}

// loadTree reads the source argument: a directory, or with --from-file a
// dump file ("-" is stdin).
func loadTree(c *cli.Context, src string, opts []composefs.Option) (*composefs.Tree, error) {
	if !c.Bool("from-file") {
		return composefs.BuildTree(src, opts...)
	}
	var r io.Reader = os.Stdin
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	t, err := composefs.ParseDump(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return t, nil
}

func digestAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("digest: want exactly one TREE or DUMP argument (usage: cfs-runtime digest [options] TREE|--from-file DUMP)", 2)
	}
	opts, err := composefsOptions(c)
	if err != nil {
		return cli.Exit("digest: "+err.Error(), 2)
	}
	t, err := loadTree(c, c.Args().First(), opts)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	d, err := t.Digest(opts...)
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, hex.EncodeToString(d))
	return err
}
