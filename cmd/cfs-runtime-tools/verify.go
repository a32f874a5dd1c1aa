package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/urfave/cli/v2"
)

// verifyCommand runs exactly the verification create runs and explains the
// verdict. Exit status 0: trusted or allowed; 1: refused.
var verifyCommand = &cli.Command{
	Name:      "verify",
	Usage:     "check a container's composefs digest and signature against the trust policy, as create does",
	ArgsUsage: " ",
	Description: "Reads the annotations of an OCI bundle's config.json (--bundle) or of a file\n" +
		"(--annotations: a JSON object as `cfs-runtime sign --format json` prints, or\n" +
		"KEY=VALUE lines; - for stdin), applies the trust policy (--policy, default: the\n" +
		"configuration's `policy`) and prints the verdict (--json: as JSON). Exit status 0 when the\n" +
		"container may start (signed by a trusted signer, or allowed unsigned), 1 when\n" +
		"create would refuse it. The image reference signer scopes are checked\n" +
		"against is the one create takes from the annotations (containerd's\n" +
		"io.kubernetes.cri.image-name, CRI-O's io.kubernetes.cri-o.ImageName, the\n" +
		"image's org.opencontainers.image.ref.name), or --image.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "OCI bundle `DIR` whose config.json to check"},
		&cli.StringFlag{Name: "annotations", Usage: "annotations `FILE` (JSON object or KEY=VALUE lines, - for stdin)"},
		&cli.StringFlag{Name: "policy", Usage: "trust policy `FILE`", DefaultText: "the configuration's policy, " + attest.DefaultPolicyPath},
		&cli.StringFlag{Name: "image", Usage: "the image reference `REF` the container runs (default: from the annotations)"},
		&cli.BoolFlag{Name: "json", Usage: "print the verdict as JSON"},
	},
	Action: verifyAction,
}

func verifyAction(c *cli.Context) error {
	if c.NArg() != 0 || c.IsSet("bundle") == c.IsSet("annotations") {
		return cli.Exit("verify: want exactly one of --bundle DIR or --annotations FILE (usage: cfs-runtime verify --bundle DIR | --annotations FILE [--policy FILE])", 2)
	}
	var (
		ann    map[string]string
		source string
		err    error
	)
	if dir := c.String("bundle"); dir != "" {
		// As create reads it: the same limits, the same refusals.
		var b *bundle.Bundle
		if b, err = bundle.Load(dir, "config.json", bundlejson.JSON); err == nil {
			source, ann = b.ConfigPath, b.Annotations()
		}
	} else {
		source = c.String("annotations")
		ann, err = readAnnotationsFile(source)
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	p, err := loadTrustPolicy(c)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}

	keys := make([]string, 0, len(ann))
	for k := range ann {
		if strings.HasPrefix(strings.ToLower(k), attest.DigestAnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	ref, refErr := imageref.FromAnnotations(ann)
	if r := c.String("image"); r != "" {
		if ref, refErr = imageref.Normalize(r); refErr != nil {
			return cli.Exit("verify: --image: "+refErr.Error(), 2)
		}
	}
	v, verr := attest.Verify(ann, p, attest.WithReference(ref, refErr))
	if c.Bool("json") {
		return printVerifyJSON(c.App.Writer, source, p, keys, ref, v, verr)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "annotations: %s\n", source)
	fmt.Fprintf(w, "policy: %s\n", p.Path)
	if len(keys) == 0 {
		fmt.Fprintf(w, "composefs annotations: none\n")
	}
	for _, k := range keys {
		fmt.Fprintf(w, "composefs annotation: %s (%d bytes)\n", k, len(ann[k]))
	}
	if ref != "" {
		fmt.Fprintf(w, "image: %s\n", ref)
	}
	if verr != nil {
		fmt.Fprintf(w, "verdict: refused: %v\n", verr)
		return cli.Exit("", 1)
	}
	if v.Unsigned {
		fmt.Fprintf(w, "verdict: allowed unsigned by rule %q: the root filesystem is not verified\n", v.Rule)
		return nil
	}
	fmt.Fprintf(w, "composefs digest: %s (%s, %d-byte blocks)\n", v.Digest, v.Digest.AnnotationKey(), v.Digest.BlockSize)
	fmt.Fprintf(w, "signature: %s (%s%s) trusted by signer %q: %s\n", v.Kind, v.Digest.AnnotationKey(), v.Kind.Suffix(), v.Signer, v.Detail)
	fmt.Fprintf(w, "enforcement: %s: %s\n", v.Enforcement, v.Enforcement.Describe())
	fmt.Fprintf(w, "verdict: trusted\n")
	return nil
}

// verifyJSON is verify's --json document.
type verifyJSON struct {
	Annotations string `json:"annotations"`
	Policy      string `json:"policy"`
	// ComposefsAnnotations are the composefs annotation keys present.
	ComposefsAnnotations []string `json:"composefs_annotations"`
	// Image is the image reference signer scopes are checked against.
	Image string `json:"image,omitempty"`
	// Verdict: "trusted", "unsigned" (allowed by Rule) or "refused"
	// (Reason says why).
	Verdict     string `json:"verdict"`
	Reason      string `json:"reason,omitempty"`
	Rule        string `json:"rule,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Signature   string `json:"signature,omitempty"`
	Annotation  string `json:"signature_annotation,omitempty"`
	Signer      string `json:"signer,omitempty"`
	Detail      string `json:"detail,omitempty"`
	Enforcement string `json:"enforcement,omitempty"`
}

func printVerifyJSON(w io.Writer, source string, p *attest.Policy, keys []string, ref string, v attest.Verdict, verr error) error {
	out := verifyJSON{Annotations: source, Policy: p.Path, ComposefsAnnotations: keys, Image: ref}
	switch {
	case verr != nil:
		out.Verdict, out.Reason = "refused", verr.Error()
	case v.Unsigned:
		out.Verdict, out.Rule = "unsigned", v.Rule
	default:
		out.Verdict = "trusted"
		out.Digest, out.Signature, out.Annotation = v.Digest.String(), v.Kind.String(), v.Digest.AnnotationKey()+v.Kind.Suffix()
		out.Signer, out.Detail, out.Enforcement = v.Signer, v.Detail, string(v.Enforcement)
	}
	if err := printJSON(w, out); err != nil {
		return err
	}
	if verr != nil {
		return cli.Exit("", 1)
	}
	return nil
}

// loadTrustPolicy loads --policy, or the configuration's policy file.
func loadTrustPolicy(c *cli.Context, opts ...attest.LoadOption) (*attest.Policy, error) {
	path := c.String("policy")
	if path == "" {
		cfg, err := loadConfig(c)
		if err != nil {
			return nil, err
		}
		path = cfg.Policy
	}
	if path == "" {
		path = attest.DefaultPolicyPath
	}
	return attest.LoadPolicy(path, opts...)
}

// readAnnotationsFile reads a JSON object of strings, or KEY=VALUE lines
// (blank lines and # comments ignored). "-" is stdin.
func readAnnotationsFile(path string) (map[string]string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	ann := map[string]string{}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, &ann); err != nil {
			return nil, fmt.Errorf("%s: not a JSON object of strings: %w", path, err)
		}
		return ann, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, n)
		}
		if _, dup := ann[k]; dup {
			return nil, fmt.Errorf("%s:%d: annotation %s given twice", path, n, k)
		}
		ann[k] = v
	}
	return ann, sc.Err()
}
