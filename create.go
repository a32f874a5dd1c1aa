package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/bundle"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validID is runc's rule for container ids; the id names a state directory,
// so nothing else may reach the file system.
var validID = regexp.MustCompile(`^[\w+\-.]+$`)

var (
	// ErrDigestMismatch: the bundle's rootfs is not what was signed.
	ErrDigestMismatch = errors.New("composefs digest mismatch")
	// ErrNoImage: the signed image is neither in the store nor buildable.
	ErrNoImage = errors.New("composefs image not available")
	// ErrEnforcement: the host cannot enforce the policy's level.
	ErrEnforcement = errors.New("cannot enforce fs-verity")
)

// prepareCreate runs before create and run hand off: it applies the trust
// policy to the bundle's annotations and, for a signed digest, mounts the
// verified composefs image and points root.path at it. It returns an undo
// function for a failed hand-off (nil when nothing was mounted).
func prepareCreate(env *runtimeEnv) (undo func(), err error) {
	inv := env.inv
	if len(inv.Positional) != 1 {
		// Let the runtime print its own usage error for a wrong number of
		// arguments, exactly as it would without cfs-runtime.
		return nil, nil
	}
	id := inv.ContainerID()
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	b, err := bundle.Load(inv.Bundle(cwd), inv.ConfigName())
	if err != nil {
		return nil, err
	}
	policy, err := attest.LoadPolicy(env.cfg.Policy)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(env.cfg.Policy); serr != nil {
			return nil, fmt.Errorf("no trust policy: %s does not exist; every container is refused until it does (see policy.toml.example, check it with `cfs-runtime policy check`)", env.cfg.Policy)
		}
	}
	if err != nil {
		return nil, err
	}
	verdict, err := attest.Verify(b.Annotations(), policy)
	if err != nil {
		return nil, err
	}
	if verdict.Unsigned {
		env.log.Warn("starting unverified container", "id", id, "bundle", b.Dir, "verdict", verdict.String())
		return nil, nil
	}
	if !validID.MatchString(id) {
		return nil, fmt.Errorf("invalid container id %q", id)
	}
	d := verdict.Digest
	if d.Algorithm != verity.SHA256 || d.BlockSize != verity.DefaultBlockSize {
		return nil, fmt.Errorf("%w: composefs digest %s: the store holds fsverity-sha256-12 images only", ErrNoImage, d)
	}
	digest := d.Hex()
	env.log.Info("verified", "id", id, "verdict", verdict.String())

	store, err := composefs.OpenStore(env.cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	if err := ensureImage(env, store, b, digest); err != nil {
		return nil, err
	}
	img, err := store.ImagePath(digest)
	if err != nil {
		return nil, err
	}
	vmode, err := enforce(env, store, digest, img, verdict.Enforcement)
	if err != nil {
		return nil, err
	}
	m, err := mount.Mount(mount.Options{
		Image:      img,
		ObjectsDir: store.ObjectsDir(),
		StateDir:   filepath.Join(env.cfg.StateDir, id),
		ReadOnly:   b.ReadOnly(),
		Verity:     vmode,
		Digest:     digest,
		Logger:     env.log,
	})
	if err != nil {
		return nil, err
	}
	undo = func() {
		if err := m.Unmount(); err != nil {
			env.log.Error("unmount after failed create", "id", id, "err", err)
		}
	}
	if err := patchBundle(env, b, m.Root(), id); err != nil {
		undo()
		return nil, err
	}
	env.log.Info("mounted", "id", id, "root", m.Root(), "verity", vmode.String())
	return undo, nil
}

// ensureImage makes sure the store has the image: if not, it imports the
// bundle's root filesystem, which is only a source of bytes, and requires
// that what it built is what was signed.
func ensureImage(env *runtimeEnv, store *composefs.Store, b *bundle.Bundle, digest string) error {
	if store.HasImage(digest) {
		return nil
	}
	rootfs := b.RootPath()
	if fi, err := os.Stat(rootfs); rootfs == "" || err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: composefs digest %s is not in the store %s and the bundle has no root filesystem to build it from", ErrNoImage, digest, store.Dir())
	}
	got, err := store.ImportTree(rootfs)
	if err != nil {
		return fmt.Errorf("importing bundle root filesystem %s: %w", rootfs, err)
	}
	if got != digest {
		return fmt.Errorf("%w: bundle root filesystem %s has composefs digest %s, but the signed digest is %s", ErrDigestMismatch, rootfs, got, digest)
	}
	env.log.Info("imported bundle root filesystem", "rootfs", rootfs, "digest", digest)
	return nil
}

// enforce checks the image at the policy's enforcement level and returns
// how the overlay must be mounted.
func enforce(env *runtimeEnv, store *composefs.Store, digest, img string, level attest.Enforcement) (mount.VerityMode, error) {
	switch level {
	case attest.EnforceUserspace:
		env.log.Warn("enforcement level userspace: hashing the image and its objects in userspace; the kernel does not check later reads", "digest", digest)
		if err := store.CheckImage(digest, composefs.CheckHash); err != nil {
			return mount.VerityOff, fmt.Errorf("composefs digest %s: %w", digest, err)
		}
		return mount.VerityOff, nil
	case attest.EnforceMeasure, attest.EnforceRequire:
		if err := verity.Probe(store.ObjectsDir()); err != nil {
			return mount.VerityOff, fmt.Errorf("%w (enforcement %s) in store %s: %w", ErrEnforcement, level, store.Dir(), err)
		}
		if err := measureImage(img, digest); err != nil {
			return mount.VerityOff, err
		}
		if level == attest.EnforceRequire {
			if f := mount.Probe(store.Dir()); !f.OverlayVerity.Supported {
				return mount.VerityOff, fmt.Errorf("%w (enforcement require): %w", ErrEnforcement, mount.ErrOverlayNoVerity)
			}
			return mount.VerityRequire, nil
		}
		if f := mount.Probe(store.Dir()); f.OverlayVerity.Supported {
			return mount.VerityRequire, nil
		}
		if err := store.CheckImage(digest, composefs.CheckMeasure); err != nil {
			return mount.VerityOff, fmt.Errorf("composefs digest %s: %w", digest, err)
		}
		return mount.VerityOff, nil
	}
	return mount.VerityOff, fmt.Errorf("%w: unknown enforcement level %q", ErrEnforcement, level)
}

// measureImage has the kernel compute the image's fs-verity digest.
func measureImage(img, digest string) error {
	_, got, err := verity.Measure(img)
	if err != nil {
		return fmt.Errorf("composefs digest %s: image %s: %w", digest, img, err)
	}
	if fmt.Sprintf("%x", got) != digest {
		return fmt.Errorf("%w: image %s measures %x, but the signed digest is %s", ErrDigestMismatch, img, got, digest)
	}
	return nil
}

// patchBundle points root.path at the mount and adds a poststop hook that
// unmounts it when the runtime destroys the container.
func patchBundle(env *runtimeEnv, b *bundle.Bundle, root, id string) error {
	if err := b.SetRootPath(root); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding cfs-runtime's own path: %w", err)
	}
	args := []string{"cfs-runtime"}
	if env.cfg.Path != "" {
		args = append(args, "--cfs-config", env.cfg.Path)
	}
	args = append(args, "cleanup", id)
	if err := b.AppendHook("poststop", specs.Hook{Path: self, Args: args}); err != nil {
		return err
	}
	return b.Save()
}
