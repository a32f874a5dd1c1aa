package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/containerd"
	"github.com/cfs-runtime/cfs-runtime/internal/cstorage"
	"github.com/cfs-runtime/cfs-runtime/internal/decompress"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// fsck exit codes.
const (
	fsckExitClean   = 0
	fsckExitDamaged = 1 // something is missing or corrupt (after --repair: still)
	fsckExitError   = 2 // something could not be checked
)

// ociSources opens the given layers ("sha256:HEX" diff_ids; nil: all) of
// an OCI image ("oci:DIR[:NAME]" or "oci-archive:FILE[:NAME]") as one
// object source for repair.
var ociSources = ociimage.NewSource

// containerdSource opens the given layers of an image in containerd's
// content store (the configuration's containerd_address and
// containerd_namespace) as one object source for repair. Every blob is
// checked against its digest and every layer against its diff_id as it
// is read, as from a layout.
func containerdSource(cfg config.Config, name string, layers []string) (store.ObjectSource, error) {
	c, err := containerd.Dial(cfg.ContainerdAddress, cfg.ContainerdNamespace, 0)
	if err != nil {
		return nil, err
	}
	t, err := c.Image(name)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd %s: image %s: %w", cfg.ContainerdAddress, name, containerd.Describe(err))
	}
	top := v1.Descriptor{MediaType: t.MediaType, Digest: digest.Digest(t.Digest), Size: t.Size}
	// The connection lives as long as the repair: the process ends then.
	return ociimage.NewBlobsSource(ociimage.Ref{Transport: ociimage.TransportContainerd, Path: name}, c.OpenBlob, top, layers)
}

var fsckCommand = &cli.Command{
	Name:      "fsck",
	Usage:     "verify images and every object they use completely; restore what is missing or corrupt",
	ArgsUsage: "IMAGE...|--all",
	Description: `IMAGE is a digest (sha256:HEX or HEX), a ref name (cfs-runtime images) or
a digest prefix of at least 4 hex digits that only one image's digest starts
with. Checks each image: the image object against its digest, then every object
it uses: present, of the size the image records, of the fs-verity digest the
image records (the kernel measures objects that have fs-verity and reads them
in full from the disk, so a corrupted block is found; other objects are hashed
in userspace), and with fs-verity enabled where the store's filesystem has it.
Objects are checked in parallel; a progress bar is drawn on a terminal.

Exit status: 0 every image is clean, 1 something is missing or corrupt,
2 something could not be checked (an image not in the store, an unreadable
object, a bad argument).

--repair restores each missing or corrupt object from a file with the same
fs-verity digest, found in the --source(s): a directory tree, a tar archive
(plain, gzip or bzip2) or an OCI image (oci:DIR[:NAME], oci-archive:FILE[:NAME],
docker://REF: all its layers). Without --source it reads the sources the import
recorded and only those: the tree an image was imported from, or the layers its
objects came from (it says which layers of which layout it needs); for an image
imported from a registry, only the layer blobs holding damaged or missing objects
are fetched again from its repository, pinned to the manifest it was imported
from, each checked against its digest (--authfile, --cert-dir, --tls-verify and
--registries-conf as for import); for an image create imported from an engine's
store, its layers are read from there first (containerd's content store, or
containers-storage, where each layer's tar is rebuilt and checked against its
diff_id before any object is taken from it). Each object is written
to a temporary file, verified, and renamed into place; nothing else in the
store is written. Objects without fs-verity get it enabled in place. The
images are then checked again and the exit status says what is left.`,
	Flags: append([]cli.Flag{
		storeFlag(),
		&cli.BoolFlag{Name: "all", Usage: "check every image of the store"},
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		&cli.BoolFlag{Name: "userspace", Usage: "hash every object in userspace, also where the kernel could measure it"},
		&cli.IntFlag{Name: "threads", Usage: "objects checked in parallel", DefaultText: "the number of CPUs"},
		&cli.BoolFlag{Name: "repair", Usage: "restore missing and corrupt objects (from --source, else from the recorded sources)"},
		&cli.StringSliceFlag{Name: "source", Usage: "where repair finds objects: a directory `TREE`, a TAR file, oci:DIR[:NAME], oci-archive:FILE[:NAME] or docker://REF (repeatable)"},
	}, registryFlags()...),
	Action: fsckAction,
}

