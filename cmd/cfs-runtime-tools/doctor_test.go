package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/hostcheck"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// Unit tests do not depend on the test host's kernel: every command that
// tries the kernel's features sees a host with all of them, unless a test
// says otherwise (TestDoctorThisHost tries them for real).
func init() { probeHost = goodHost }

func yesFeature() mount.Feature { return mount.Feature{Supported: true} }

func goodHost(store string) hostcheck.Host {
	return hostcheck.Host{Store: store, Probed: filepath.Join(store, "objects"), FSType: "ext4", KernelVerity: true, KernelKnown: true,
		Features: mount.Features{MountAPI: yesFeature(), FileBackedEROFS: yesFeature(), LoopDevice: yesFeature(), OverlayDataOnly: yesFeature(), OverlayLayerAppend: yesFeature(), OverlayVerity: yesFeature()}}
}

// noVerityHost is the project's test host: a kernel without fs-verity.
func noVerityHost(store string) hostcheck.Host {
	h := goodHost(store)
	h.KernelVerity = false
	h.Verity = fmt.Errorf("fs-verity in %s: %w", h.Probed, &verity.UnsupportedError{FSType: "ext4", Reason: verity.ErrKernelNoVerity})
	return h
}

func withHost(t *testing.T, probe func(string) hostcheck.Host) {
	t.Helper()
	old := probeHost
	probeHost = probe
	t.Cleanup(func() { probeHost = old })
}

// doctorFixture: a configuration, a store, a policy (require) and engine
// configurations in a temporary directory, the engines "installed".
type doctorFixture struct {
	dir, config, store, policy, containerd string
}

func newDoctorFixture(t *testing.T, level string) doctorFixture {
	t.Helper()
	requireOwnPolicy(t)
	sf := newSignFixture(t)
	f := doctorFixture{dir: sf.dir, config: filepath.Join(sf.dir, "config.toml"), store: filepath.Join(sf.dir, "store"), policy: sf.policy, containerd: filepath.Join(sf.dir, "containerd.toml")}
	os.MkdirAll(filepath.Join(f.store, "objects"), 0o755)
	sigWriteFile(t, f.config, fmt.Sprintf("runtime = %q\nstore_dir = %q\npolicy = %q\n", "/usr/sbin/runc", f.store, f.policy))
	if level != "" {
		sigWriteFile(t, f.policy, fmt.Sprintf("enforcement = %q\n", level)+sigReadText(t, f.policy))
	}
	t.Setenv("CFS_RUNTIME_CONFIG", f.config)
	bin := filepath.Join(f.dir, "cfs-runtime")
	sigWriteFile(t, bin, "")
	sigWriteFile(t, filepath.Join(f.dir, "containers.conf"), fmt.Sprintf("[engine.runtimes]\ncfs = [%q]\n", bin))
	t.Setenv("CONTAINERS_CONF", filepath.Join(f.dir, "containers.conf"))
	os.Mkdir(filepath.Join(f.dir, "conf.d"), 0o755)
	sigWriteFile(t, f.containerd, "version = 2\nimports = [\"conf.d/*.toml\"]\n")
	sigWriteFile(t, filepath.Join(f.dir, "conf.d", "cfs.toml"), fmt.Sprintf("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cfs]\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.cfs.options]\nBinaryName = %q\n", bin))
	installed := func() (string, error) { return "/usr/bin/x", nil }
	oldP, oldC := podmanPath, containerdPath
	podmanPath, containerdPath = installed, installed
	t.Cleanup(func() { podmanPath, containerdPath = oldP, oldC })
	return f
}

func runcVersion(t *testing.T) string {
	out := sigShell(t, "/usr/sbin/runc", "--version")
	first, _, _ := strings.Cut(out, "\n")
	return first
}

func TestDoctorAllGood(t *testing.T) {
	f := newDoctorFixture(t, "")
	out, code, err := runAttestCLI(t, "doctor", "--containerd-config", f.containerd)
	if code != 0 {
		t.Fatalf("doctor: %d %v\n%s", code, err, out)
	}
	want := `ok    configuration: ` + f.config + `
ok    trust policy: ` + f.policy + `: enforcement require, 1 signer
ok    kernel: Linux ` + kernelRelease(t) + `
ok    fs-verity (kernel): built with CONFIG_FS_VERITY
ok    new mount API (fsopen): yes
ok    file-backed EROFS: yes
ok    EROFS on a loop device: yes
ok    overlayfs data-only lower layers (::): yes
ok    overlayfs lowerdir+/datadir+: yes
ok    overlayfs verity=: yes
ok    store: ` + f.store + ` on ext4
ok    fs-verity in the store: enabled on a temporary file in ` + f.store + `/objects
ok    OCI runtime: /usr/sbin/runc (` + runcVersion(t) + `)
ok    enforcement: this host can enforce require: kernel fs-verity and overlayfs verity=require
ok    podman: ` + f.dir + `/containers.conf: podman run --runtime cfs uses ` + f.dir + `/cfs-runtime
ok    containerd: ` + f.dir + `/conf.d/cfs.toml: runtime handler "cfs" runs ` + f.dir + `/cfs-runtime
everything enforcement require needs works on this host
`
	if out != want {
		t.Errorf("doctor:\n%s\nwant\n%s", out, want)
	}
}

func kernelRelease(t *testing.T) string {
	return strings.TrimSpace(sigShell(t, "uname", "-r"))
}

