package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/hostcheck"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// doctorCommand checks the host for everything cfs-runtime needs, trying
// the kernel's features for real, and says what to do about each problem.
var doctorCommand = &cli.Command{
	Name:      "doctor",
	Usage:     "check this host: kernel features, store, runtime, policy and container engines",
	ArgsUsage: " ",
	Description: "Tries the kernel's features for real (fs-verity on a temporary file in the\n" +
		"store's filesystem, overlayfs verity= and data-only lower layers, file-backed\n" +
		"EROFS, the new mount API), finds the runtime and its version, loads the trust\n" +
		"policy and tells whether this host can enforce its level, and looks at the\n" +
		"container engines' configuration (a podman containers.conf drop-in naming\n" +
		"cfs-runtime, a containerd runtime handler). Each line says ok, FAIL, warn or\n" +
		"skip, and what to do when it is not ok. Exit status 0 when everything the\n" +
		"policy needs works (the engines' lines are advice), 1 otherwise. Needs root.",
	Flags: []cli.Flag{
		storeFlag(),
		&cli.StringFlag{Name: "policy", Usage: "trust policy `FILE`", DefaultText: "the configuration's policy, " + attest.DefaultPolicyPath},
		&cli.StringFlag{Name: "containerd-config", Usage: "containerd's configuration `FILE`", Value: "/etc/containerd/config.toml", TakesFile: true},
		&cli.BoolFlag{Name: "json", Usage: "print the checks as JSON"},
	},
	Action: doctorAction,
}

// Check statuses.
const (
	checkOK   = "ok"
	checkFail = "FAIL" // something the policy needs is missing: exit 1
	checkWarn = "warn" // missing, but not needed by the policy's level
	checkSkip = "skip" // not applicable (an engine that is not installed)
)

// check is one line of doctor's report.
type check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	// Fix says what to do when Status is not ok.
	Fix string `json:"fix,omitempty"`
}

// doctorReport is the --json document.
type doctorReport struct {
	Checks []check `json:"checks"`
	// OK: everything the policy needs works (the exit status is 0).
	OK bool `json:"ok"`
}

// Test hooks: probeHost tries the kernel's features; podmanPath and
// containerdPath find the engines.
var (
	probeHost      = hostcheck.Probe
	podmanPath     = func() (string, error) { return exec.LookPath("podman") }
	containerdPath = func() (string, error) { return exec.LookPath("containerd") }
)

