// Package handoff is what every runtime call through cfs-runtime does
// before anything else: read the command line with the runtime's own rules
// (internal/oci), load the configuration, find the real runtime, and hand
// the call over: to the runtime itself (state, kill, start, exec, ...,
// and create or run of a container the policy plainly lets start
// unsigned, which package unsigned decides), to cfs-runtime-mount for
// what verifies or mounts (create, run, delete and the commands that run
// along with containers) or to cfs-runtime-tools. It links nothing else,
// because cfs-runtime, its front, is exec'd for every runtime call.
// Failures are reported here, the way engines read them.
package handoff

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/environ"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/internal/runtimelog"
)

// Version is the version --version prints.
var Version = "dev"

// ErrRestore: runc and crun restore a checkpoint from the bundle's
// config.json and an image of the processes' memory, which no signature
// covers.
var ErrRestore = errors.New("cfs-runtime does not restore checkpoints")

// Call is a runtime invocation, read and located.
type Call struct {
	Inv *oci.Invocation
	// Line is what the runtime makes of the command line.
	Line *oci.Line
	Cfg  config.Config
	// CfgErr: the configuration file is broken and Cfg is what
	// config.Salvage made of it.
	CfgErr  error
	Runtime oci.Runtime
	// unchecked: the runtime was taken from the configuration without a
	// stat (see readUnchecked); checkRuntime checks it.
	unchecked bool
}

// Read loads the configuration (salvaged when broken: the error is kept in
// CfgErr; dec decodes what is outside the plain subset of TOML, see
// config.Salvage), finds the runtime and reads the command line as it
// will. A line the runtime would read differently from cfs-runtime, or one
// cfs-runtime cannot read with certainty, is an error: refused, never
// handed over.
func Read(inv *oci.Invocation, dec config.Decoder) (*Call, error) {
	return read(inv, dec, false)
}

// readUnchecked is Read for the front: a runtime configured by absolute
// path is taken as it is, without stat'ing it and this executable (two
// system calls, which cost a new process microseconds on every runtime
// call). exec finds a runtime that is missing or not executable, and
// checkRuntime then words why, as Read would have. What exec cannot find
// is a runtime that is cfs-runtime itself, which would exec itself
// forever; but it is exec'd by the configured path, so the process it
// becomes was exec'd by that path (oci.ExecFn): that one reads with
// stats, and Locate refuses it.
//
// It reads $CFS_RUNTIME_CONFIG with package environ, which builds no table
// of the environment (nor does the runtime's exec: oci.Runtime).
func readUnchecked(inv *oci.Invocation) (*Call, error) {
	return read(inv, nil, true)
}

func read(inv *oci.Invocation, dec config.Decoder, front bool) (*Call, error) {
	getenv := os.Getenv
	if front {
		getenv = environ.Getenv
	}
	// Into the Call itself: no copy of the Config on the stack (see
	// config.SalvageInto).
	c := &Call{Inv: inv}
	c.CfgErr = config.SalvageInto(&c.Cfg, config.Path(inv.Own["cfs-config"], getenv), dec)
	if errors.Is(c.CfgErr, config.ErrNotPlain) {
		return nil, c.CfgErr
	}
	path := c.Cfg.Runtime
	c.unchecked = front && c.CfgErr == nil && filepath.IsAbs(path) && path != oci.ExecFn()
	if !c.unchecked {
		var err error
		if path, err = c.locate(); err != nil {
			return nil, err
		}
	}
	var err error
	if c.Line, err = oci.ParseLine(oci.DialectOf(path), inv.Args); err != nil {
		return nil, err
	}
	c.Runtime = oci.NewRuntime(path)
	return c, nil
}

// locate finds the runtime (oci.Locate), with the configuration's error
// when the file was broken.
func (c *Call) locate() (string, error) {
	// This executable, for Locate's stat: by the path it was exec'd by
	// (see oci.ExecFn), else /proc/self/exe (what os.Executable would
	// read, without resolving the link).
	path, err := oci.Locate(c.Cfg.Runtime, oci.DefaultRuntimes, oci.ExecFn(), "/proc/self/exe")
	if err != nil && c.CfgErr != nil {
		return "", fmt.Errorf("%w; and with it: %w", c.CfgErr, err)
	}
	return path, err
}

// checkRuntime checks a runtime readUnchecked took as configured, with
// Read's error when it is not one to run.
func (c *Call) checkRuntime() error {
	if !c.unchecked {
		return nil
	}
	_, err := c.locate()
	return err
}

// RefuseRestore refuses restore, saying what to do.
func RefuseRestore(inv *oci.Invocation) int {
	return Fail(inv, fmt.Errorf("restore: %w: the checkpoint image is not a verified root filesystem; create the container anew", ErrRestore))
}

// Starts reports a line that starts a container (create, run, restore).
func (c *Call) Starts() bool {
	return c.Line.Command == "restore" || (c.Line.Start != nil && !c.Line.Start.Help)
}

