package ociimage

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Canonicalization rules: how an image's layers become a composefs tree
// and which EROFS format the image is written in.
const (
	// CanonicalOCI (the default) keeps what the layers say: tar metadata
	// as written (nanosecond mtimes from PAX headers, every xattr), the
	// root directory's metadata from the layers' "./" entry (0755 root:root
	// mtime 0 when none has one), /run as the layers leave it; OCI
	// whiteout semantics; the image in libcomposefs 1.0.8's format, the one
	// `cfs-runtime digest`, mkcomposefs and composefs-info use (image
	// format version 0, or 1 when the tree has whiteouts).
	CanonicalOCI = "oci"
	// CanonicalComposefsRS follows composefs-rs' OCI rules
	// (composefs-oci create_filesystem + transform_for_oci): mtimes in
	// whole seconds, the root directory takes /usr's metadata, /run is
	// emptied, entries applied in tar order; the image in composefs-rs'
	// EROFS format ErofsVersion (1 by default: libcomposefs' format with
	// composefs_version 1; 0 the same with version 0; 2 composefs-rs'
	// legacy format). The digest is what `cfsctl --hash sha256
	// [--erofs-version N] oci compute-id` prints for the image.
	CanonicalComposefsRS = "composefs-rs"
)

// Options configure Import and Digest.
type Options struct {
	// Canonical is CanonicalOCI ("" means it) or CanonicalComposefsRS.
	Canonical string
	// ErofsVersion is composefs-rs' EROFS format version (0, 1 or 2) for
	// CanonicalComposefsRS; 0 is taken as 1 unless ErofsVersionSet.
	ErofsVersion    int
	ErofsVersionSet bool
	// Log, if set, gets one line per layer: processed or reused.
	Log io.Writer
	// RefName names the image in the store (Store.SetRef), so that gc
	// keeps it; "" means the layout reference ("oci:/abs/DIR:NAME").
	RefName string
	// Hash is Digest's fs-verity algorithm of the objects and the image:
	// verity.SHA256 (0 means it) or verity.SHA512 (cfsctl's default).
	// Import uses the store's (store.WithHash).
	Hash verity.Algorithm
	// Expect, if set, is the composefs digest (hex) the image must have:
	// an image with another is not committed (ErrUnexpectedDigest).
	Expect string
	// Progress, if set, wraps the stream of each layer blob Import reads
	// from a layout on disk (oci:, oci-archive:): a progress bar on a
	// terminal. A registry's blobs are wrapped by its client instead
	// (registry.Options.Progress), as they arrive. Layers are read
	// several at once: Progress is called, and its readers read, from
	// several goroutines at a time.
	Progress func(desc v1.Descriptor, r io.ReadCloser) io.ReadCloser
}

// hash is Hash with its default.
func (o Options) hash() verity.Algorithm {
	if o.Hash == 0 {
		return verity.SHA256
	}
	return o.Hash
}

func (o Options) check() error {
	if h := o.hash(); h != verity.SHA256 && h != verity.SHA512 {
		return fmt.Errorf("%w: fs-verity algorithm %s (want sha256 or sha512)", ErrUnsupported, h)
	}
	switch o.Canonical {
	case "", CanonicalOCI:
		if o.ErofsVersionSet {
			return fmt.Errorf("%w: an EROFS version applies to --canonical %s only", ErrUnsupported, CanonicalComposefsRS)
		}
	case CanonicalComposefsRS:
		if o.ErofsVersion < 0 || o.ErofsVersion > 2 {
			return fmt.Errorf("%w: composefs-rs EROFS version %d (want 0, 1 or 2)", ErrUnsupported, o.ErofsVersion)
		}
	default:
		return fmt.Errorf("%w: canonicalization %q (want %s or %s)", ErrUnsupported, o.Canonical, CanonicalOCI, CanonicalComposefsRS)
	}
	return nil
}