func doctorAction(c *cli.Context) error {
	if c.NArg() != 0 {
		return cli.Exit("doctor: takes no arguments (usage: cfs-runtime doctor [--store DIR] [--policy FILE] [--json])", 2)
	}
	var r doctorReport
	add := func(name, status, detail, fix string) {
		if status == checkOK {
			fix = ""
		}
		r.Checks = append(r.Checks, check{Name: name, Status: status, Detail: detail, Fix: fix})
	}

	// The configuration: everything else depends on it.
	cfgPath := config.PathFromEnv(invocation(c).Own["cfs-config"])
	cfg, cfgErr := loadConfig(c)
	switch {
	case cfgErr != nil:
		add("configuration", checkFail, cfgErr.Error(), "fix the line named (see docs/config.md)")
		cfg = config.Defaults()
	case cfg.Path == "":
		add("configuration", checkOK, cfgPath+" does not exist: defaults in effect", "")
	default:
		add("configuration", checkOK, cfg.Path, "")
	}
	storeDir := cfg.StoreDir
	if c.IsSet("store") {
		storeDir = c.String("store")
	}
	policyPath := cmpOr(c.String("policy"), cfg.Policy, attest.DefaultPolicyPath)
	paths := hostcheck.Paths{Config: cfgPath, Policy: policyPath}

	// The policy first: its level says which features are needed.
	level := attest.EnforceRequire
	p, perr := attest.LoadPolicy(policyPath, attest.WithSigstoreCheck())
	if perr != nil {
		fix := "fix what the message names; `cfs-runtime policy check` checks the file"
		if errors.Is(perr, attest.ErrNoPolicy) {
			fix = "write " + policyPath + " (start from contrib/policy.toml.example, see docs/policy.md)"
		}
		add("trust policy", checkFail, perr.Error(), fix)
	} else {
		level = p.Enforcement
		signers := fmt.Sprintf("%d signers", len(p.Signers))
		if len(p.Signers) == 1 {
			signers = "1 signer"
		}
		add("trust policy", checkOK, fmt.Sprintf("%s: enforcement %s, %s", p.Path, p.Enforcement, signers), "")
	}
	needsVerity := level != attest.EnforceUserspace
	// verityFix: at userspace, fs-verity is what a stronger level needs.
	verityFix := func(err error) string {
		if needsVerity {
			return hostcheck.VerityFix(err, paths)
		}
		return fmt.Sprintf(`for enforcement "require" (set in %s): `, policyPath) + hostcheck.VerityRemedy(err, paths)
	}
	// need is the status of a missing feature: FAIL when the level needs
	// it, warn otherwise.
	need := func(needed bool) string {
		if needed {
			return checkFail
		}
		return checkWarn
	}

	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		add("kernel", checkOK, "Linux "+unix.ByteSliceToString(uts.Release[:]), "")
	}
	h := probeHost(storeDir)
	if h.UID != 0 {
		add("root", checkFail, fmt.Sprintf("running as uid %d: the kernel's features can only be tried as root", h.UID), "run cfs-runtime doctor as root")
	}
	switch {
	case h.KernelVerity:
		add("fs-verity (kernel)", checkOK, "built with CONFIG_FS_VERITY", "")
	case h.KernelKnown:
		noKernel := fmt.Errorf("fs-verity: %w", verity.ErrKernelNoVerity)
		add("fs-verity (kernel)", need(needsVerity), "kernel built without fs-verity (CONFIG_FS_VERITY)", verityFix(noKernel))
	default:
		add("fs-verity (kernel)", checkOK, "cannot tell from /proc/sys/fs and /sys/fs (a container?): see the store's line", "")
	}
	feature := func(name string, f mount.Feature, needed bool, fix string) {
		if f.Supported {
			add(name, checkOK, "yes", "")
		} else {
			add(name, need(needed), fmt.Sprintf("no (%v)", f.Err), fix)
		}
	}
	f := h.Features
	feature("new mount API (fsopen)", f.MountAPI, true, "a kernel with fsopen(2): Linux ≥ 5.2")
	eitherEROFS := f.FileBackedEROFS.Supported || f.LoopDevice.Supported
	feature("file-backed EROFS", f.FileBackedEROFS, !f.LoopDevice.Supported, "Linux ≥ 6.12 with CONFIG_EROFS_FS_BACKED_BY_FILE and the store on ext4, xfs or btrfs (without it a loop device is used)")
	feature("EROFS on a loop device", f.LoopDevice, !eitherEROFS, "modprobe erofs loop")
	feature("overlayfs data-only lower layers (::)", f.OverlayDataOnly, true, "a kernel with overlayfs data-only lower layers: Linux ≥ 6.5")
	feature("overlayfs lowerdir+/datadir+", f.OverlayLayerAppend, false, "Linux ≥ 6.8 (without it lowerdir=A::B is used: nothing to do)")
	feature("overlayfs verity=", f.OverlayVerity, level == attest.EnforceRequire,
		hostcheck.OverlayVerityFix(paths))

	where := h.Store
	if h.Probed != filepath.Join(h.Store, "objects") {
		where += " (not made yet: tried in " + h.Probed + ")"
	}
	add("store", checkOK, fmt.Sprintf("%s on %s", where, h.FSType), "")
	if h.Verity == nil {
		add("fs-verity in the store", checkOK, "enabled on a temporary file in "+h.Probed, "")
	} else {
		add("fs-verity in the store", need(needsVerity), h.Verity.Error(), verityFix(h.Verity))
	}

	doctorRuntime(cfg, add)

	if perr == nil {
		if err := h.Enforceable(level, paths); err != nil {
			var pr *hostcheck.Problem
			fix := ""
			if errors.As(err, &pr) {
				fix = pr.Fix
			}
			add("enforcement", checkFail, fmt.Sprintf("this host cannot enforce %s: %v", level, reasonOf(err)), fix)
		} else {
			status, fix := checkOK, ""
			if level == attest.EnforceUserspace && h.Verity == nil && f.OverlayVerity.Supported {
				status, fix = checkWarn, fmt.Sprintf(`set enforcement = "require" in %s: this host can enforce it`, policyPath)
			}
			add("enforcement", status, fmt.Sprintf("this host can enforce %s: %s", level, level.Describe()), fix)
		}
	}

	doctorPodman(add)
	doctorContainerd(c.String("containerd-config"), add)

	r.OK = !slices.ContainsFunc(r.Checks, func(c check) bool { return c.Status == checkFail })
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, r); err != nil {
			return err
		}
	} else {
		printDoctor(c.App.Writer, r, level)
	}
	if !r.OK {
		return cli.Exit("", 1)
	}
	return nil
}

