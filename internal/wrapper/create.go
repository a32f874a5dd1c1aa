package wrapper

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/hostcheck"
	"github.com/cfs-runtime/cfs-runtime/internal/imageref"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

var (
	// ErrDigestMismatch: the bundle's rootfs, or the store's image, is not
	// what was signed (the same error as hook mode's).
	ErrDigestMismatch = attest.ErrDigestMismatch
	// ErrNoImage: the signed image is neither in the store nor buildable.
	ErrNoImage = errors.New("composefs image not available")
	// ErrEnforcement: the host cannot enforce the policy's level.
	ErrEnforcement = hostcheck.ErrCannotEnforce
)

// fixPaths names the files a refusal's fix is made in.
func fixPaths(cfg config.Config) hostcheck.Paths {
	p := hostcheck.Paths{Config: cfg.Path, Policy: cfg.Policy}
	if p.Config == "" {
		p.Config = config.PathFromEnv("")
	}
	return p
}

// prepareCreate runs before create and run hand off: it applies the trust
// policy to the bundle's annotations and, for a signed digest, mounts the
// verified composefs image and points root.path at it. It returns an undo
// function for a failed hand-off (nil when nothing was mounted).
func prepareCreate(env *runtimeEnv) (undo func(), err error) {
	id := env.start.ID
	// Every create leaves one line in the audit trail: its final outcome,
	// so that a container the policy allowed but whose image then failed
	// its check is recorded as refused, with the reason.
	var (
		ref     string
		policy  *attest.Policy
		verdict attest.Verdict
	)
	defer func() { recordDecision(env.cfg, env.log, id, ref, policy, verdict, err) }()
	var cwd string
	if env.start.NeedsCwd() {
		if cwd, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
	}
	bundleDir, configPath := env.start.Paths(cwd)
	b, unlockBundle, err := bundle.OpenForStart(bundleDir, configPath, env.cfg.StateDir, id, bundlejson.JSON)
	if err != nil {
		return nil, err
	}
	defer unlockBundle()
	// The image reference comes from the engine's annotations for now
	// (imageref.FromAnnotations); a signer with scopes refuses when it is
	// unknown.
	ref, refErr := imageref.FromAnnotations(b.Annotations())
	if policy, err = attest.LoadPolicy(env.cfg.Policy, attest.DeferParsing(), attest.WithRevocationIndex(env.cfg.StateDir)); err != nil {
		return nil, err
	}
	ann, err := verifiedAnnotations(env, b, id)
	if err != nil {
		return nil, err
	}
	if verdict, err = attest.Verify(ann, policy, attest.WithReference(ref, refErr)); err != nil {
		return nil, err
	}
	if verdict.Unsigned {
		env.log.Warn("starting unverified container", "id", id, "bundle", b.Dir, "verdict", verdict) // a Stringer: formatted only if logged
		return nil, nil
	}
	if !oci.ValidID(id) {
		return nil, fmt.Errorf("invalid container id %q", id)
	}
	d := *verdict.Digest
	if err := store.Supports(d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoImage, err)
	}
	env.log.Info("verified", "id", id, "verdict", verdict) // a Stringer: formatted only if logged

	st, err := env.openStore()
	if err != nil {
		return nil, err
	}
	// Until the mount state below records the digest, nothing else marks
	// the image as in use: hold the store so that gc waits.
	release, err := st.Hold()
	if err != nil {
		return nil, err
	}
	defer release()
	return startVerified(env, st, b, verdict.Enforcement, d, id)
}

