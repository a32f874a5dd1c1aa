package wrapper

import (
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/runtimestate"
	"github.com/cfs-runtime/cfs-runtime/mount"
)

// beforeDelete unmounts the container's composefs root before `delete
// --force` is handed off (what podman, conmon and containerd's shim send):
// the runtime is about to kill and destroy the container whatever its
// state. A plain `delete` of a container the runtime knows is left to the
// poststop hook that create injected, which the runtime runs only when it
// really destroys the container (runc refuses to delete a running one
// without --force); one it does not know (its create failed before the
// hook could be registered) is unmounted here. Failures are logged, never
// fatal: the poststop hook and `cfs-runtime cleanup` try again.
func beforeDelete(env *runtimeEnv) {
	id, force, dir := handoff.DeleteTarget(env.inv, env.cfg.StateDir)
	if dir == "" {
		return
	}
	if !force && runtimestate.Knows(env.runtime.Path(), env.inv, id) {
		// The runtime destroys it (and runs the poststop hook) or refuses.
		return
	}
	if err := mount.Unmount(dir, mount.WithLogger(env.log)); err != nil {
		env.log.Error("unmount on delete", "id", id, "err", err)
		return
	}
	env.log.Info("unmounted on delete", "id", id)
}
