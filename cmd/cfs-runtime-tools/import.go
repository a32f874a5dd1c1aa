package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	"github.com/urfave/cli/v2"
)

// importCommand builds the composefs image of a tree or of an OCI image and
// puts it, with every file it refers to, into the object store; it prints
// the image digest.
var importCommand = &cli.Command{
	Name:      "import",
	Usage:     "put a directory tree or an OCI image into the composefs object store and print its digest",
	ArgsUsage: "TREE | oci:DIR[:NAME] | oci-archive:FILE[:NAME] | docker://REF",
	Description: "For a TREE: builds the image mkcomposefs 1.0.8 would build from TREE, copies (or\n" +
		"reflinks) every file stored outside the image into STORE/objects/XX/YYYY... (named\n" +
		"by fs-verity digest, verified, fs-verity enabled where the filesystem supports\n" +
		"it), stores the image itself the same way, links it as STORE/images/DIGEST and\n" +
		"prints DIGEST. The image is kept as the store ref named after the TREE's absolute\n" +
		"path (or --ref NAME): gc keeps it until `cfs-runtime images rm` removes the ref.\n" +
		"Importing the tree again moves its ref to what the tree holds then. With --hash\n" +
		"sha512 every object and the image are named by their SHA-512 fs-verity digest\n" +
		"(the image is an fsverity-sha512-12 one, as `cfsctl --hash sha512` and bootc make\n" +
		"them; the digest has 128 hex digits).\n\n" +
		"For an OCI image layout (oci:DIR as skopeo, podman save --format oci-dir and umoci\n" +
		"write it; oci-archive:FILE for its tar form): NAME is the index's\n" +
		"org.opencontainers.image.ref.name (podman save: the full image name), and may be\n" +
		"left out when the layout holds one image. Every blob is checked against its digest\n" +
		"while it is read (and each layer's content against the config's diff_id); a\n" +
		"mismatch refuses the import. The layers are applied in order with OCI whiteouts\n" +
		"(.wh.NAME, .wh..wh..opq) and hardlinks, straight from the (gzip, zstd or plain)\n" +
		"tar streams: nothing is unpacked, file contents go into the store as they stream\n" +
		"by. Each layer is recorded in STORE/layers/, keyed by diff_id: a layer imported\n" +
		"before is not read again (one line per layer on stderr says which). The image is\n" +
		"kept as the store ref oci:/ABS/DIR:NAME (or --ref NAME) and its provenance (the\n" +
		"layers its objects came from) is recorded for fsck. --canonical composefs-rs\n" +
		"applies composefs-rs' OCI rules instead (see cfs-runtime-seal(8)); seal and import\n" +
		"must use the same.\n\n" +
		"For an image in a registry (docker://HOST/REPO[:TAG][@DIGEST], as skopeo and podman\n" +
		"name it): the manifest (an index: the one for this platform) and config are fetched\n" +
		"and checked, then each layer not imported before (by diff_id, from any image or\n" +
		"layout) is streamed from the registry into the store, its blob checked against its\n" +
		"digest as it arrives; layers imported before are not fetched. Credentials, mirrors\n" +
		"and insecure registries come from podman's configuration (auth.json or --authfile,\n" +
		"registries.conf, /etc/containers/certs.d or --cert-dir, --tls-verify=false); see\n" +
		"docs/registries.md. The image is kept as the store ref docker://REF (or --ref NAME);\n" +
		"its provenance names the repository pinned to the manifest digest and every layer\n" +
		"blob, which fsck --repair fetches again.\n\n" +
		"On a terminal (stderr), a progress bar is drawn per layer read (oci:, oci-archive:,\n" +
		"docker://) and, for a TREE, a counter of the bytes stored.\n\n" +
		"--json prints a summary object instead of the digest: digest, source, ref, manifest,\n" +
		"layers (diff_id, blob, fetched), layers_fetched, layers_skipped, bytes (layer blob\n" +
		"bytes read), objects_new.\n\n" +
		"Everything is durable when it returns. Concurrent imports are safe.",
	Flags:  importFlags(),
	Action: importAction,
}

// importFlags are mkcomposefs' options for a directory, --store, and the
// OCI options.
func importFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "store", Usage: "object store directory (default: store_dir of the configuration, " + store.DefaultDir + ")", TakesFile: true},
		&cli.StringFlag{Name: "ref", Usage: "keep the image as the store ref `NAME` (default: the TREE's absolute path, or oci:/ABS/DIR:NAME)"},
	}
	for _, f := range composefsFlags() {
		if f.Names()[0] != "from-file" {
			flags = append(flags, f)
		}
	}
	flags = append(flags, &cli.BoolFlag{Name: "json", Usage: "print a JSON summary (digest, layers fetched and skipped, bytes, new objects) instead of the digest"})
	flags = append(flags, ociFlags()...)
	return append(flags, registryFlags()...)
}

