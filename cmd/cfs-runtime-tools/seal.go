package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage/registry"
	"github.com/cfs-runtime/cfs-runtime/verity"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"
)

// sealCommand computes an OCI image's composefs digest, signs it and writes
// the sealing annotations into the image's manifest.
var sealCommand = &cli.Command{
	Name:      "seal",
	Usage:     "sign an OCI image's composefs digest and write the sealing annotations into its manifest",
	ArgsUsage: "oci:DIR[:NAME] | docker://REF",
	Description: "Reads the image (every blob checked against its digest) and computes the composefs\n" +
		"digest of its merged layers, as `cfs-runtime import` builds it (no store is needed).\n" +
		"Signs it as `cfs-runtime sign` does: with --cert a PKCS#7 signature (.sig\n" +
		"annotation, what `fsverity sign` makes), without one a key-pair signature\n" +
		"(.cosign). Writes a new manifest with the annotations\n" +
		"composefs.merged.erofs.v1.fsverity-sha256-12 (the digest; -sha512-12 with --hash\n" +
		"sha512) and its signature added to its top-level annotations (earlier composefs\n" +
		"annotations are replaced), stores it as a blob and points index.json at it\n" +
		"(atomically; the layout stays valid for skopeo and umoci, the old manifest blob\n" +
		"stays). The manifest digest changes.\n" +
		"The manifest also gets org.opencontainers.image.ref.name, the image's full\n" +
		"reference (--ref-name REF; for docker://REF with a tag, REF by default): podman\n" +
		"copies it into the container's annotations, and a signer's scopes are checked\n" +
		"against it (docs/policy.md).\n" +
		"Prints the annotations, by default as podman flags:\n\n" +
		"   podman run --runtime cfs-runtime $(cfs-runtime seal --key k.pem oci:DIR:NAME) IMAGE\n\n" +
		"The image runs only once its composefs image is in the store: `cfs-runtime import\n" +
		"oci:DIR:NAME` with the same --canonical and --hash. With --canonical composefs-rs\n" +
		"the digest is the one `cfsctl --hash sha256 oci compute-id` prints (--hash sha512:\n" +
		"`cfsctl oci compute-id`'s default; composefs-rs' OCI rules: seconds-only mtimes,\n" +
		"root metadata from /usr, /run emptied; --erofs-version as cfsctl's); the default,\n" +
		"oci, keeps the layers' metadata as written and the libcomposefs format of every\n" +
		"other cfs-runtime digest.\n\n" +
		"For docker://HOST/REPO[:TAG][@DIGEST]: the image is read from the registry (every\n" +
		"blob checked) and the sealed manifest (and, for a multi-platform index, the index\n" +
		"naming it) is pushed back to the tag, or by its digest when the reference has no\n" +
		"tag. The config and layers are not uploaded again: the registry has them. Registry\n" +
		"options as for import (docs/registries.md).",
	Flags: append(append(append(signFlags("key", "cert", "format"), ociFlags()...), registryFlags()...),
		&cli.StringFlag{Name: "hash", Value: "sha256", Usage: "fs-verity hash `ALGORITHM` of the digest: sha256 or sha512 (as `cfsctl --hash sha512 oci compute-id`, bootc)"},
		&cli.StringFlag{Name: "ref-name", Usage: "the image's registry `REF` (HOST/REPO[:TAG]) for the manifest's org.opencontainers.image.ref.name, which podman passes on to the scopes check (default for docker://REF: REF)"}),
	Action: sealAction,
}