func (o Options) composefsRS() bool { return o.Canonical == CanonicalComposefsRS }

// rules names the canonicalization in provenance records: "" for the
// default, "composefs-rs/vN" otherwise.
func (o Options) rules() string {
	if !o.composefsRS() {
		return ""
	}
	v := o.ErofsVersion
	if !o.ErofsVersionSet {
		v = 1
	}
	return fmt.Sprintf("%s/v%d", CanonicalComposefsRS, v)
}

// writeImage returns the function that writes t's image in the format the
// options select.
func (o Options) writeImage(t *composefs.Tree) func(io.Writer) error {
	if !o.composefsRS() {
		return func(w io.Writer) error { return t.WriteImage(w) }
	}
	v := o.ErofsVersion
	if !o.ErofsVersionSet {
		v = 1
	}
	switch v {
	case 2:
		return t.WriteComposefsRSImage
	case 1:
		return func(w io.Writer) error { return t.WriteImage(w, composefs.WithMinVersion(1)) }
	}
	return func(w io.Writer) error { return t.WriteImage(w) }
}

// LayerResult says what happened to one layer.
type LayerResult struct {
	DiffID  digest.Digest
	Blob    digest.Digest // the layer blob's (compressed) digest
	Reused  bool          // applied from its record: the layer was not read
	Entries int
	// Objects is how many distinct objects the layer's files have.
	Objects int
}

// Result is what Import did.
type Result struct {
	Ref      Ref
	Digest   string // composefs image digest (hex)
	Manifest digest.Digest
	RefName  string // the store ref that keeps the image
	Layers   []LayerResult
	// Stats counts the objects written to, or found in, the store (layers
	// that were read only).
	Stats store.StreamStats
	// BytesRead is how many layer blob bytes were read (fetched, from a
	// registry).
	BytesRead int64
	// Annotations are the manifest's (a sealed image's composefs digest
	// and signatures among them).
	Annotations map[string]string
}

// Processed is how many layers were read (not reused from records).
func (r *Result) Processed() int {
	n := 0
	for _, l := range r.Layers {
		if !l.Reused {
			n++
		}
	}
	return n
}

// layerRun applies one image's layers, from records where possible.
type layerRun struct {
	l      *Layout
	img    *Image
	opts   Options
	m      *merger
	layers []LayerResult
	fresh  map[int][]byte // records of the layers read in this run, to write
	// layerRead, if set, is called after each layer read (in layer order).
	layerRead func()
	all       [][]entry
}

func newRun(l *Layout, img *Image, opts Options) *layerRun {
	return &layerRun{l: l, img: img, opts: opts, m: newMerger(opts.composefsRS()), fresh: map[int][]byte{}}
}

// recorded returns the entries of layer i from its record, if store is
// not nil and has a usable one whose objects are all present; nil if the
// layer must be read.
func (r *layerRun) recorded(i int, st *store.Store) []entry {
	if st == nil {
		return nil
	}
	diffID := r.img.Config.RootFS.DiffIDs[i]
	recorded, missing, err := loadRecord(st, diffID)
	switch {
	case err == nil && missing == 0:
		return recorded
	case err == nil:
		r.logf("%s: %d objects of its record are gone from the store: reading the layer again", r.what(i), missing)
	case !errors.Is(err, fs.ErrNotExist):
		r.logf("%s: %v: reading the layer again", r.what(i), err)
	}
	return nil
}

func (r *layerRun) what(i int) string {
	return fmt.Sprintf("layer %d/%d %s", i+1, len(r.img.Manifest.Layers), r.img.Config.RootFS.DiffIDs[i])
}

