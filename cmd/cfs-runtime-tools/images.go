package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"
)

// imagesCommand lists the images of the store, and keeps them from gc by
// name (refs).
var imagesCommand = &cli.Command{
	Name:      "images",
	Usage:     "list the composefs images of the store; tag them or remove their refs (gc keeps images a ref names)",
	ArgsUsage: " ",
	Description: "Lists every image of the store: digest, size (the image and the distinct\n" +
		"objects it uses), object count, the refs (names) that keep it from gc, the source\n" +
		"and time of its newest ref (what it was last imported from, and when) and the\n" +
		"containers whose root filesystem it is (from the mount state under state_dir).\n" +
		"Every import makes a ref named after its source (the tree's absolute path,\n" +
		"oci:/DIR:NAME, ...) or --ref NAME.\n" +
		"`images tag IMAGE NAME` makes NAME refer to IMAGE (replacing what NAME named);\n" +
		"gc keeps every image a ref names and removes images no ref names and no\n" +
		"container uses. `images rm REF|IMAGE...` removes a ref, or every ref of an image,\n" +
		"and says what gc would then free (`images untag NAME` removes a ref by name only).\n" +
		"IMAGE is a digest (sha256:HEX or HEX), or a digest prefix of at least 4 hex\n" +
		"digits that only one image's digest starts with.",
	Flags: []cli.Flag{
		storeFlag(),
		&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
	},
	Subcommands: []*cli.Command{
		{
			Name:      "tag",
			Usage:     "make NAME refer to the image IMAGE (a digest or a unique digest prefix): gc keeps it",
			ArgsUsage: "IMAGE NAME",
			Flags:     []cli.Flag{storeFlag()},
			Action:    tagAction,
		},
		{
			Name:      "untag",
			Usage:     "remove the ref NAME (the image goes at the next gc unless another ref or a container keeps it)",
			ArgsUsage: "NAME...",
			Flags:     []cli.Flag{storeFlag()},
			Action:    untagAction,
		},
		{
			Name:      "rm",
			Usage:     "remove the ref REF, or every ref of the image IMAGE (a digest or a unique digest prefix); say what gc would then free",
			ArgsUsage: "REF|IMAGE...",
			Flags:     []cli.Flag{storeFlag()},
			Action:    rmAction,
		},
	},
	Action: imagesAction,
}

func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", Usage: "object store directory (default: store_dir of the configuration, " + store.DefaultDir + ")", TakesFile: true}
}

// openStore opens the store of --store or of the configuration, which it
// also returns (for state_dir).
func openStore(c *cli.Context) (*store.Store, config.Config, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, cfg, err
	}
	dir := cfg.StoreDir
	// A subcommand's --store, else the parent's.
	for _, ctx := range c.Lineage() {
		if ctx.IsSet("store") {
			dir = ctx.String("store")
			break
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, cfg, fmt.Errorf("store %s: %w", dir, cmp.Or(err, errors.New("not a directory")))
	}
	s, err := store.Open(dir)
	return s, cfg, err
}

func imagesAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("images: unknown command %q (want tag, untag or rm; `cfs-runtime images` alone lists)", c.Args().First()), 2)
	}
	s, cfg, err := openStore(c)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	infos, err := s.Images()
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	users, err := containersByImage(cfg.StateDir, s)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	digests := make([]string, len(infos))
	for i, info := range infos {
		digests[i] = info.Digest
	}
	revoked, err := revokedImages(cfg, digests)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	type row struct {
		store.ImageInfo
		Containers []string `json:"containers"`
		InUse      bool     `json:"inUse"`
		// Revoked says which line of the policy's revocation list
		// revokes the image (create refuses it).
		Revoked string `json:"revoked,omitempty"`
	}
	rows := make([]row, 0, len(infos))
	for _, info := range infos {
		ids := users[info.Digest]
		if ids == nil {
			ids = []string{}
		}
		rows = append(rows, row{ImageInfo: info, Containers: ids, InUse: len(ids) > 0, Revoked: revoked[info.Digest]})
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	// The REVOKED column only when an image is revoked.
	header, revCol := "DIGEST\tSIZE\tOBJECTS\tREFS\tSOURCE\tCREATED\tSEALED\tIN USE", len(revoked) > 0
	if revCol {
		header += "\tREVOKED"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		use := "no"
		if r.InUse {
			use = "yes (" + strings.Join(r.Containers, ", ") + ")"
		}
		refs := strings.Join(r.Refs, ", ")
		if refs == "" {
			refs = "-"
		}
		objs := strconv.Itoa(r.Objects)
		if r.Error != "" {
			objs = "? (" + r.Error + ")"
		}
		source, created := "-", "-"
		if r.Created != nil {
			source, created = r.Source, r.Created.UTC().Format(time.RFC3339)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Digest, humanSize(r.Size), objs, refs, source, created, sealColumn(r.Seal), use)
		if revCol {
			line += "\t" + cmp.Or(r.Revoked, "-")
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// humanSize formats a byte count as ls -h and podman do (1000-based units
// would differ from du: these are 1024-based).
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PiB", f/unit)
}

func tagAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return cli.Exit("images tag: want IMAGE NAME (usage: cfs-runtime images tag IMAGE NAME)", 2)
	}
	arg, name := c.Args().Get(0), c.Args().Get(1)
	s, _, err := openStore(c)
	if err != nil {
		return fmt.Errorf("images tag: %w", err)
	}
	digest, err := resolveDigest(s, arg)
	if err != nil {
		return fmt.Errorf("images tag: %w", err)
	}
	if err := s.SetRef(name, digest, store.RefSource{Kind: store.RefKindTag}); err != nil {
		return fmt.Errorf("images tag: %w", err)
	}
	if _, err := s.ImagePath(digest); err != nil {
		// Allowed on purpose: a digest can be kept before its image is
		// imported (e.g. by the create that imports it).
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: note: image %s is not in the store %s yet; gc keeps it once it is imported\n", digest, s.Dir())
	}
	return nil
}

// resolveDigest turns an IMAGE argument into a digest: a whole digest
// (HEX, sha256:HEX or sha512:HEX) as it is, whether or not the store has the image,
// else a digest prefix only one of the store's digests starts with. Ref
// names are not taken: where a command takes REF|IMAGE, resolveImage.
func resolveDigest(s *store.Store, arg string) (string, error) {
	h, whole := wholeDigest(arg)
	if whole {
		return h, nil
	}
	d, err := s.ResolvePrefix(h)
	if errors.Is(err, store.ErrBadPrefix) {
		return "", fmt.Errorf("%q is %w", arg, store.ErrBadPrefix)
	}
	return d, err
}

// resolveImage turns a REF|IMAGE argument into a digest: a whole digest as
// it is, else a ref name, else a unique digest prefix (store.Resolve).
func resolveImage(s *store.Store, arg string) (string, *store.Ref, error) {
	if h, whole := wholeDigest(arg); whole {
		return h, nil, nil
	}
	return s.Resolve(arg)
}

// wholeDigest strips "sha256:" or "sha512:" from arg and reports whether
// the rest is a whole SHA-256 or SHA-512 digest in lower-case hex.
func wholeDigest(arg string) (string, bool) {
	h := arg
	for _, p := range []string{"sha256:", "sha512:"} {
		h = strings.TrimPrefix(h, p)
	}
	return h, (len(h) == 64 || len(h) == 128) && strings.Trim(h, "0123456789abcdef") == ""
}

func untagAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("images untag: want at least one NAME (usage: cfs-runtime images untag NAME...)", 2)
	}
	s, _, err := openStore(c)
	if err != nil {
		return fmt.Errorf("images untag: %w", err)
	}
	for _, name := range c.Args().Slice() {
		if _, err := s.RemoveRef(name); err != nil {
			if errors.Is(err, store.ErrNoRef) {
				return fmt.Errorf("images untag: no ref named %q in the store %s", name, s.Dir())
			}
			return fmt.Errorf("images untag: %w", err)
		}
	}
	return nil
}

