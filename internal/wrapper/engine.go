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

	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
)

// ErrEngineImage: the engine names the container's image, and its
// manifest could not be read from the engine's store.
var ErrEngineImage = errors.New("cannot read the engine's image")

// engineTimeout bounds one run of the engine helper.
const engineTimeout = 30 * time.Second

// readManifestFunc reads the manifest of the image the engine names.
type readManifestFunc func(req *engineimage.Request) (*engineimage.Manifest, error)

// verifiedAnnotations returns the annotations create verifies: the
// bundle's, and when the engine names the container's image, that image's
// seal (engineimage.Seal: the container's annotations may only repeat it).
func verifiedAnnotations(env *runtimeEnv, b *bundle.Bundle, id string) (map[string]string, error) {
	ann := b.Annotations()
	img, ok := engineimage.FromAnnotations(ann)
	if !ok {
		return ann, nil
	}
	m, err := env.readManifest(&engineimage.Request{
		Image:               img,
		ContainerID:         id,
		ContainerdAddress:   env.cfg.ContainerdAddress,
		ContainerdNamespace: env.cfg.ContainerdNamespace,
		StorageRoot:         env.cfg.ContainersStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEngineImage, img, err)
	}
	out, sealed, err := engineimage.Seal(img, ann, m.Annotations)
	if err != nil {
		return nil, err
	}
	env.log.Info("engine image", "id", id, "image", img.String(), "manifest", m.Digest, "config", m.Config, "sealed", sealed)
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
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
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