// A kernel without fs-verity: require fails (exit 1) saying what to do;
// the engines not configured are advice (warn), not failures.
func TestDoctorNoVerity(t *testing.T) {
	f := newDoctorFixture(t, "")
	withHost(t, noVerityHost)
	os.Remove(f.dir + "/conf.d/cfs.toml")
	sigWriteFile(t, filepath.Join(f.dir, "containers.conf"), "[engine]\n")
	out, code, err := runAttestCLI(t, "doctor", "--containerd-config", f.containerd)
	if code != 1 || err == nil || err.Error() != "" {
		t.Fatalf("doctor: %d %v\n%s", code, err, out)
	}
	fix := `boot a kernel built with CONFIG_FS_VERITY, or set enforcement = "userspace" in ` + f.policy + ` (weaker: each file is hashed once before the container starts; a change to the store after that is not detected)`
	for _, frag := range []string{
		"FAIL  fs-verity (kernel): kernel built without fs-verity (CONFIG_FS_VERITY)\n      to fix: " + fix + "\n",
		"FAIL  fs-verity in the store: fs-verity in " + f.store + "/objects: kernel built without fs-verity\n      to fix: as above\n",
		"FAIL  enforcement: this host cannot enforce require: fs-verity in " + f.store + "/objects: kernel built without fs-verity\n      to fix: as above\n",
		"warn  podman: no containers.conf runtime names cfs-runtime (looked in " + f.dir + "/containers.conf)\n      to fix: install contrib/containers.conf.d/cfs-runtime.conf as /etc/containers/containers.conf.d/cfs-runtime.conf (see docs/podman.md)\n",
		"warn  containerd: no runtime handler with BinaryName cfs-runtime in " + f.containerd + "\n      to fix: add the handler of contrib/containerd/cfs-runtime.toml to " + f.containerd + " and restart containerd (see docs/kubernetes.md)\n",
		"3 of 16 checks failed: containers would be refused on this host\n",
	} {
		if !strings.Contains(out, frag) {
			t.Errorf("doctor output lacks\n%s\n---\n%s", frag, out)
		}
	}

	// --json: the same checks, full fixes, "ok": false.
	out, code, _ = runAttestCLI(t, "doctor", "--json", "--containerd-config", f.containerd)
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 || r.OK || len(r.Checks) != 16 {
		t.Fatalf("--json: %d %v %+v\n%s", code, err, r, out)
	}
	if c := r.Checks[13]; c.Name != "enforcement" || c.Status != "FAIL" || c.Fix != fix {
		t.Errorf("--json enforcement check %+v", c)
	}

	// At userspace the same host is fine: the missing fs-verity is a warning.
	sigWriteFile(t, f.policy, "enforcement = \"userspace\"\n"+sigReadText(t, f.policy))
	out, code, _ = runAttestCLI(t, "doctor", "--containerd-config", f.containerd)
	if code != 0 || !strings.Contains(out, "warn  fs-verity in the store: fs-verity in "+f.store+"/objects: kernel built without fs-verity\n") ||
		!strings.HasSuffix(out, "everything enforcement userspace needs works on this host\n") {
		t.Errorf("userspace: %d\n%s", code, out)
	}
}

// What doctor says when nothing is set up: no policy, no runtime, engines
// not installed.
func TestDoctorNothing(t *testing.T) {
	f := newDoctorFixture(t, "")
	os.Remove(f.policy)
	sigWriteFile(t, f.config, fmt.Sprintf("runtime = %q\nstore_dir = %q\npolicy = %q\n", f.dir+"/no-runc", f.store+"/new", f.policy))
	missing := func() (string, error) { return "", errors.New("not found") }
	podmanPath, containerdPath = missing, missing
	out, code, _ := runAttestCLI(t, "doctor")
	for _, frag := range []string{
		"FAIL  trust policy: no trust policy: " + f.policy + " does not exist; every container is refused until it does (see policy.toml.example, check it with `cfs-runtime policy check`)\n      to fix: write " + f.policy + " (start from contrib/policy.toml.example, see docs/policy.md)\n",
		"ok    store: " + f.store + "/new on ext4\n",
		"FAIL  OCI runtime: no OCI runtime found: configured runtime " + f.dir + "/no-runc does not exist",
		"skip  podman: podman is not installed\n",
		"skip  containerd: containerd is not installed\n",
	} {
		if !strings.Contains(out, frag) {
			t.Errorf("doctor output lacks\n%s\n---\n%s", frag, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	if _, code, err := runAttestCLI(t, "doctor", "x"); code != 2 || err.Error() != "doctor: takes no arguments (usage: cfs-runtime doctor [--store DIR] [--policy FILE] [--json])" {
		t.Errorf("doctor x: %d %v", code, err)
	}
}

// On this host, for real: the features doctor reports are the ones
// mount.Probe finds, and nothing is left in the store.
func TestDoctorThisHost(t *testing.T) {
	f := newDoctorFixture(t, "userspace")
	withHost(t, hostcheck.Probe)
	out, code, err := runAttestCLI(t, "doctor", "--json", "--containerd-config", f.containerd)
	var r doctorReport
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		t.Fatalf("%v %v\n%s", jerr, err, out)
	}
	feats := mount.Probe(t.TempDir())
	for _, c := range r.Checks {
		if c.Name == "new mount API (fsopen)" && (c.Status == "ok") != feats.MountAPI.Supported {
			t.Errorf("%+v vs %v", c, feats.MountAPI)
		}
		if c.Name == "overlayfs data-only lower layers (::)" && (c.Status == "ok") != feats.OverlayDataOnly.Supported {
			t.Errorf("%+v vs %v", c, feats.OverlayDataOnly)
		}
	}
	if (code == 0) != r.OK {
		t.Errorf("exit %d, ok %v", code, r.OK)
	}
	if names, _ := os.ReadDir(filepath.Join(f.store, "objects")); len(names) != 0 {
		t.Errorf("doctor left %v in the store", names)
	}
}
