package wrapper

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/config/tomlconfig"
	"github.com/cfs-runtime/cfs-runtime/internal/handoff"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/internal/runtimestate"
	"github.com/cfs-runtime/cfs-runtime/mount"
)

// The cleanup command: the poststop hook that create injects and the exit
// watcher's second half. The runtime binary parses its one flag itself
// (own.go); cfs-runtime-tools wraps it with its help text.
const (
	AfterExitFlag  = "after-exit"
	AfterExitUsage = "wait until the process behind this pidfd exits, then clean up ID only if the runtime does not know it"
)

// Cleanup is `cfs-runtime cleanup [--after-exit PIDFD] [ID]`; afterExit
// is nil when the flag was not given. Removed ids are listed on out.
func Cleanup(inv *oci.Invocation, args []string, afterExit *int, out io.Writer) error {
	// Salvaged, never refused: cleanup only ever removes what create made,
	// and a broken configuration must not leave mounts behind.
	cfg, cfgErr := tomlconfig.Salvage(config.PathFromEnv(inv.Own["cfs-config"]))
	if cfgErr != nil {
		fmt.Fprintf(os.Stderr, "cfs-runtime: warning: %v (cleaning up with what could be read of it)\n", cfgErr)
	}
	log, closer, _ := logging.Open(cfg.LogFile, cfg.LogLevel)
	defer closer.Close()
	if len(args) > 1 {
		return handoff.ExitError("cleanup: at most one container id", 2)
	}
	if len(args) == 1 {
		id := args[0]
		if !oci.ValidID(id) {
			return fmt.Errorf("cleanup: invalid container id %q", id)
		}
		if afterExit != nil {
			if err := waitExit(*afterExit); err != nil {
				return fmt.Errorf("cleanup: waiting for the runtime: %w", err)
			}
			path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
			if err != nil {
				return err
			}
			if runtimestate.Knows(path, inv, id) {
				return nil // the runtime has it; delete and the poststop hook clean up
			}
			log.Info("runtime rejected the container after mount: unmounting", "id", id)
		}
		return mount.Unmount(filepath.Join(cfg.StateDir, id), mount.WithLogger(log))
	}
	path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
	if err != nil {
		return err
	}
	cmdArgs := append(append([]string{}, inv.GlobalArgs()...), "list", "-q")
	list, err := exec.Command(path, cmdArgs...).Output()
	if err != nil {
		return fmt.Errorf("cleanup: asking %s for its containers: %w", path, err)
	}
	known := map[string]bool{}
	for _, id := range strings.Fields(string(list)) {
		known[id] = true
	}
	// A container being created right now is mounted before the runtime
	// lists it: keep state younger than a minute.
	keep := func(id string) bool {
		if known[id] {
			return true
		}
		st, err := mount.ReadState(filepath.Join(cfg.StateDir, id))
		return err == nil && time.Since(st.Created) < time.Minute
	}
	removed, err := mount.Cleanup(cfg.StateDir, keep, mount.WithLogger(log))
	for _, id := range removed {
		fmt.Fprintf(out, "removed %s\n", id)
	}
	return err
}