func reasonOf(err error) error {
	var pr *hostcheck.Problem
	if errors.As(err, &pr) {
		return pr.Reason
	}
	return err
}

func cmpOr(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// printDoctor prints one line per check, "STATUS  name: detail", with the
// fix indented below, then a summary.
func printDoctor(w io.Writer, r doctorReport, level attest.Enforcement) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	failed := 0
	seen := map[string]bool{}
	for _, c := range r.Checks {
		fmt.Fprintf(bw, "%-4s  %s: %s\n", c.Status, c.Name, c.Detail)
		switch {
		case seen[c.Fix]:
			fmt.Fprintf(bw, "      to fix: as above\n")
		case c.Fix != "":
			fmt.Fprintf(bw, "      to fix: %s\n", c.Fix)
			seen[c.Fix] = true
		}
		if c.Status == checkFail {
			failed++
		}
	}
	if failed == 0 {
		fmt.Fprintf(bw, "everything enforcement %s needs works on this host\n", level)
	} else {
		fmt.Fprintf(bw, "%d of %d checks failed: containers would be refused on this host\n", failed, len(r.Checks))
	}
}

// doctorRuntime finds the runtime as create does and asks its version.
func doctorRuntime(cfg config.Config, add func(name, status, detail, fix string)) {
	path, err := oci.Locate(cfg.Runtime, oci.DefaultRuntimes, "")
	if err != nil {
		add("OCI runtime", checkFail, err.Error(), "install runc or crun, or name it with runtime in the configuration")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		add("OCI runtime", checkFail, fmt.Sprintf("%s --version: %v", path, err), "point runtime in the configuration at a working runc or crun")
		return
	}
	first, _, _ := strings.Cut(string(out), "\n")
	add("OCI runtime", checkOK, fmt.Sprintf("%s (%s)", path, strings.TrimSpace(first)), "")
}

// isCfsRuntime reports whether a runtime path names cfs-runtime.
func isCfsRuntime(p string) bool { return filepath.Base(p) == "cfs-runtime" }