// applyLayers applies every layer in order: those with a usable record (see
// recorded) from it, the others read into the sinks newSink returns, up
// to maxParallelLayers at once (see readLayers), biggest first (see
// biggestFirst).
func (r *layerRun) applyLayers(st *store.Store, newSink func() (objectSink, error)) error {
	n := len(r.img.Manifest.Layers)
	recs := make([][]entry, n)
	var todo []int
	for i := range n {
		if recs[i] = r.recorded(i, st); recs[i] == nil {
			todo = append(todo, i)
		}
	}
	reads, stop := r.readLayers(biggestFirst(todo, r.img.Manifest.Layers), newSink, st != nil)
	defer stop()
	for i := range n {
		entries, reused := recs[i], true
		if entries == nil {
			rd := reads[i]
			<-rd.done
			if rd.err != nil {
				return rd.err
			}
			entries, reused = rd.entries, false
			if st != nil {
				r.fresh[i] = rd.record
			}
			if r.layerRead != nil {
				r.layerRead()
			}
		}
		if err := r.apply(i, entries, reused); err != nil {
			return err
		}
	}
	return nil
}

// biggestFirst orders the layers todo by blob size, biggest first (layer
// order among equals): reading them in layer order can leave a big last
// layer to be read alone at the end, on one layer's worth of CPUs, while
// the smaller layers, read first, could have filled in beside it
// (longest-processing-time-first scheduling). The blob size stands for
// the work a layer is; the layers are still applied in layer order.
func biggestFirst(todo []int, layers []v1.Descriptor) []int {
	order := slices.Clone(todo)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(layers[b].Size, layers[a].Size) })
	return order
}

// maxParallelLayers bounds how many layers an import reads at once (each
// with its blob digest, decompression, diff_id digest and file storing
// in goroutines of their own); fewer on fewer CPUs.
const maxParallelLayers = 3

// layerRead is one layer being read by readLayers: entries, record and
// err are set when done is closed.
type layerRead struct {
	done    chan struct{}
	entries []entry
	record  []byte // the layer's record, encoded (if asked for)
	err     error
}

// readLayers reads the layers todo (in that order) in goroutines, at most
// min(GOMAXPROCS, maxParallelLayers) at once, each into a sink of its own:
// while one layer's files are stored, the next ones are fetched,
// decompressed and hashed. The entries of a layer are used only once its
// read succeeded, which includes its blob digest and diff_id checks: a
// layer that fails contributes nothing (objects it placed are complete and
// named by their content; gc removes them if nothing uses them). Layers
// read ahead of the one being applied keep only their entries (metadata:
// the contents are in the store), which the import keeps for every layer
// until the end anyway (provenance, records). stop
// ends the reads not needed any more (at their next object) and waits for
// every goroutine: nothing uses a sink or the layout after it returns.
// With record, each read also encodes the layer's record (see
// writeRecords): here, beside the other reads, rather than after the
// image is written, when nothing else runs.
func (r *layerRun) readLayers(todo []int, newSink func() (objectSink, error), record bool) (map[int]*layerRead, func()) {
	reads := make(map[int]*layerRead, len(todo))
	for _, i := range todo {
		reads[i] = &layerRead{done: make(chan struct{})}
	}
	var (
		wg      sync.WaitGroup
		stopped atomic.Bool
		quit    = make(chan struct{})
		slots   = make(chan struct{}, max(1, min(runtime.GOMAXPROCS(0), maxParallelLayers)))
	)
	wg.Add(1)
	go func() { // starts the reads in layer order, as slots free up
		defer wg.Done()
		for _, i := range todo {
			rd := reads[i]
			select {
			case slots <- struct{}{}:
			case <-quit:
				rd.err = errStopped
				close(rd.done)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer close(rd.done)
				sink, err := newSink()
				if err != nil {
					rd.err = err
					return
				}
				rd.entries, rd.err = r.l.readLayer(r.img, i, stoppable{sink, &stopped})
				if rd.err == nil && record {
					rd.record = encodeRecord(r.img.Config.RootFS.DiffIDs[i], rd.entries)
				}
			}()
		}
	}()
	var once sync.Once
	return reads, func() {
		once.Do(func() {
			stopped.Store(true)
			close(quit)
		})
		wg.Wait()
	}
}

