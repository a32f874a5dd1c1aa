package wrapper

import (
	"log/slog"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/config/tomlconfig"
	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/mount"
)

// runtimeEnv is what a runtime subcommand needs besides its argv.
type runtimeEnv struct {
	call *handoff.Call
	inv  *oci.Invocation
	// start is the container that create or run starts, read with the
	// runtime's own command-line rules.
	start   *oci.Start
	cfg     config.Config
	log     *slog.Logger
	runtime oci.Runtime

	// What create uses of the world (deps.go; withDefaults sets the real
	// ones, tests fakes).
	openStore func() (imageStore, error)
	mount     func(mount.Options) (mounted, error)
	measure   measureFunc
	patch     func(b *bundle.Bundle, root, id string) error
	// readManifest reads the manifest of the image the engine names
	// (engine.go: the cfs-runtime-engine helper).
	readManifest readManifestFunc
	// containerdImage reads the image of a containerd container's
	// record (engine.go: containerd's API, no helper).
	containerdImage func(req *engineimage.Request) (*ctrdapi.ContainerImage, error)
	// sealedImage is set by verifiedAnnotations when the engine names the
	// container's image and that image is sealed: create imports its
	// bytes from the engine's store.
	sealedImage *engineimage.Request
	// podmanImage is set for a podman container (podman names no image):
	// create imports the image from containers-storage when the store
	// lacks it, and falls back to the bundle's root filesystem.
	podmanImage *engineimage.Request
}

// runRuntime handles a runtime call that verifies or mounts: create and
// run prepare the root filesystem, delete unmounts it. It returns only
// when cfs-runtime itself fails; otherwise the process becomes the real
// runtime.
func runRuntime(inv *oci.Invocation) int {
	env, err := setupRuntime(inv)
	if err != nil {
		return handoff.Fail(inv, err)
	}
	if err := env.call.CheckConfig(); err != nil {
		return handoff.Fail(inv, err)
	}
	switch {
	case env.call.Line.Command == "restore":
		return handoff.RefuseRestore(inv)
	case env.start != nil && !env.start.Help:
		undo, err := prepareCreate(env)
		if err != nil {
			return handoff.Fail(inv, err)
		}
		if undo != nil {
			defer undo() // only reached when the exec itself fails
			watchHandOff(env)
		}
	case env.call.Line.Command == "delete":
		beforeDelete(env)
	}
	env.log.Debug("exec runtime", "runtime", env.runtime.Path(), "args", inv.Args)
	err = env.runtime.Exec(inv.Args)
	return handoff.Fail(inv, err)
}

// setupRuntime reads the call (handoff.Read), then opens the own log.
func setupRuntime(inv *oci.Invocation) (*runtimeEnv, error) {
	c, err := handoff.Read(inv, tomlconfig.TOML)
	if err != nil {
		return nil, err
	}
	log, _, lerr := logging.Open(c.Cfg.LogFile, c.Cfg.LogLevel)
	if lerr != nil {
		// Not fatal: the container matters more than our own log.
		log = logging.Discard()
	}
	return withDefaults(&runtimeEnv{call: c, inv: inv, start: c.Line.Start, cfg: c.Cfg, log: log, runtime: c.Runtime}), nil
}