// startVerified is the verify-then-mount decision for a signed digest: it
// makes sure the store has the image (importing the bundle's root
// filesystem, which must then have that digest), checks the image at the
// enforcement level through one open file, mounts exactly what was checked
// and points the bundle's root.path at the mount. A failure after the
// mount unmounts it. It returns the undo for a failed hand-off.
func startVerified(env *runtimeEnv, st imageStore, b *bundle.Bundle, level attest.Enforcement, d composefs.ImageDigest, id string) (undo func(), err error) {
	if level != attest.EnforceUserspace && !st.HasImage(d) {
		// Say what the host lacks before importing anything. (With the
		// image in the store, measuring it below is proof enough.)
		if err := st.ProbeVerity(); err != nil {
			return nil, &hostcheck.Problem{Level: level, Store: st.Dir(), Reason: err, Fix: hostcheck.VerityFix(err, fixPaths(env.cfg))}
		}
	}
	if err := ensureImage(env, st, b, d); err != nil {
		return nil, err
	}
	// The image is opened once: checked through this descriptor and
	// mounted from it (or from the bytes hashed), never by name again.
	imgFile, err := st.OpenImage(d)
	if err != nil {
		return nil, err
	}
	defer imgFile.Close()
	img, vmode, err := enforce(env, st, d, imgFile, level)
	if err != nil {
		return nil, err
	}
	if testHookAfterCheck != nil {
		testHookAfterCheck(d)
	}
	opts := mount.Options{
		Image:      img,
		ObjectsDir: st.ObjectsDir(),
		StateDir:   filepath.Join(env.cfg.StateDir, id),
		// Always with an upper layer, also for root.readonly: runc creates
		// the mount points of the bundle's mounts (/etc/hostname,
		// /etc/resolv.conf, /dev/termination-log, volumes) in the root and
		// only then remounts it read-only; the signed image need not
		// contain them (a CRI sandbox's root is always read-only).
		ReadOnly: false,
		Verity:   vmode,
		Digest:   d.Hex(),
		Logger:   env.log,
	}
	m, err := env.mount(opts)
	if errors.Is(err, mount.ErrOverlayNoVerity) && level == attest.EnforceMeasure {
		// measure: without overlayfs verity=, every object is measured
		// by ioctl before mounting instead.
		if _, err := st.CheckImageFile(imgFile, d, store.CheckMeasure); err != nil {
			return nil, fmt.Errorf("composefs digest %s: %w", d.Hex(), err)
		}
		opts.Verity = mount.VerityOff
		m, err = env.mount(opts)
	}
	if err != nil {
		if errors.Is(err, mount.ErrOverlayNoVerity) {
			return nil, &hostcheck.Problem{Level: level, Store: st.Dir(), Reason: err, Fix: hostcheck.OverlayVerityFix(fixPaths(env.cfg))}
		}
		return nil, err
	}
	undo = func() {
		if err := m.Unmount(); err != nil {
			env.log.Error("unmount after failed create", "id", id, "err", err)
		}
	}
	if err := env.patch(b, m.Root(), id); err != nil {
		undo()
		return nil, err
	}
	env.log.Info("mounted", "id", id, "root", m.Root(), "verity", opts.Verity.String())
	return undo, nil
}

// ensureImage makes sure the store has the image: if not, it imports the
// sealed image the engine names from the engine's store, or else the
// bundle's root filesystem, which is only a source of bytes, and requires
// that what it built is what was signed before anything of it enters the
// store.
func ensureImage(env *runtimeEnv, st imageStore, b *bundle.Bundle, d composefs.ImageDigest) error {
	if st.HasImage(d) {
		return nil
	}
	// Concurrent creates of one new image import it once: the first holds
	// this lock while importing, the others then find the image.
	unlock, err := st.LockImport(d)
	if err != nil {
		return err
	}
	defer unlock()
	if st.HasImage(d) {
		return nil
	}
	if env.sealedImage != nil {
		// The bytes come from the engine's store, never from the
		// prepared root filesystem.
		return importFromEngine(env, st, d, env.sealedImage)
	}
	if env.podmanImage != nil {
		err := importFromEngine(env, st, d, env.podmanImage)
		if err == nil {
			return nil
		}
		env.log.Warn("importing the podman container's image from containers-storage", "err", err)
	}
	rootfs := b.RootPath()
	if fi, err := os.Stat(rootfs); rootfs == "" || err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: composefs digest %s is not in the store %s and the bundle has no root filesystem to build it from", ErrNoImage, d.Hex(), st.Dir())
	}
	// Staged: a tree that is not the signed one (it can name any
	// directory, and is read as root) leaves nothing in the store.
	got, err := st.ImportTreeExpecting(rootfs, d)
	if errors.Is(err, store.ErrUnexpectedDigest) {
		return fmt.Errorf("%w: bundle root filesystem %s has composefs digest %s, but the signed digest is %s, which is not in the store %s: import the signed tree (cfs-runtime import --store %s TREE) or the sealed image (cfs-runtime import oci:DIR) first", ErrDigestMismatch, rootfs, got.Hex(), d.Hex(), st.Dir(), st.Dir())
	}
	if err != nil {
		return fmt.Errorf("importing bundle root filesystem %s: %w", rootfs, err)
	}
	env.log.Info("imported bundle root filesystem", "rootfs", rootfs, "digest", d.Hex())
	return nil
}