// fsckOutput is the --json document.
type fsckOutput struct {
	Images []store.FsckImage `json:"images"`
	// Repair is set with --repair when something needed repair; Images
	// are then the state after it.
	Repair *fsckRepair `json:"repair,omitempty"`
	// Revoked maps each checked image the policy's revocation list
	// revokes to the line that does (create refuses it; not damage, so
	// the exit status does not change).
	Revoked map[string]string `json:"revoked,omitempty"`
}

type fsckRepair struct {
	store.RepairReport
	Errors []string `json:"errors"`
}

func fsckAction(c *cli.Context) error {
	digests := c.Args().Slice()
	switch {
	case c.Bool("all") && len(digests) > 0:
		return cli.Exit("fsck: give IMAGE arguments or --all, not both", fsckExitError)
	case !c.Bool("all") && len(digests) == 0:
		return cli.Exit("fsck: no image given (usage: cfs-runtime fsck [--repair [--source SRC]...] IMAGE...|--all)", fsckExitError)
	case c.IsSet("source") && !c.Bool("repair"):
		return cli.Exit("fsck: --source is only for --repair", fsckExitError)
	}
	s, cfg, err := openStore(c)
	if err != nil {
		return cli.Exit("fsck: "+err.Error(), fsckExitError)
	}
	// A whole digest as it is (an image not in the store is reported as
	// such), else a ref name or a unique digest prefix.
	for i, arg := range digests {
		if digests[i], _, err = resolveImage(s, arg); err != nil {
			return cli.Exit("fsck: "+err.Error(), fsckExitError)
		}
	}
	if c.Bool("all") {
		if digests, err = s.ImageDigests(); err != nil {
			return cli.Exit("fsck: "+err.Error(), fsckExitError)
		}
	}
	revoked, err := revokedImages(cfg, digests)
	if err != nil {
		return cli.Exit("fsck: "+err.Error(), fsckExitError)
	}
	if c.Bool("repair") {
		setupRegistry(c, c.App.ErrWriter)
	}
	// Sources are opened before anything is checked: a typo fails fast.
	var sources []store.ObjectSource
	for _, arg := range c.StringSlice("source") {
		src, err := openSourceArg(arg)
		if err != nil {
			return cli.Exit("fsck: --source "+arg+": "+err.Error(), fsckExitError)
		}
		sources = append(sources, src)
	}
	// The check allocates little that lives long (per object some bytes,
	// per path its string) but the heap starts small: collecting less
	// often saves about a tenth of a big check's time.
	debug.SetGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()

	var opts []store.FsckOption
	if c.IsSet("threads") {
		opts = append(opts, store.WithFsckThreads(c.Int("threads")))
	}
	if c.Bool("userspace") {
		opts = append(opts, store.WithUserspace())
	}
	bar := newFsckBar(c.App.ErrWriter)
	reports, err := s.Fsck(ctx, digests, append(opts, store.WithFsckProgress(bar.progress))...)
	bar.finish()
	if err != nil {
		return cli.Exit("fsck: "+err.Error(), fsckExitError)
	}
	out := fsckOutput{Images: reports}
	if len(revoked) > 0 {
		out.Revoked = revoked
	}
	if c.Bool("repair") {
		if out.Repair, err = fsckRepairImages(ctx, c, cfg, s, reports, sources); err != nil {
			return cli.Exit("fsck: "+err.Error(), fsckExitError)
		}
		if out.Repair != nil {
			// Check again what was damaged: the report is the state now.
			var again []string
			for _, r := range reports {
				if r.Status == store.FsckDamaged {
					again = append(again, r.Image)
				}
			}
			bar = newFsckBar(c.App.ErrWriter)
			after, err := s.Fsck(ctx, again, append(opts, store.WithFsckProgress(bar.progress))...)
			bar.finish()
			if err != nil {
				return cli.Exit("fsck: "+err.Error(), fsckExitError)
			}
			for _, a := range after {
				i := slices.IndexFunc(out.Images, func(r store.FsckImage) bool { return r.Image == a.Image })
				out.Images[i] = a
			}
		}
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		printFsck(c.App.Writer, out)
	}
	code := fsckExitClean
	for _, r := range out.Images {
		switch r.Status {
		case store.FsckError:
			code = fsckExitError
		case store.FsckDamaged:
			code = max(code, fsckExitDamaged)
		}
	}
	if code != fsckExitClean {
		return cli.Exit("", code)
	}
	return nil
}