// rmAction removes refs: REF by name, IMAGE (digest or prefix) all of its
// refs. Every argument is resolved before anything is removed. It then
// says, per image, what still keeps it, and what gc would free.
func rmAction(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("images rm: want at least one REF or IMAGE (usage: cfs-runtime images rm REF|IMAGE...)", 2)
	}
	s, cfg, err := openStore(c)
	if err != nil {
		return fmt.Errorf("images rm: %w", err)
	}
	refs, err := s.ListRefs()
	if err != nil {
		return fmt.Errorf("images rm: %w", err)
	}
	var names, images, noRef []string // refs to remove; images they named; images without refs
	for _, arg := range c.Args().Slice() {
		d, ref, err := resolveImage(s, arg)
		if err != nil {
			return fmt.Errorf("images rm: %w", err)
		}
		if !slices.Contains(images, d) {
			images = append(images, d)
		}
		if ref != nil {
			names = append(names, ref.Name)
			continue
		}
		n := len(names)
		for _, r := range refs {
			if r.Digest == d {
				names = append(names, r.Name)
			}
		}
		if len(names) == n {
			if _, err := s.ImagePath(d); err != nil {
				return fmt.Errorf("images rm: no ref or image %q: %w", arg, store.ErrNotFound)
			}
			noRef = append(noRef, d)
		}
	}
	w := c.App.Writer
	for _, d := range noRef {
		fmt.Fprintf(w, "image %s has no ref\n", d)
	}
	for _, name := range names {
		r, err := s.RemoveRef(name)
		if errors.Is(err, store.ErrNoRef) {
			continue // named twice, or removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("images rm: %w", err)
		}
		fmt.Fprintf(w, "removed ref %s (image %s)\n", r.Name, r.Digest)
	}
	// What keeps each image now.
	left, err := s.Refs()
	if err != nil {
		return fmt.Errorf("images rm: %w", err)
	}
	users, err := containersByImage(cfg.StateDir, s)
	if err != nil {
		return fmt.Errorf("images rm: %w", err)
	}
	for _, d := range images {
		var keep []string
		for name, ld := range left {
			if ld == d {
				keep = append(keep, "ref "+name)
			}
		}
		slices.Sort(keep)
		for _, id := range users[d] {
			keep = append(keep, "container "+id)
		}
		if len(keep) > 0 {
			fmt.Fprintf(w, "image %s is still kept by %s\n", d, strings.Join(keep, ", "))
		}
	}
	rep, err := s.GC(store.WithGCDryRun(), store.WithInUse(imagesInUse(cfg.StateDir, s)))
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "cfs-runtime: note: what gc would free is unknown: %v\n", err)
		return nil
	}
	fmt.Fprintf(w, "gc would now remove %d images, %d objects (%s)\n", len(rep.Images), rep.Objects, humanSize(rep.Bytes))
	return nil
}

// containersByImage maps the digest of each image that a container's
// composefs mount uses (mount state under stateDir) to the container ids.
// A state directory without readable mount state that has something
// mounted in it is an error: which image it uses cannot be told (a
// directory with nothing mounted is a leftover and is ignored).
func containersByImage(stateDir string, s *store.Store) (map[string][]string, error) {
	states, err := mount.States(stateDir)
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, c := range states {
		if c.Err != nil {
			// Being mounted right now (create holds the store lock
			// meanwhile, so not while gc runs) or mounted and its state
			// lost: either way, which image it uses is unknown.
			dir := filepath.Join(stateDir, c.ID)
			mounted, merr := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
			if merr != nil {
				return nil, fmt.Errorf("container %s: %w", c.ID, merr)
			}
			if len(mounted) > 0 {
				return nil, fmt.Errorf("container %s: %s has mounts but no readable mount state, so which image it uses is unknown (being created right now? otherwise remove it with `cfs-runtime cleanup %s`)", c.ID, dir, c.ID)
			}
			continue // a leftover directory
		}
		d := c.State.Digest
		if d == "" {
			d, _ = s.ImageDigest(c.State.Image) // state from before digests were recorded
		}
		if d != "" {
			users[d] = append(users[d], c.ID)
		}
	}
	return users, nil
}

// sealColumn says whether the image came from a sealed manifest and, when
// the policy verified it at import, by which signer and key (the key
// fingerprint's first 12 hex digits, as image ids are shortened).
func sealColumn(seal *store.Seal) string {
	switch {
	case seal == nil:
		return "-"
	case !seal.Verified:
		return "yes (not verified)"
	case seal.KeyID != "":
		return fmt.Sprintf("%s (key %.12s)", seal.Signer, seal.KeyID)
	}
	return seal.Signer
}