func sealAction(c *cli.Context) error {
	if c.NArg() != 1 || !ociimage.IsRef(c.Args().First()) {
		return cli.Exit("seal: want exactly one oci:DIR[:NAME] or docker://REF argument (usage: cfs-runtime seal --key KEY [--cert CERT] [--canonical oci|composefs-rs] oci:DIR[:NAME]|docker://REF)", 2)
	}
	format, err := annotationFormat(c, "seal")
	if err != nil {
		return err
	}
	opts, err := ociOptions(c, "seal")
	if err != nil {
		return err
	}
	if opts.Hash, err = hashAlgorithm(c); err != nil {
		return cli.Exit("seal: "+err.Error(), 2)
	}
	ref, err := ociimage.ParseRef(c.Args().First())
	if err != nil {
		return cli.Exit("seal: "+err.Error(), 2)
	}
	switch ref.Transport {
	case ociimage.TransportArchive:
		return cli.Exit(fmt.Sprintf("seal: %s: only oci:DIR layouts can be sealed (extract the archive and seal oci:DIR)", ref), 2)
	case ociimage.TransportDir:
		for _, f := range registryFlags() {
			if n := f.Names()[0]; c.IsSet(n) {
				return cli.Exit(fmt.Sprintf("seal: --%s applies to a registry image (docker://REF)", n), 2)
			}
		}
	case ociimage.TransportDocker:
		setupRegistry(c, c.App.ErrWriter)
	}
	refName, err := sealRefName(c, ref)
	if err != nil {
		return cli.Exit("seal: "+err.Error(), 2)
	}
	key, chain, err := signingKey(c)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	hexDigest, img, err := ociimage.Digest(ref, opts)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	d := attest.Digest{Algorithm: opts.Hash, BlockSize: verity.DefaultBlockSize}
	if d.Value, err = hex.DecodeString(hexDigest); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	ann, err := attest.Sign(d, key, chain)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	// The manifest gets the reference too; the annotations printed are
	// the seal's only (they are for the container, which the engine
	// names).
	set := maps.Clone(ann)
	if refName != "" {
		set[v1.AnnotationRefName] = refName
	}
	if ref.Transport == ociimage.TransportDocker {
		if err := sealPush(c, ref, set, img); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		fmt.Fprintf(c.App.ErrWriter, "sealed %s: composefs digest %s\n", ref, d)
		return writeAnnotations(c.App.Writer, ann, format)
	}
	old, updated, err := ociimage.Annotate(ref, set, attest.DigestAnnotationPrefix, img.ManifestDescriptor().Digest)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "sealed %s: composefs digest %s, manifest %s (was %s)\n", ref, d, updated.Digest, old.Digest)
	return writeAnnotations(c.App.Writer, ann, format)
}

// sealRefName returns the reference the sealed manifest names in
// org.opencontainers.image.ref.name, normalized as the scopes check reads
// it: --ref-name, else for docker://REF with a tag (or none: latest) REF.
// A reference by digest names none: sealing changes the manifest's digest.
// "" when there is none.
func sealRefName(c *cli.Context, ref ociimage.Ref) (string, error) {
	name := c.String("ref-name")
	if !c.IsSet("ref-name") {
		if ref.Transport != ociimage.TransportDocker || strings.Contains(ref.Path, "@") {
			return "", nil
		}
		name = ref.Path
	}
	if strings.Contains(name, "@") {
		return "", fmt.Errorf("--ref-name %q: a reference by digest cannot name the sealed manifest (sealing changes its digest): give HOST/REPO[:TAG]", name)
	}
	n, err := imageref.Normalize(name)
	if err != nil {
		return "", fmt.Errorf("--ref-name: %w", err)
	}
	return n, nil
}

// annotationFormat returns --format, one of writeAnnotations' formats.
func annotationFormat(c *cli.Context, cmd string) (string, error) {
	switch format := c.String("format"); format {
	case "podman", "json", "annotations":
		return format, nil
	default:
		return "", cli.Exit(fmt.Sprintf("%s: unknown --format %q (want podman, json or annotations)", cmd, format), 2)
	}
}

// signFlags returns sign's flags of these names: seal signs as sign does.
func signFlags(names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range signCommand.Flags {
		if slices.Contains(names, f.Names()[0]) {
			out = append(out, f)
		}
	}
	return out
}

// signingKey loads --key (decrypted with $COSIGN_PASSWORD, or the password
// typed on the terminal, when encrypted)
// and --cert, as `cfs-runtime sign` takes them.
func signingKey(c *cli.Context) (crypto.Signer, []*x509.Certificate, error) {
	keyData, err := os.ReadFile(c.String("key"))
	if err != nil {
		return nil, nil, err
	}
	pw := &keyPassword{tty: passwordTTY(), prompt: c.App.ErrWriter}
	key, err := attest.LoadPrivateKey(keyData, pw.get)
	if errors.Is(err, attest.ErrWrongPassword) {
		return nil, nil, fmt.Errorf("%s: %w (%s)", c.String("key"), err, pw.source)
	} else if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.String("key"), err)
	}
	var chain []*x509.Certificate
	if p := c.String("cert"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		if chain, err = attest.ParseCertificates(data); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return key, chain, nil
}

// sealPush pushes the sealed manifest of a registry image (and the
// indexes leading to it) back to its repository.
func sealPush(c *cli.Context, ref ociimage.Ref, ann map[string]string, img *ociimage.Image) error {
	blobs, err := ociimage.AnnotateRemote(ref, ann, attest.DigestAnnotationPrefix, img.ManifestDescriptor().Digest)
	if err != nil {
		return err
	}
	pushed, err := registry.Push(context.Background(), ref.Path, registryOptions(c), blobs)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "pushed docker://%s: manifest %s (was %s)\n", pushed, blobs[0].Desc.Digest, blobs[0].Old)
	return nil
}