// stoppable is an objectSink that refuses objects once stopped is set:
// a read whose result is not needed any more ends at its next object.
type stoppable struct {
	objectSink
	stopped *atomic.Bool
}

func (s stoppable) PutObject(r io.Reader, size int64) ([]byte, error) {
	if s.stopped.Load() {
		return nil, errStopped
	}
	return s.objectSink.PutObject(r, size)
}

// apply merges layer i's entries (from its record if reused, else just
// read) into the image.
func (r *layerRun) apply(i int, entries []entry, reused bool) error {
	what := r.what(i)
	r.m.beginLayer(i)
	objs := map[string]struct{}{}
	for _, e := range entries {
		if err := r.m.apply(e); err != nil {
			return fmt.Errorf("%s: %s: %w", r.l.ref, what, err)
		}
		if e.node.Digest != nil {
			objs[string(e.node.Digest)] = struct{}{}
		}
	}
	r.all = append(r.all, entries)
	r.layers = append(r.layers, LayerResult{DiffID: r.img.Config.RootFS.DiffIDs[i], Blob: r.img.Manifest.Layers[i].Digest, Reused: reused, Entries: len(entries), Objects: len(objs)})
	if reused {
		r.logf("%s: already imported (%d entries, %d objects)", what, len(entries), len(objs))
	} else {
		r.logf("%s: processed (%d entries, %d objects)", what, len(entries), len(objs))
	}
	return nil
}

func (r *layerRun) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, format+"\n", args...)
	}
}

// tree is the merged tree, canonicalized as the options say.
func (r *layerRun) tree() (*composefs.Tree, error) {
	if r.opts.composefsRS() {
		if err := r.m.canonicalizeComposefsRS(); err != nil {
			return nil, fmt.Errorf("%s: %w", r.l.ref, err)
		}
	}
	t, err := r.m.tree(r.opts.composefsRS())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.l.ref, err)
	}
	return t, nil
}

// Import puts the image ref names into the store: every layer not recorded
// before is read (its blob checked against its digest, its uncompressed
// content against the config's diff_id) with file contents going into the
// store as they stream by; recorded layers are applied from their records.
// Then the merged image is written, its provenance (one source per layer)
// recorded and the image committed; then the new layers' records and a ref
// to the image are written, all under the store's import lock (gc waits).
// A layout that fails a check leaves no image (objects already placed are
// complete and verified; gc removes them if nothing uses them).
func Import(st *store.Store, ref Ref, opts Options) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	l, err := Open(ref)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return ImportLayout(st, l, opts)
}