// ociFlags select the canonicalization of an OCI image (import and seal).
func ociFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "canonical", Value: ociimage.CanonicalOCI, Usage: "OCI images: `RULES` that make the composefs tree, " + ociimage.CanonicalOCI + " (the layers as written, libcomposefs format) or " + ociimage.CanonicalComposefsRS + " (digests as `cfsctl --hash sha256 oci compute-id`)"},
		&cli.IntFlag{Name: "erofs-version", Usage: "with --canonical composefs-rs: composefs-rs' EROFS `VERSION` (0, 1 or 2 as cfsctl --erofs-version)", DefaultText: "1"},
	}
}

// ociOptions reads the OCI flags; errors are usage errors.
func ociOptions(c *cli.Context, cmd string) (ociimage.Options, error) {
	opts := ociimage.Options{
		Canonical:       c.String("canonical"),
		ErofsVersion:    c.Int("erofs-version"),
		ErofsVersionSet: c.IsSet("erofs-version"),
	}
	switch {
	case opts.Canonical != ociimage.CanonicalOCI && opts.Canonical != ociimage.CanonicalComposefsRS:
		return opts, cli.Exit(fmt.Sprintf("%s: unknown --canonical %q (want %s or %s)", cmd, opts.Canonical, ociimage.CanonicalOCI, ociimage.CanonicalComposefsRS), 2)
	case opts.ErofsVersionSet && opts.Canonical != ociimage.CanonicalComposefsRS:
		return opts, cli.Exit(cmd+": --erofs-version needs --canonical "+ociimage.CanonicalComposefsRS, 2)
	case opts.ErofsVersion < 0 || opts.ErofsVersion > 2:
		return opts, cli.Exit(fmt.Sprintf("%s: invalid --erofs-version %d (want 0, 1 or 2)", cmd, opts.ErofsVersion), 2)
	}
	return opts, nil
}

func importAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("import: want exactly one TREE, oci:DIR[:NAME] or docker://REF argument (usage: cfs-runtime import [--store DIR] [options] TREE|oci:DIR[:NAME]|oci-archive:FILE[:NAME]|docker://REF)", 2)
	}
	arg := c.Args().First()
	oci := ociimage.IsRef(arg)
	if !ociimage.IsRegistryRef(arg) {
		for _, f := range registryFlags() {
			if n := f.Names()[0]; c.IsSet(n) {
				return cli.Exit(fmt.Sprintf("import: --%s applies to a registry image (docker://REF)", n), 2)
			}
		}
	}
	if oci {
		// The tree options describe a directory scan; an OCI image has
		// its own rules (--canonical).
		for _, f := range composefsFlags() {
			if n := f.Names()[0]; n != "threads" && n != "from-file" && n != "hash" && c.IsSet(n) {
				return cli.Exit(fmt.Sprintf("import: --%s applies to a TREE, not to an OCI image (see --canonical)", n), 2)
			}
		}
	} else if c.IsSet("canonical") || c.IsSet("erofs-version") {
		return cli.Exit("import: --canonical and --erofs-version apply to OCI images (oci:DIR[:NAME])", 2)
	}
	var opts []composefs.Option
	var ociOpts ociimage.Options
	var err error
	if oci {
		ociOpts, err = ociOptions(c, "import")
		if _, herr := hashAlgorithm(c); err == nil && herr != nil {
			err = cli.Exit("import: "+herr.Error(), 2)
		}
	} else {
		opts, err = composefsOptions(c)
		if err != nil {
			err = cli.Exit("import: "+err.Error(), 2)
		}
	}
	if err != nil {
		return err
	}
	dir := c.String("store")
	if dir == "" {
		cfg, err := loadConfig(c)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		dir = cfg.StoreDir
	}
	var sopts []store.Option
	if alg, err := hashAlgorithm(c); err == nil {
		sopts = append(sopts, store.WithHash(alg)) // (checked by composefsOptions)
	}
	if c.IsSet("threads") {
		sopts = append(sopts, store.WithThreads(c.Int("threads")))
	}
	bar := &treeBar{}
	if !oci {
		bar = newTreeBar(c.App.ErrWriter)
		if fn := bar.stored(); fn != nil {
			sopts = append(sopts, store.WithImportProgress(fn))
		}
	}
	s, err := store.Open(dir, sopts...)
	if err != nil {
		bar.finish()
		return fmt.Errorf("import: %w", err)
	}
	var sum importSummary
	if oci {
		sum, err = importOCI(c, s, arg, ociOpts)
	} else {
		sum.Source, _ = filepath.Abs(arg)
		sum.Ref = c.String("ref")
		if sum.Ref == "" {
			sum.Ref = sum.Source
		}
		sum.Digest, err = s.ImportTreeAs(arg, c.String("ref"), opts...)
		bar.finish()
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if !oci {
			// A tree has no layers to count; it has its ref.
			return enc.Encode(map[string]string{"digest": sum.Digest, "source": sum.Source, "ref": sum.Ref})
		}
		return enc.Encode(sum)
	}
	_, err = fmt.Fprintln(c.App.Writer, sum.Digest)
	return err
}