// CheckConfig refuses a container start on a broken configuration, and
// lets everything else through with a warning on stderr (except the delete
// of a container cfs-runtime has nothing of): a broken file must not
// strand the containers that run.
func (c *Call) CheckConfig() error {
	if c.CfgErr == nil {
		return nil
	}
	if c.Starts() {
		return c.CfgErr
	}
	if c.Line.Command == "delete" {
		// A container without composefs state is the runtime's alone:
		// the configuration plays no part in deleting it, so no warning.
		// (Engines delete every container that failed to start: after a
		// create refused for this configuration, the warning would only
		// repeat that error.)
		if _, _, dir := DeleteTarget(c.Inv, c.Cfg.StateDir); dir == "" {
			return nil
		}
	}
	fmt.Fprintf(os.Stderr, "cfs-runtime: warning: %v (handing %q to %s anyway; create and run are refused until it is fixed)\n", c.CfgErr, c.Line.Command, c.Runtime.Path())
	return nil
}

// StartUnsigned decides whether the container a call starts may start
// unverified from the front (package unsigned); false hands the call to
// cfs-runtime-mount.
type StartUnsigned func(*Call) bool

// Main is cfs-runtime, the front: it hands every call over and returns
// only on failure, for --version, or when it refuses the call. Starts that
// startUnsigned (nil: none) does not take go to cfs-runtime-mount.
func Main(args []string, startUnsigned StartUnsigned) int {
	inv := oci.Parse(args)
	switch {
	case inv.Command == "cleanup" || inv.Command == "hook":
		return Mount.Exec(inv)
	case needsTools(inv):
		return Tools.Exec(inv)
	}
	c, err := readUnchecked(inv)
	if errors.Is(err, config.ErrNotPlain) {
		// A configuration the front cannot read without a TOML decoder
		// (valid or not): cfs-runtime-mount reads it, and decides.
		return Mount.Exec(inv)
	}
	if err != nil {
		return Fail(inv, err)
	}
	switch {
	case c.Line.Command == "restore":
		return RefuseRestore(inv)
	case c.Starts() && (startUnsigned == nil || c.checkRuntime() != nil || !startUnsigned(c)):
		// cfs-runtime-mount reads the call again, and decides (a start
		// with a runtime that is not one is refused there).
		return Mount.Exec(inv)
	case c.Line.Command == "delete":
		// Only a container with a composefs mount needs cfs-runtime-mount
		// (its state directory exists): others, unsigned ones, are the
		// runtime's alone.
		if _, _, dir := DeleteTarget(inv, c.Cfg.StateDir); dir != "" {
			return Mount.Exec(inv)
		}
	}
	if err := c.CheckConfig(); err != nil {
		return Fail(inv, err)
	}
	if inv.WantsVersion() {
		if err := c.checkRuntime(); err != nil {
			return Fail(inv, err)
		}
		fmt.Printf("cfs-runtime version %s\n", Version)
		return RunChild(c.Runtime.Path(), inv.Args)
	}
	err = c.Runtime.Exec(inv.Args) // returns only on failure
	if cerr := c.checkRuntime(); cerr != nil {
		err = cerr // why, as Read words it
	}
	return Fail(inv, err)
}

// DeleteTarget reads a delete command line: the container id, whether
// --force was given, and the container's composefs state directory under
// stateDir ("" when it has none: nothing of cfs-runtime's to remove).
func DeleteTarget(inv *oci.Invocation, stateDir string) (id string, force bool, dir string) {
	for _, a := range inv.CommandArgs {
		switch {
		case a == "-f" || a == "--force" || a == "-force" || a == "--force=true":
			force = true
		case !strings.HasPrefix(a, "-") && id == "":
			id = a
		}
	}
	if !oci.ValidID(id) {
		return id, force, ""
	}
	dir = filepath.Join(stateDir, id)
	if _, err := os.Stat(dir); err != nil {
		return id, force, ""
	}
	return id, force, dir
}

// WantsHelp: --help/-h, or no arguments at all (runc then prints its help
// too); cfs-runtime adds its own commands before the runtime's help.
func WantsHelp(inv *oci.Invocation) bool {
	_, h := inv.Global["help"]
	return h || len(inv.Args) == 0
}

// Fail reports cfs-runtime's own failure the way callers of a runtime read
// it: one line in the runtime log (if --log was given), the same text on
// stderr, exit status 1.
func Fail(inv *oci.Invocation, err error) int {
	// podman reads "no such file or directory" and the like as another
	// failure than cfs-runtime's (see package fserr): the errno names say
	// the same without being misread.
	msg := "cfs-runtime: " + fserr.Scrub(err.Error())
	// A log that cannot be written is not fatal: stderr still has it.
	_ = runtimelog.AppendFailure(inv.LogFile(), inv.LogFormat(), msg, time.Now())
	fmt.Fprintln(os.Stderr, msg)
	return 1
}

// RunChild runs the runtime as a child (for --version and --help, where
// cfs-runtime adds its own lines first) and returns its exit status. With
// os.StartProcess, not os/exec: the front links no os/exec (see
// oci.lookPath).
func RunChild(path string, args []string) int {
	p, err := os.StartProcess(path, append([]string{path}, args...), &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cfs-runtime:", err)
		return 1
	}
	st, err := p.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cfs-runtime:", err)
		return 1
	}
	return st.ExitCode()
}