// doctorPodman looks for a containers.conf runtime naming cfs-runtime,
// where podman reads them: $CONTAINERS_CONF alone when set, else the
// system files and their .d drop-ins.
func doctorPodman(add func(name, status, detail, fix string)) {
	const name = "podman"
	if _, err := podmanPath(); err != nil {
		add(name, checkSkip, "podman is not installed", "")
		return
	}
	var files []string
	if env := os.Getenv("CONTAINERS_CONF"); env != "" {
		files = []string{env}
	} else {
		for _, dir := range []string{"/usr/share/containers", "/etc/containers"} {
			files = append(files, filepath.Join(dir, "containers.conf"))
			d, _ := filepath.Glob(filepath.Join(dir, "containers.conf.d", "*.conf"))
			files = append(files, d...)
		}
	}
	fix := "install contrib/containers.conf.d/cfs-runtime.conf as /etc/containers/containers.conf.d/cfs-runtime.conf (see docs/podman.md)"
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var conf struct {
			Engine struct {
				Runtimes map[string][]string `toml:"runtimes"`
			} `toml:"engine"`
		}
		if err := toml.Unmarshal(data, &conf); err != nil {
			add(name, checkWarn, fmt.Sprintf("%s: %v", f, oneLineErr(err)), "fix the file: podman refuses to start with it")
			return
		}
		for rt, ps := range conf.Engine.Runtimes {
			for _, p := range ps {
				if !isCfsRuntime(p) {
					continue
				}
				if _, err := os.Stat(p); err != nil {
					add(name, checkWarn, fmt.Sprintf("%s: runtime %q is %s, which does not exist", f, rt, p), "make install, or point the path at cfs-runtime")
					return
				}
				add(name, checkOK, fmt.Sprintf("%s: podman run --runtime %s uses %s", f, rt, p), "")
				return
			}
		}
	}
	add(name, checkWarn, "no containers.conf runtime names cfs-runtime (looked in "+strings.Join(files, ", ")+")", fix)
}

// doctorContainerd looks for a runtime handler whose BinaryName is
// cfs-runtime in containerd's configuration and the files it imports.
func doctorContainerd(path string, add func(name, status, detail, fix string)) {
	const name = "containerd"
	if _, err := containerdPath(); err != nil {
		add(name, checkSkip, "containerd is not installed", "")
		return
	}
	fix := "add the handler of contrib/containerd/cfs-runtime.toml to " + path + " and restart containerd (see docs/kubernetes.md)"
	files := []string{path}
	for i := 0; i < len(files) && i < 64; i++ {
		data, err := os.ReadFile(files[i])
		if err != nil {
			if i == 0 {
				add(name, checkWarn, err.Error(), fix)
				return
			}
			continue
		}
		var conf map[string]any
		if err := toml.Unmarshal(data, &conf); err != nil {
			add(name, checkWarn, fmt.Sprintf("%s: %v", files[i], oneLineErr(err)), "fix the file: containerd refuses to start with it")
			return
		}
		if handler, bin, ok := findBinaryName(conf, ""); ok {
			if _, err := os.Stat(bin); err != nil {
				add(name, checkWarn, fmt.Sprintf("%s: runtime handler %q runs %s, which does not exist", files[i], handler, bin), "make install, or point BinaryName at cfs-runtime")
				return
			}
			add(name, checkOK, fmt.Sprintf("%s: runtime handler %q runs %s", files[i], handler, bin), "")
			return
		}
		// imports = ["/etc/containerd/conf.d/*.toml"], relative to the file.
		if imports, ok := conf["imports"].([]any); ok {
			for _, im := range imports {
				s, _ := im.(string)
				if s == "" {
					continue
				}
				if !filepath.IsAbs(s) {
					s = filepath.Join(filepath.Dir(files[i]), s)
				}
				m, _ := filepath.Glob(s)
				files = append(files, m...)
			}
		}
	}
	add(name, checkWarn, "no runtime handler with BinaryName cfs-runtime in "+strings.Join(files, ", "), fix)
}

// findBinaryName walks a containerd configuration for a runtime whose
// options.BinaryName is cfs-runtime; handler is the runtimes key.
func findBinaryName(m map[string]any, key string) (handler, bin string, ok bool) {
	if opts, isMap := m["options"].(map[string]any); isMap {
		if b, _ := opts["BinaryName"].(string); isCfsRuntime(b) {
			return key, b, true
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if sub, isMap := m[k].(map[string]any); isMap {
			if h, b, ok := findBinaryName(sub, k); ok {
				return h, b, true
			}
		}
	}
	return "", "", false
}

// oneLineErr keeps the first line of a decoder's error.
func oneLineErr(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return string(bytes.TrimSpace([]byte(s)))
}