// importSummary is what import --json prints.
type importSummary struct {
	Digest        string        `json:"digest"`
	Source        string        `json:"source"`
	Ref           string        `json:"ref,omitempty"`
	Manifest      string        `json:"manifest,omitempty"`
	Layers        []importLayer `json:"layers,omitempty"`
	LayersFetched int           `json:"layers_fetched"`
	LayersSkipped int           `json:"layers_skipped"`
	Bytes         int64         `json:"bytes"`
	ObjectsNew    int64         `json:"objects_new"`
}

type importLayer struct {
	DiffID  string `json:"diff_id"`
	Blob    string `json:"blob"`
	Fetched bool   `json:"fetched"`
}

// importOCI imports an OCI image, reporting each layer on stderr.
func importOCI(c *cli.Context, s *store.Store, arg string, opts ociimage.Options) (importSummary, error) {
	var sum importSummary
	ref, err := ociimage.ParseRef(arg)
	if err != nil {
		return sum, err
	}
	if ref.Transport == ociimage.TransportDocker {
		setupRegistry(c, c.App.ErrWriter)
	}
	opts.Log = c.App.ErrWriter
	opts.RefName = c.String("ref")
	if ref.Transport != ociimage.TransportDocker {
		// (A registry's layers get theirs from setupRegistry.)
		opts.Progress = layerBars(c.App.ErrWriter)
	}
	res, err := ociimage.Import(s, ref, opts)
	if err != nil {
		return sum, err
	}
	fmt.Fprintf(c.App.ErrWriter, "imported %s (manifest %s) as %s: %d layers, %d read, %d new objects\n",
		ref, res.Manifest, res.RefName, len(res.Layers), res.Processed(), res.Stats.Created)
	if err := recordSeal(c, s, res); err != nil {
		return sum, err
	}
	sum = importSummary{Digest: res.Digest, Source: ref.String(), Ref: res.RefName, Manifest: res.Manifest.String(),
		LayersFetched: res.Processed(), LayersSkipped: len(res.Layers) - res.Processed(), Bytes: res.BytesRead, ObjectsNew: res.Stats.Created}
	for _, l := range res.Layers {
		sum.Layers = append(sum.Layers, importLayer{l.DiffID.String(), l.Blob.String(), !l.Reused})
	}
	return sum, nil
}

// recordSeal records, for `images`, the seal of an image imported from a
// sealed manifest: one whose composefs annotations name the imported
// image. The trust policy in force (the configuration's) says whether a
// signature verifies and by which signer; a policy that cannot be loaded
// leaves the seal recorded as not verified. Annotations naming another
// digest (sealed with other --canonical rules) are reported, not recorded.
func recordSeal(c *cli.Context, s *store.Store, res *ociimage.Result) error {
	a, err := attest.ParseAnnotations(res.Annotations)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: import: note: the manifest's composefs annotations are not usable: %v\n", err)
		return nil
	}
	if a.Digest == nil {
		return nil
	}
	if a.Digest.Hex() != res.Digest {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: import: note: the manifest is sealed for composefs digest %s, not the imported %s (sealed with other --canonical rules?)\n", a.Digest.Hex(), res.Digest)
		return nil
	}
	seal := store.Seal{Source: res.Ref.String(), Manifest: res.Manifest.String(), Signatures: []string{}}
	for k := range a.Signatures {
		seal.Signatures = append(seal.Signatures, strings.TrimPrefix(k.Suffix(), "."))
	}
	slices.Sort(seal.Signatures)
	if p, err := loadTrustPolicy(c); err != nil {
		seal.Detail = "not verified: " + err.Error()
	} else if v, err := attest.Verify(res.Annotations, p); err != nil {
		seal.Detail = "not verified: " + err.Error()
	} else if !v.Unsigned {
		seal.Verified, seal.Signer, seal.Detail = true, v.Signer, v.Detail
		seal.KeyID = keyIDPattern.FindString(v.Detail)
	}
	if err := s.SetSeal(res.Digest, seal); err != nil {
		return fmt.Errorf("%s: seal: %w", res.Ref, err)
	}
	return nil
}

// keyIDPattern finds the key fingerprint in a verdict's detail.
var keyIDPattern = regexp.MustCompile(`[0-9a-f]{64}`)
