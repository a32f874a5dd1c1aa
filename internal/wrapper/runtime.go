package wrapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/mount"
)

// runtimeEnv is what a runtime subcommand needs besides its argv.
type runtimeEnv struct {
	inv *oci.Invocation
	// start is the container that create or run starts, read with the
	// runtime's own command-line rules.
	start *oci.Start
	cfg   config.Config
	// cfgErr: the configuration file is broken and cfg is what Salvage
	// made of it.
	cfgErr  error
	log     *slog.Logger
	runtime oci.Runtime

	// What create uses of the world (deps.go; withDefaults sets the real
	// ones, tests fakes).
	openStore func() (imageStore, error)
	mount     func(mount.Options) (mounted, error)
	measure   measureFunc
	patch     func(b *bundle.Bundle, root, id string) error
}

// errRestore: runc and crun restore a checkpoint from the bundle's
// config.json and an image of the processes' memory, which no signature
// covers.
var errRestore = errors.New("restore: cfs-runtime does not restore checkpoints: the checkpoint image is not a verified root filesystem; create the container anew")

// runRuntime handles an OCI runtime invocation. It returns only when
// cfs-runtime itself fails or for --help/--version; otherwise the process
// becomes the real runtime.
func runRuntime(inv *oci.Invocation) int {
	env, err := setupRuntime(inv)
	if err != nil {
		return fail(inv, err)
	}
	// The runtime's own reading of argv decides what starts: a line it
	// would read differently from cfs-runtime, or one cfs-runtime cannot
	// read with certainty, is refused, never handed over.
	line, err := oci.ParseLine(oci.DialectOf(env.runtime.Path()), inv.Args)
	if err != nil {
		return fail(inv, err)
	}
	env.start = line.Start
	if env.cfgErr != nil {
		// A broken configuration refuses every container start, but must
		// not strand the ones running: everything else reaches the runtime.
		if line.Command == "restore" || (line.Start != nil && !line.Start.Help) {
			return fail(inv, env.cfgErr)
		}
		fmt.Fprintf(os.Stderr, "cfs-runtime: warning: %v (handing %q to %s anyway; create and run are refused until it is fixed)\n", env.cfgErr, line.Command, env.runtime.Path())
	}
	switch {
	case inv.WantsVersion():
		fmt.Printf("cfs-runtime version %s\n", Version)
		return RunChild(env.runtime.Path(), inv.Args)
	case line.Command == "restore":
		return fail(inv, errRestore)
	case line.Start != nil && !line.Start.Help:
		undo, err := prepareCreate(env)
		if err != nil {
			return fail(inv, err)
		}
		if undo != nil {
			defer undo() // only reached when the exec itself fails
			watchHandOff(env)
		}
	case line.Command == "delete":
		beforeDelete(env)
	}
	env.log.Debug("exec runtime", "runtime", env.runtime.Path(), "args", inv.Args)
	err = env.runtime.Exec(inv.Args)
	return fail(inv, err)
}

// setupRuntime loads the configuration (salvaged when broken: the error
// is kept in cfgErr for runRuntime to decide on), the log and the runtime.
func setupRuntime(inv *oci.Invocation) (*runtimeEnv, error) {
	cfg, cfgErr := config.Salvage(config.PathFromEnv(inv.Own["cfs-config"]))
	log, _, lerr := logging.Open(cfg.LogFile, cfg.LogLevel)
	if lerr != nil {
		// Not fatal: the container matters more than our own log.
		log = logging.Discard()
	}
	// /proc/self/exe names this executable for Locate's stat (what
	// os.Executable would read, without resolving the link).
	path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "/proc/self/exe")
	if err != nil {
		if cfgErr != nil {
			return nil, fmt.Errorf("%w; and with it: %w", cfgErr, err)
		}
		return nil, err
	}
	return withDefaults(&runtimeEnv{inv: inv, cfg: cfg, cfgErr: cfgErr, log: log, runtime: oci.NewRuntime(path)}), nil
}

// wantsHelp: --help/-h, or no arguments at all (runc then prints its help
// too); cfs-runtime adds its own commands before the runtime's help.
func wantsHelp(inv *oci.Invocation) bool {
	_, h := inv.Global["help"]
	return h || len(inv.Args) == 0
}

// fail reports cfs-runtime's own failure the way callers of a runtime read
// it: one line in the runtime log (if --log was given), the same text on
// stderr, exit status 1.
func fail(inv *oci.Invocation, err error) int {
	// podman reads "no such file or directory" and the like as another
	// failure than cfs-runtime's (see package fserr): the errno names say
	// the same without being misread.
	msg := "cfs-runtime: " + fserr.Scrub(err.Error())
	// A log that cannot be written is not fatal: stderr still has it.
	_ = logging.AppendFailure(inv.LogFile(), inv.LogFormat(), msg, time.Now())
	fmt.Fprintln(os.Stderr, msg)
	return 1
}

// RunChild runs the runtime as a child (for --version and --help, where
// cfs-runtime adds its own lines first) and returns its exit status.
func RunChild(path string, args []string) int {
	cmd := exec.CommandContext(context.Background(), path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cfs-runtime:", err)
		return 1
	}
	return 0
}
