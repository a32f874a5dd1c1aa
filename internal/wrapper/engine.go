package wrapper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/internal/atomicfile"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/rawfile"
)

// ErrEngineImage: the engine names the container's image, and its
// manifest could not be read from the engine's store.
var ErrEngineImage = errors.New("cannot read the engine's image")

// engineTimeout bounds one run of the engine helper that reads a
// manifest, importTimeout one that imports an image's layers.
const (
	engineTimeout = 30 * time.Second
	importTimeout = 10 * time.Minute
)

// readManifestFunc reads the manifest of the image the engine names.
type readManifestFunc func(req *engineimage.Request) (*engineimage.Manifest, error)

// verifiedAnnotations returns the annotations create verifies: the
// bundle's, and when the engine names the container's image, that image's
// seal (sealedAnnotations: the container's annotations may only repeat it).
func verifiedAnnotations(env *runtimeEnv, b *bundle.Bundle, id string) (map[string]string, error) {
	ann := b.Annotations()
	img, ok := engineimage.FromAnnotations(ann)
	if !ok {
		if ann[engineimage.ContainerManager] == engineimage.PodmanManager {
			// podman names no image, but its record of the container
			// does: a source of bytes if the store lacks the image.
			env.podmanImage = &engineimage.Request{Image: engineimage.Image{Engine: engineimage.Podman},
				ContainerID: id, StorageRoot: env.cfg.ContainersStorage}
		}
		return ann, nil
	}
	req := &engineimage.Request{
		Image:               img,
		ContainerID:         id,
		ContainerdAddress:   env.cfg.ContainerdAddress,
		ContainerdNamespace: env.cfg.ContainerdNamespace,
		StorageRoot:         env.cfg.ContainersStorage,
	}
	// containerd: its records of the container and of the image state
	// the image's target (manifest or index) digest, the seal cache's key
	// (one short API call each, made here without the helper).
	var ctrd *ctrdapi.ContainerImage
	if img.Engine == engineimage.Containerd {
		var err error
		if ctrd, err = env.containerdImage(req); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrEngineImage, img, err)
		}
	}
	key := sealKeyOf(img, ctrd)
	m, cached := readSealCache(env.cfg.StoreDir, key)
	if !cached {
		var err error
		if m, err = env.readManifest(req); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrEngineImage, img, err)
		}
		// The entry is keyed by what the helper read (a tag may have
		// moved since the lookup above: the helper's answer counts).
		if k := sealKeyOfManifest(img, m); k.name != "" {
			if err := writeSealCache(env.cfg.StoreDir, k, m); err != nil {
				env.log.Warn("caching the image's seal", "image", img.String(), "err", err)
			}
		}
	}
	out, sealed, err := sealedAnnotations(img, ann, m.Annotations)
	if err != nil {
		return nil, err
	}
	if sealed {
		env.sealedImage = req
	}
	env.log.Info("engine image", "id", id, "image", img.String(), "manifest", m.Digest, "config", m.Config, "sealed", sealed, "cached", cached)
	return out, nil
}

// runEngineHelper runs cfs-runtime-engine ($CFS_RUNTIME_ENGINE, else the
// one next to this executable) on one request.
func runEngineHelper(req *engineimage.Request) (*engineimage.Manifest, error) {
	path := os.Getenv(engineimage.HelperEnv)
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding %s: %w", engineimage.HelperName, err)
		}
		path = filepath.Join(filepath.Dir(exe), engineimage.HelperName)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	limit := engineTimeout
	if req.Op == engineimage.OpImport {
		limit = importTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w (install %s next to cfs-runtime, or name it with $%s)", fserr.New("engine helper", path, err), engineimage.HelperName, engineimage.HelperEnv)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, errors.New(strings.ReplaceAll(msg, "\n", "; "))
		}
		return nil, fmt.Errorf("engine helper %s: %w", path, err)
	}
	var m engineimage.Manifest
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("engine helper %s: unreadable answer: %w", path, err)
	}
	return &m, nil
}

// importFromEngine imports the image of src (the sealed image the engine
// names, or a podman container's image) from the engine's store: the
// helper commits it only if it has the digest d. The caller holds the
// store's import lock of d.
func importFromEngine(env *runtimeEnv, st imageStore, d composefs.ImageDigest, src *engineimage.Request) error {
	req := *src
	req.Op, req.Store, req.Expect = engineimage.OpImport, st.Dir(), d.Hex()
	m, err := env.readManifest(&req)
	if err != nil {
		return fmt.Errorf("%w: composefs digest %s is not in the store %s, and importing %s from the engine's store failed: %w", ErrNoImage, d.Hex(), st.Dir(), req.Image, err)
	}
	for _, line := range m.Log {
		env.log.Info("engine import", "image", req.Image.String(), "step", line)
	}
	if !st.HasImage(d) {
		return fmt.Errorf("%w: composefs digest %s: the import of %s from the engine's store left no image in the store %s", ErrNoImage, d.Hex(), req.Image, st.Dir())
	}
	return nil
}

// The seal of an image is cached in the store so that a warm create runs
// no helper, keyed by a digest that fixes the image's bytes and seal:
// CRI-O's image id (ImageRef, the config's digest), which it passes;
// for containerd, which passes only the name (a later pull can move it to
// another image), the digest of the image record's target (the manifest,
// or the index that names it), read from containerd's records of the
// container and the image (ctrdapi), along with the image id that the
// CRI plugin resolved when it created the container. The signatures are
// verified at every create. (A cached seal whose key was revoked stays
// refused until the entry under <store>/engine-seals is removed.)
const maxSealCache = 1 << 20