// ImportLayout is Import of the image of an opened layout (OpenBlobs).
func ImportLayout(st *store.Store, l *Layout, opts Options) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	ref := l.ref
	l.progress = opts.Progress
	img, err := l.Resolve()
	if err != nil {
		return nil, err
	}
	if res, ok := unchanged(st, ref, l, img, opts); ok {
		return res, nil
	}
	si, err := st.BeginStream()
	if err != nil {
		return nil, err
	}
	defer si.Close()
	r := newRun(l, img, opts)
	r.layerRead = si.Flush // the layer's objects to disk while the others are read
	if err := r.applyLayers(st, func() (objectSink, error) { return si.Fork() }); err != nil {
		return nil, err
	}
	t, err := r.tree()
	if err != nil {
		return nil, err
	}
	// The provenance is worked out while the image is written (both only
	// read t), on a CPU that would be idle otherwise.
	prov := make(chan []store.Source, 1)
	go func() { prov <- r.provenance(t) }()
	d, err := si.WriteImage(opts.writeImage(t))
	srcs := <-prov
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if opts.Expect != "" && d != opts.Expect {
		return nil, fmt.Errorf("%s: %w: it has composefs digest %s, but the sealed digest is %s", ref, store.ErrUnexpectedDigest, d, opts.Expect)
	}
	// Provenance before the image appears (as every import records it):
	// fsck never finds the image without its sources.
	if err := st.SetProvenance(d, mergeSources(st, d, srcs)); err != nil {
		return nil, fmt.Errorf("%s: provenance: %w", ref, err)
	}
	if err := si.Commit(d); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	res := &Result{Ref: ref, Digest: d, Manifest: img.ManifestDescriptor().Digest, Layers: r.layers, Stats: si.Stats(), BytesRead: l.read.Load(), Annotations: img.Manifest.Annotations}
	// Records only once their objects are durable (Commit's syncfs): a
	// record is trusted to mean "these objects are in the store".
	if err := r.writeRecords(st); err != nil {
		return nil, err
	}
	res.RefName = opts.RefName
	if res.RefName == "" {
		res.RefName = refName(ref, img)
	}
	// The source as the user named it (with the image's name from the
	// index when none was given), whatever the ref is named.
	src := ref
	if src.Tag == "" && img.Name != "" {
		src.Tag = img.Name
	}
	if err := st.SetRef(res.RefName, d, store.RefSource{Kind: ref.Transport, Ref: src.String()}); err != nil {
		return nil, fmt.Errorf("%s: ref %q: %w", ref, res.RefName, err)
	}
	return res, nil
}