// testHookAfterCheck runs between the check and the mount (tests: a store
// writer swapping the image right then).
var testHookAfterCheck func(d composefs.ImageDigest)

// enforce checks the image open as f at the policy's enforcement level and
// returns what to mount and how the overlay must be mounted: exactly what
// was checked, whatever happens to the store's file afterwards.
func enforce(env *runtimeEnv, st imageStore, d composefs.ImageDigest, f *os.File, level attest.Enforcement) (mount.Image, mount.VerityMode, error) {
	name := f.Name() // the store's images/<digest>
	switch level {
	case attest.EnforceUserspace:
		env.log.Warn("enforcement level userspace: hashing the image and its objects in userspace; the kernel does not check later reads", "digest", d.Hex())
		data, err := st.CheckImageFile(f, d, store.CheckHash)
		if err != nil {
			return mount.Image{}, mount.VerityOff, fmt.Errorf("composefs digest %s: %w", d.Hex(), err)
		}
		// Without fs-verity the file can be rewritten in place after
		// the check: mount a private copy of the bytes that were hashed.
		return mount.ImageBytes(name, data), mount.VerityOff, nil
	case attest.EnforceMeasure, attest.EnforceRequire:
		// The kernel computes the image's digest; the overlay is then
		// mounted with verity=require (measure falls back to measuring
		// every object when overlayfs lacks verity=, see prepareCreate).
		// fs-verity keeps the file's content from changing: mounting
		// this file mounts what was measured.
		if err := measureImage(env.measure, f, name, d); err != nil {
			if errors.Is(err, verity.ErrNotSupported) {
				// An image imported before: the probe in startVerified
				// did not run, and this is where the host's lack shows.
				return mount.Image{}, mount.VerityOff, &hostcheck.Problem{Level: level, Store: st.Dir(), Reason: err, Fix: hostcheck.VerityFix(err, fixPaths(env.cfg))}
			}
			return mount.Image{}, mount.VerityOff, err
		}
		return mount.ImageFile(f), mount.VerityRequire, nil
	}
	return mount.Image{}, mount.VerityOff, fmt.Errorf("%w: unknown enforcement level %q", ErrEnforcement, level)
}

// measureImage has the kernel compute (measure) the fs-verity digest of the
// image open as f (named name in messages).
func measureImage(measure measureFunc, f *os.File, name string, d composefs.ImageDigest) error {
	got, err := measure(f)
	if err != nil {
		return fmt.Errorf("composefs digest %s: image %s: %w", d.Hex(), name, err)
	}
	if !bytes.Equal(got, d.Value) {
		return fmt.Errorf("%w: image %s measures %x, but the signed digest is %s", ErrDigestMismatch, name, got, d.Hex())
	}
	return nil
}

// patchBundle points root.path at the mount and adds a poststop hook that
// unmounts it when the runtime destroys the container.
func patchBundle(cfg config.Config, b *bundle.Bundle, root, id string) error {
	if err := b.SetRootPath(root); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding cfs-runtime's own path: %w", err)
	}
	args := []string{"cfs-runtime"}
	if cfg.Path != "" {
		args = append(args, "--cfs-config", cfg.Path)
	}
	args = append(args, "cleanup", id)
	isOurs := func(h bundle.Hook) bool {
		return h.Path == self && len(h.Args) > 1 && slices.Contains(h.Args, "cleanup")
	}
	if err := b.AppendHook("poststop", bundle.Hook{Path: self, Args: args}, isOurs); err != nil {
		return err
	}
	return b.Save()
}