// sealKey names a cache entry, <store>/engine-seals/<engine>-<hex>, and
// what the entry must state: its config (the image id) and, for
// containerd, its target.
type sealKey struct {
	name           string // "" when there is no key: no cache
	config, target string
}

// sealKeyOf is the key of a create's image: CRI-O's by the image id it
// passes, containerd's by its records (ctrd).
func sealKeyOf(img engineimage.Image, ctrd *ctrdapi.ContainerImage) sealKey {
	switch {
	case img.Engine == engineimage.CRIO:
		if id, ok := sha256Hex(img.Ref); ok {
			return sealKey{name: img.Engine + "-" + id, config: "sha256:" + id}
		}
	case img.Engine == engineimage.Containerd && ctrd != nil:
		if t, ok := sha256Hex(ctrd.Target.Digest); ok && strings.HasPrefix(ctrd.Target.Digest, "sha256:") {
			return sealKey{name: img.Engine + "-" + t, config: ctrd.ImageID, target: ctrd.Target.Digest}
		}
	}
	return sealKey{}
}

// sealKeyOfManifest is the key under which the helper's answer m for img
// is cached.
func sealKeyOfManifest(img engineimage.Image, m *engineimage.Manifest) sealKey {
	if img.Engine == engineimage.Containerd {
		return sealKeyOf(img, &ctrdapi.ContainerImage{ImageID: m.Config, Target: ctrdapi.Descriptor{Digest: m.Target}})
	}
	k := sealKeyOf(img, nil)
	if k.config != m.Config {
		return sealKey{}
	}
	return k
}

// sha256Hex returns the hex of a sha256 digest, with or without its
// algorithm.
func sha256Hex(d string) (string, bool) {
	h := strings.TrimPrefix(d, "sha256:")
	return h, len(h) == 64 && strings.Trim(h, "0123456789abcdef") == ""
}

// readSealCache returns the cached manifest summary of key, if any and if
// it states the key's config and target.
func readSealCache(storeDir string, key sealKey) (*engineimage.Manifest, bool) {
	if key.name == "" || storeDir == "" {
		return nil, false
	}
	data, err := rawfile.ReadRegular(filepath.Join(storeDir, "engine-seals", key.name), maxSealCache)
	if err != nil {
		return nil, false
	}
	var m engineimage.Manifest
	if json.Unmarshal(data, &m) != nil || m.Target != key.target || (key.config != "" && m.Config != key.config) {
		return nil, false
	}
	return &m, true
}

// writeSealCache keeps the manifest's digests and composefs annotations
// (the seal) under key.
func writeSealCache(storeDir string, key sealKey, m *engineimage.Manifest) error {
	if storeDir == "" {
		return nil
	}
	keep := engineimage.Manifest{Digest: m.Digest, Config: m.Config, Target: key.target, Annotations: map[string]string{}}
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, attest.DigestAnnotationPrefix) {
			keep.Annotations[k] = v
		}
	}
	data, err := json.Marshal(keep)
	if err != nil {
		return err
	}
	path := filepath.Join(storeDir, "engine-seals", key.name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// readContainerdImage reads the image of the container's record from
// containerd's API (ctrdapi: no helper).
func readContainerdImage(req *engineimage.Request) (*ctrdapi.ContainerImage, error) {
	c, err := ctrdapi.Dial(req.ContainerdAddress, req.ContainerdNamespace, engineTimeout)
	if err != nil {
		return nil, fmt.Errorf("containerd %s: container %s: %w", req.ContainerdAddress, req.ContainerID, ctrdapi.Describe(err))
	}
	defer c.Close()
	return ctrdapi.ImageOf(c, req.ContainerdAddress, req.ContainerID, req.Image.Name)
}

// sealedAnnotations returns the annotations to verify a container by: its own, with
// the composefs annotations of the image's manifest (imageAnn) in place of
// any it has. The container's annotations may only repeat the image's
// digest: another one is refused (ErrConflict), so that whoever can set a
// pod's annotations cannot run another signed image under this image's
// name. An image without a seal (sealed false) leaves the container's
// annotations as they are; a malformed seal is refused.
func sealedAnnotations(img engineimage.Image, containerAnn, imageAnn map[string]string) (ann map[string]string, sealed bool, err error) {
	seal, err := attest.ParseAnnotations(imageAnn)
	if err != nil {
		return nil, false, fmt.Errorf("%s: seal in its manifest: %w", img, err)
	}
	if seal.Digest == nil {
		return containerAnn, false, nil
	}
	own, err := attest.ParseAnnotations(containerAnn)
	if err != nil {
		return nil, false, err
	}
	if own.Digest != nil && (own.Key != seal.Key || own.Digest.Hex() != seal.Digest.Hex()) {
		return nil, false, fmt.Errorf("%w: the container's annotation %s names composefs digest %s, but %s is sealed with %s (%s): remove the annotation, or run the image it names", engineimage.ErrConflict, own.Key, own.Digest.Hex(), img, seal.Digest.Hex(), seal.Key)
	}
	out := make(map[string]string, len(containerAnn)+len(seal.Signatures)+1)
	for k, v := range containerAnn {
		if !isComposefsKey(k) {
			out[k] = v
		}
	}
	for k, v := range imageAnn {
		if isComposefsKey(k) {
			out[k] = v
		}
	}
	return out, true, nil
}

func isComposefsKey(k string) bool {
	return strings.HasPrefix(strings.ToLower(k), attest.DigestAnnotationPrefix)
}