// writeRecords writes the records of the layers read in this run, all at
// once: files of their own, each with its fsyncs, which the filesystem can
// then commit together rather than one after the other. The first error in
// layer order is returned.
func (r *layerRun) writeRecords(st *store.Store) error {
	idx := slices.Sorted(maps.Keys(r.fresh))
	errs := make([]error, len(idx))
	seen := map[digest.Digest]bool{}
	var wg sync.WaitGroup
	for k, i := range idx {
		diffID := r.img.Config.RootFS.DiffIDs[i]
		if seen[diffID] {
			continue // the same layer twice in the image: one record
		}
		seen[diffID] = true
		wg.Go(func() { errs[k] = writeRecord(st, diffID, r.fresh[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// unchanged finds a re-pull with nothing to do: the registry reference's
// ref names an image the store still has, made with the same rules from
// every layer of the manifest the registry serves now (provenance names
// the repository pinned to the manifest digest, so the same manifest means
// the same image). Then nothing is read or written. Only for registries:
// a layout on disk is named by path, and its content may change.
func unchanged(st *store.Store, ref Ref, l *Layout, img *Image, opts Options) (*Result, bool) {
	if ref.Transport != TransportDocker {
		return nil, false
	}
	name := opts.RefName
	if name == "" {
		name = refName(ref, img)
	}
	refs, err := st.Refs()
	if err != nil {
		return nil, false
	}
	d, ok := refs[name]
	if !ok || len(d) != 2*st.Hash().Size() { // (an image of the other algorithm)
		return nil, false
	}
	if _, err := st.ImagePath(d); err != nil {
		return nil, false
	}
	srcs, err := st.Provenance(d)
	if err != nil {
		return nil, false
	}
	loc, rules := l.location(), opts.rules()
	found := map[string]bool{}
	for _, s := range srcs {
		if s.Kind == store.SourceOCILayer && s.Layout == loc && s.Canonical == rules {
			found[s.Blob+" "+s.Ref] = true
		}
	}
	res := &Result{Ref: ref, Digest: d, Manifest: img.ManifestDescriptor().Digest, RefName: name, Annotations: img.Manifest.Annotations}
	for i, desc := range img.Manifest.Layers {
		diffID := img.Config.RootFS.DiffIDs[i]
		if !found[desc.Digest.String()+" "+diffID.String()] {
			return nil, false
		}
		res.Layers = append(res.Layers, LayerResult{DiffID: diffID, Blob: desc.Digest, Reused: true})
	}
	if opts.Log != nil {
		fmt.Fprintf(opts.Log, "%s: manifest %s imported before as image %s: nothing to fetch\n", ref, res.Manifest, d)
	}
	return res, true
}

// refName is the store ref of an imported image: the layout reference,
// with the image's name when none was given and the index names it; for a
// reference too long for a ref file name, "oci@" and the manifest digest.
// A registry image is kept as its reference, "docker://REF", as given.
func refName(ref Ref, img *Image) string {
	// refs: see #17 item 5 (a docker:// import is kept as an oci: one is).
	if ref.Transport == TransportDocker {
		if name := ref.String(); len(url.PathEscape(name)) <= maxRefName {
			return name
		}
		return "docker@" + img.ManifestDescriptor().Digest.String()
	}
	if ref.Tag == "" && img.Name != "" {
		ref.Tag = img.Name
	}
	if name := ref.String(); len(url.PathEscape(name)) <= maxRefName {
		return name
	}
	return "oci@" + img.ManifestDescriptor().Digest.String()
}

// maxRefName is the longest (path-escaped) ref name the store takes.
const maxRefName = 200

// provenance lists, per layer, the image's objects its files provided
// (Ref: the layer's diff_id; Layout: where it was read).
func (r *layerRun) provenance(t *composefs.Tree) []store.Source {
	inImage := map[string]struct{}{}
	t.WalkObjects(func(o composefs.Object) error {
		inImage[string(o.Digest)] = struct{}{}
		return nil
	})
	srcs := make([]store.Source, 0, len(r.all))
	for i, entries := range r.all {
		seen := map[string]struct{}{}
		objs := []string{}
		for _, e := range entries {
			d := string(e.node.Digest)
			if _, ok := inImage[d]; !ok || e.node.Digest == nil {
				continue
			}
			if _, dup := seen[d]; !dup {
				seen[d] = struct{}{}
				objs = append(objs, hex.EncodeToString(e.node.Digest))
			}
		}
		slices.Sort(objs)
		srcs = append(srcs, store.Source{
			Kind:      store.SourceOCILayer,
			Ref:       r.img.Config.RootFS.DiffIDs[i].String(),
			Layout:    r.l.location(),
			Blob:      r.img.Manifest.Layers[i].Digest.String(),
			Canonical: r.opts.rules(),
			Objects:   objs,
		})
	}
	return srcs
}

// mergeSources adds to srcs the sources recorded before for the image
// that are not among them (the same image imported from another layout,
// or as a tree): every place that can provide its objects stays known.
func mergeSources(st *store.Store, image string, srcs []store.Source) []store.Source {
	old, err := st.Provenance(image)
	if err != nil {
		return srcs
	}
	for _, o := range old {
		if !slices.ContainsFunc(srcs, func(s store.Source) bool {
			return s.Kind == o.Kind && s.Ref == o.Ref && s.Layout == o.Layout
		}) {
			srcs = append(srcs, o)
		}
	}
	return srcs
}

// Digest computes the composefs digest (hex) of the image ref names without
// a store: every layer is read and checked, file contents are only hashed.
func Digest(ref Ref, opts Options) (string, *Image, error) {
	if err := opts.check(); err != nil {
		return "", nil, err
	}
	l, img, err := openImage(ref)
	if err != nil {
		return "", nil, err
	}
	defer l.Close()
	r := newRun(l, img, opts)
	if err := r.applyLayers(nil, func() (objectSink, error) { return newHashSink(opts.hash()) }); err != nil {
		return "", nil, err
	}
	t, err := r.tree()
	if err != nil {
		return "", nil, err
	}
	h, err := newHashSink(opts.hash())
	if err != nil {
		return "", nil, err
	}
	if err := opts.writeImage(t)(h.h); err != nil {
		return "", nil, fmt.Errorf("%s: %w", ref, err)
	}
	return hex.EncodeToString(h.h.Sum()), img, nil
}