// openSourceArg opens a --source: an OCI image (all its layers), a
// directory tree or a tar file.
func openSourceArg(arg string) (store.ObjectSource, error) {
	if ociimage.IsRef(arg) {
		return ociSources(arg, nil)
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return store.NewTreeSource(arg), nil
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("neither a directory nor a tar file")
	}
	return store.NewTarSource(arg, decompress.Reader), nil
}

// fsckRepairImages repairs the damaged images among reports: from sources,
// or else from the sources their provenance records name. It returns nil
// when nothing needed repair. Messages about what it reads go to stderr.
func fsckRepairImages(ctx context.Context, c *cli.Context, cfg config.Config, s *store.Store, reports []store.FsckImage, sources []store.ObjectSource) (*fsckRepair, error) {
	var damaged []store.FsckImage
	for _, r := range reports {
		if r.Status == store.FsckDamaged {
			damaged = append(damaged, r)
		}
	}
	if len(damaged) == 0 {
		return nil, nil
	}
	rep := &fsckRepair{Errors: []string{}}
	errw := c.App.ErrWriter
	if len(sources) == 0 {
		plan, err := s.PlanRepair(damaged)
		if err != nil {
			return nil, err
		}
		if sources, err = planSources(errw, cfg, plan, rep); err != nil {
			return nil, err
		}
	}
	r, err := s.Repair(ctx, damaged, sources)
	rep.RepairReport = r
	if err != nil {
		if !errors.Is(err, store.ErrUnresolved) && !errors.Is(err, store.ErrSourceFailed) {
			return nil, err
		}
		rep.Errors = append(rep.Errors, err.Error())
		fmt.Fprintf(errw, "cfs-runtime: fsck: repair: %v\n", err)
	}
	for _, o := range r.Restored {
		fmt.Fprintf(errw, "fsck: restored object %s from %s: %s\n", o.Object, o.Source, o.File)
	}
	for _, o := range r.Protected {
		fmt.Fprintf(errw, "fsck: enabled fs-verity on object %s\n", o)
	}
	return rep, nil
}

// planSources says which recorded sources the repair reads and opens
// them; sources it cannot open are reported (in rep too) and skipped.
func planSources(errw io.Writer, cfg config.Config, plan store.RepairPlan, rep *fsckRepair) ([]store.ObjectSource, error) {
	var sources []store.ObjectSource
	fail := func(msg string) {
		rep.Errors = append(rep.Errors, msg)
		fmt.Fprintf(errw, "cfs-runtime: fsck: %s\n", msg)
	}
	if len(plan.Unknown) > 0 {
		fail(fmt.Sprintf("no recorded source for %d objects (%s): give --source", len(plan.Unknown), strings.Join(plan.Unknown, ", ")))
	}
	// OCI layers are grouped per layout: one source reads the layers
	// needed from it, and only those.
	layouts := map[string][]string{}
	var order []string
	for _, ps := range plan.Sources {
		switch ps.Kind {
		case store.SourceOCILayer:
			if _, ok := layouts[ps.Layout]; !ok {
				order = append(order, ps.Layout)
			}
			layouts[ps.Layout] = append(layouts[ps.Layout], ps.Ref)
			fmt.Fprintf(errw, "fsck: repair needs layer %s of %s (%d objects)\n", ps.Ref, ps.Layout, len(ps.Objects))
			continue
		}
		fmt.Fprintf(errw, "fsck: repair needs %s %s (%d objects)\n", ps.Kind, ps.Ref, len(ps.Objects))
		src, err := store.OpenSource(ps.Source)
		if err != nil {
			fail(err.Error())
			continue
		}
		sources = append(sources, src)
	}
	// The engine's store first: local, where create imported from, and
	// read before any registry.
	fromEngine := func(layout string) bool {
		return strings.HasPrefix(layout, ociimage.TransportContainerd+":") || strings.HasPrefix(layout, cstorage.Transport+":")
	}
	slices.SortStableFunc(order, func(a, b string) int {
		switch {
		case fromEngine(a) && !fromEngine(b):
			return -1
		case fromEngine(b) && !fromEngine(a):
			return 1
		}
		return 0
	})
	for _, layout := range order {
		// The engine's store, where create imported the image from.
		open := ociSources
		if name, ok := strings.CutPrefix(layout, ociimage.TransportContainerd+":"); ok {
			open = func(_ string, layers []string) (store.ObjectSource, error) {
				return containerdSource(cfg, name, layers)
			}
		} else if name, ok := strings.CutPrefix(layout, cstorage.Transport+":"); ok {
			// Each layer is rebuilt and checked against its diff_id
			// before any object is taken from it.
			open = func(_ string, layers []string) (store.ObjectSource, error) {
				return cstorage.NewSource(cfg.ContainersStorage, name, layers)
			}
		}
		src, err := open(layout, layouts[layout])
		if err != nil {
			fail(fmt.Sprintf("layers %s of %s are needed: %v (give the image where it is now, or the layers' tar files, with --source)", strings.Join(layouts[layout], ", "), layout, err))
			continue
		}
		sources = append(sources, src)
	}
	return sources, nil
}

