package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/composefs"
)

// ErrKeptUnreadable is returned by GC when an image it must keep cannot be
// read: without its list of objects, nothing can safely be removed.
var ErrKeptUnreadable = errors.New("an image to keep cannot be read")

// Hold takes the store lock shared until release is called; GC waits for
// it (imports, fsck and repair hold it too). Whoever uses an image that no
// ref keeps (create: from looking up or importing the image until its
// mount state records the digest) holds the lock meanwhile, so that GC
// never removes the image in between.
func (s *Store) Hold() (release func(), err error) {
	f, err := s.lockStore(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// GCReport says what GC removed or, in a dry run, would remove.
type GCReport struct {
	Kept       []string `json:"kept"`       // images kept (by a ref or as in use)
	Images     []string `json:"images"`     // images removed
	Objects    int      `json:"objects"`    // objects removed (image objects included)
	Bytes      int64    `json:"bytes"`      // their size
	Provenance int      `json:"provenance"` // provenance records removed
	Layers     []string `json:"layers"`     // layer records removed (names under layers/)
	DryRun     bool     `json:"dryRun"`
}

// GCOption configures GC.
type GCOption func(*gcConfig)

type gcConfig struct {
	dryRun bool
	inUse  func() ([]string, error)
}

// WithGCDryRun only reports what GC would remove.
func WithGCDryRun() GCOption { return func(c *gcConfig) { c.dryRun = true } }

// WithInUse gives GC the digests of images in use (by running containers)
// besides the refs. It is called once the store lock is held, so that
// nothing starts to use an image between the call and the removal.
func WithInUse(fn func() ([]string, error)) GCOption {
	return func(c *gcConfig) { c.inUse = fn }
}

// GC removes every image that no ref names and that is not in use, every
// object no kept image uses, the provenance records of images that are
// gone, and the layer records (layers/HEX...) that no kept image's
// provenance names as a source (SourceOCILayer "sha256:HEX"). Objects a
// kept image's provenance lists are kept too (an OCI layer's files that an
// upper layer hides). It holds the store lock exclusively: imports, fsck
// and repair wait for it, and it waits for them.
//
// Images go first (their images/ links, made durable), then their objects:
// a crash in between leaves unreferenced objects for the next GC, never an
// image without its objects.
func (s *Store) GC(opts ...GCOption) (GCReport, error) {
	var c gcConfig
	for _, o := range opts {
		o(&c)
	}
	rep := GCReport{Kept: []string{}, Images: []string{}, Layers: []string{}, DryRun: c.dryRun}
	lock, err := s.lockStore(unix.LOCK_EX)
	if err != nil {
		return rep, err
	}
	defer lock.Close()

	keep := map[string]bool{}
	refs, err := s.Refs()
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, d := range refs {
		keep[d] = true
	}
	if c.inUse != nil {
		used, err := c.inUse()
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		for _, d := range used {
			keep[d] = true
		}
	}
	images, err := s.ImageDigests()
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	reachable := map[[composefs.DigestSize]byte]bool{}
	layers := map[string]bool{} // hex of kept layers
	for _, d := range images {
		if !keep[d] {
			rep.Images = append(rep.Images, d)
			continue
		}
		rep.Kept = append(rep.Kept, d)
		if err := s.markImage(d, reachable, layers); err != nil {
			return rep, fmt.Errorf("gc: image %s: %w: %w (repair it with cfs-runtime fsck --repair, or remove its refs)", d, ErrKeptUnreadable, err)
		}
	}
	if !c.dryRun {
		for _, d := range rep.Images {
			if err := os.Remove(filepath.Join(s.dir, "images", d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rep, fmt.Errorf("gc: %w", err)
			}
		}
		if len(rep.Images) > 0 {
			if err := storeSyncDir(filepath.Join(s.dir, "images")); err != nil {
				return rep, fmt.Errorf("gc: %w", err)
			}
		}
	}
	if err := s.sweepObjects(reachable, &rep); err != nil {
		return rep, err
	}
	kept := func(d string) bool { return slices.Contains(rep.Kept, d) }
	if err := s.sweepProvenance(kept, &rep); err != nil {
		return rep, err
	}
	if err := s.sweepDir("seals", rep.DryRun, func(name string) bool {
		d, ok := strings.CutSuffix(name, ".json")
		return ok && kept(d)
	}, func(string) {}); err != nil {
		return rep, err
	}
	if err := s.sweepLayers(layers, &rep); err != nil {
		return rep, err
	}
	if !c.dryRun {
		if err := s.cleanTmp(); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	return rep, nil
}

// markImage marks the image object of d, every object it uses and every
// object its provenance lists as reachable, and notes the OCI layers its
// provenance names.
func (s *Store) markImage(d string, reachable map[[composefs.DigestSize]byte]bool, layers map[string]bool) error {
	b, _ := hex.DecodeString(d)
	reachable[[composefs.DigestSize]byte(b)] = true
	img, err := composefs.ReadImageFile(filepath.Join(s.dir, "objects", composefs.ObjectPath(b)))
	if err != nil {
		return err
	}
	err = img.Walk(func(e *composefs.Entry) error {
		if e.Inode.Digest != nil {
			reachable[[composefs.DigestSize]byte(e.Inode.Digest)] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	sources, err := s.Provenance(d)
	if errors.Is(err, ErrNoProvenance) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, src := range sources {
		if h, ok := strings.CutPrefix(src.Ref, "sha256:"); ok && src.Kind == SourceOCILayer {
			layers[h] = true
		}
		for _, o := range src.Objects {
			if ob, err := parseDigest(o); err == nil {
				reachable[[composefs.DigestSize]byte(ob)] = true
			}
		}
	}
	return nil
}

// sweepObjects removes everything under objects/XX/ that is not a
// reachable object: unused objects and leftovers (an interrupted repair's
// temporary names).
func (s *Store) sweepObjects(reachable map[[composefs.DigestSize]byte]bool, rep *GCReport) error {
	objs := filepath.Join(s.dir, "objects")
	for i := range 256 {
		fan := hex.EncodeToString([]byte{byte(i)})
		dir := filepath.Join(objs, fan)
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, e := range ents {
			if d, err := hex.DecodeString(fan + e.Name()); err == nil && len(d) == composefs.DigestSize && reachable[[composefs.DigestSize]byte(d)] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			rep.Objects++
			rep.Bytes += fi.Size()
			if rep.DryRun {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
	}
	return nil
}

// sweepProvenance removes the provenance records of images not kept.
func (s *Store) sweepProvenance(kept func(string) bool, rep *GCReport) error {
	return s.sweepDir("provenance", rep.DryRun, func(name string) bool {
		d, ok := strings.CutSuffix(name, ".json")
		return ok && kept(d)
	}, func(string) { rep.Provenance++ })
}

// sweepLayers removes the layer records under layers/ whose name does not
// start with the hex digest of a layer a kept image's provenance names.
func (s *Store) sweepLayers(layers map[string]bool, rep *GCReport) error {
	return s.sweepDir("layers", rep.DryRun, func(name string) bool {
		return len(name) >= 2*composefs.DigestSize && layers[name[:2*composefs.DigestSize]]
	}, func(name string) { rep.Layers = append(rep.Layers, name) })
}

// sweepDir removes (unless dryRun) every entry of the store directory sub
// that keep refuses, calling removed for each.
func (s *Store) sweepDir(sub string, dryRun bool, keep func(string) bool, removed func(string)) error {
	dir := filepath.Join(s.dir, sub)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		if keep(e.Name()) {
			continue
		}
		removed(e.Name())
		if dryRun {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	return nil
}

// ImageInfo describes one image of the store.
type ImageInfo struct {
	Digest string `json:"digest"`
	// Size is the image object's size plus the sizes (as the image
	// records them) of the distinct objects it uses; Objects counts those.
	Size    int64    `json:"size"`
	Objects int      `json:"objects"`
	Refs    []string `json:"refs"`
	// Seal is the seal recorded when the image was imported from a
	// sealed manifest (nil: none).
	Seal *Seal `json:"seal,omitempty"`
	// Error says why the image could not be read (then Size is the image
	// object's size at most and Objects 0).
	Error string `json:"error,omitempty"`
}

// Images describes every image in the store, in digest order.
func (s *Store) Images() ([]ImageInfo, error) {
	ds, err := s.ImageDigests()
	if err != nil {
		return nil, err
	}
	refs, err := s.Refs()
	if err != nil {
		return nil, err
	}
	byImage := map[string][]string{}
	for name, d := range refs {
		byImage[d] = append(byImage[d], name)
	}
	infos := make([]ImageInfo, 0, len(ds))
	for _, d := range ds {
		info := ImageInfo{Digest: d, Refs: byImage[d]}
		info.Seal, _ = s.Seal(d)
		if info.Refs == nil {
			info.Refs = []string{}
		}
		slices.Sort(info.Refs)
		b, _ := hex.DecodeString(d)
		img, err := composefs.ReadImageFile(filepath.Join(s.dir, "objects", composefs.ObjectPath(b)))
		if err == nil {
			info.Size = img.Size()
			seen := map[[composefs.DigestSize]byte]bool{}
			err = img.Walk(func(e *composefs.Entry) error {
				if e.Inode.Digest != nil && !seen[[composefs.DigestSize]byte(e.Inode.Digest)] {
					seen[[composefs.DigestSize]byte(e.Inode.Digest)] = true
					info.Objects++
					info.Size += int64(e.Inode.Size)
				}
				return nil
			})
		}
		if err != nil {
			info.Error = err.Error()
		}
		infos = append(infos, info)
	}
	return infos, nil
}
