package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/mount"
)

// beforeDelete unmounts the container's composefs root before `delete` is
// handed off, when the runtime is going to destroy the container: it is
// stopped or only created, --force was given, or the runtime no longer
// knows it. A running container keeps its mount (runc refuses to delete
// it without --force). Failures are logged, never fatal: the poststop hook
// and `cfs-runtime cleanup` try again.
func beforeDelete(env *runtimeEnv) {
	id, force := "", false
	for _, a := range env.inv.CommandArgs {
		switch {
		case a == "-f" || a == "--force" || a == "-force" || a == "--force=true":
			force = true
		case !strings.HasPrefix(a, "-") && id == "":
			id = a
		}
	}
	if id == "" || !validID.MatchString(id) {
		return
	}
	dir := filepath.Join(env.cfg.StateDir, id)
	if _, err := os.Stat(dir); err != nil {
		return
	}
	if !force {
		switch runtimeStatus(env, id) {
		case "running", "paused", "pausing":
			return
		}
	}
	if err := mount.Unmount(dir, mount.WithLogger(env.log)); err != nil {
		env.log.Error("unmount on delete", "id", id, "err", err)
		return
	}
	env.log.Info("unmounted on delete", "id", id)
}

// runtimeStatus asks the runtime for a container's status ("" if it does
// not know the container).
func runtimeStatus(env *runtimeEnv, id string) string {
	args := append(append([]string{}, env.inv.GlobalArgs()...), "state", id)
	out, err := exec.Command(env.runtime.Path(), args...).Output()
	if err != nil {
		return ""
	}
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &st) != nil {
		return ""
	}
	return st.Status
}