// printFsck writes the text report: one line per image, one per problem.
func printFsck(w io.Writer, out fsckOutput) {
	for _, r := range out.Images {
		if why, ok := out.Revoked[r.Image]; ok {
			fmt.Fprintf(w, "%s: REVOKED: %s\n", r.Image, why)
		}
		switch r.Status {
		case store.FsckClean:
			fmt.Fprintf(w, "%s: clean (%d objects, %s)\n", r.Image, r.Objects, humanSize(r.Bytes))
		case store.FsckError:
			fmt.Fprintf(w, "%s: could not be checked: %s\n", r.Image, r.Error)
		default:
			if o := r.ImageObject; o != nil {
				if o.Problem == "missing" {
					fmt.Fprintf(w, "%s: damaged: the image object is missing\n", r.Image)
				} else {
					fmt.Fprintf(w, "%s: damaged: the image object is corrupt: %s\n", r.Image, o.Problem)
				}
				continue
			}
			fmt.Fprintf(w, "%s: damaged: %d missing, %d corrupt, %d without fs-verity (of %d objects)\n",
				r.Image, len(r.Missing), len(r.Corrupt), len(r.Unprotected), r.Objects)
		}
		for _, l := range []struct {
			what string
			objs []store.FsckObject
		}{{"missing", r.Missing}, {"corrupt", r.Corrupt}, {"no fs-verity", r.Unprotected}} {
			for _, o := range l.objs {
				problem := ""
				if o.Problem != "" && l.what == "corrupt" {
					problem = ": " + o.Problem
				}
				fmt.Fprintf(w, "  %s %s (%d bytes)%s; used by %s\n", l.what, o.Object, o.Size, problem, listPaths(o.Paths))
			}
		}
	}
}

// listPaths names up to five paths.
func listPaths(paths []string) string {
	if len(paths) == 0 {
		return "the image itself"
	}
	if len(paths) <= 5 {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:5], ", "), len(paths)-5)
}

// fsckBar is the progress bar, drawn only when stderr is a terminal.
type fsckBar struct {
	w   io.Writer
	tty bool
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newFsckBar(w io.Writer) *fsckBar {
	return &fsckBar{w: w, tty: terminal(w)}
}

func (b *fsckBar) progress(done, total int64) {
	if !b.tty {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil {
		b.bar = byteBar(b.w, total, "fsck", progressbar.OptionClearOnFinish())
	}
	// The total grows while images are still being read.
	if total != b.bar.GetMax64() {
		b.bar.ChangeMax64(total)
	}
	b.bar.Set64(max(done, b.bar.State().CurrentNum))
}

func (b *fsckBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
	}
}
