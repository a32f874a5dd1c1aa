// Package contrib_test checks the integration files under contrib/ that no
// test suite can run for real here: the CRI-O drop-in (CRI-O is not packaged
// for Debian 12), the RuntimeClass manifest, and the shape of the containerd
// snippet that tests/bats/containerd.bats runs with containerd 1.6.
package contrib_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"

	"github.com/cfs-runtime/cfs-runtime/attest"
)

// installedBinary is where `make install` puts cfs-runtime (PREFIX=/usr/local).
const installedBinary = "/usr/local/bin/cfs-runtime"

// handler is the runtime handler name both engines use and the RuntimeClass
// names.
const handler = "cfs"

// composefsKeys lists every annotation key attest reads: each digest key it
// accepts (found by asking its parser about a generous grid of hash and
// block-size names, so that a new algorithm shows up here) and each
// signature suffix on it.
func composefsKeys(t *testing.T) []string {
	t.Helper()
	var suffixes []string
	for k := attest.SignatureKind(1); k.Suffix() != ""; k++ {
		suffixes = append(suffixes, k.Suffix())
	}
	if len(suffixes) < 3 {
		t.Fatalf("attest has %d signature kinds, want at least .sig, .cosign, .sigstore-bundle", len(suffixes))
	}
	var keys []string
	for _, hash := range []string{"sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "sm3"} {
		for bits := 9; bits <= 20; bits++ {
			name := fmt.Sprintf("fsverity-%s-%d", hash, bits)
			if _, _, err := attest.ParseAlgorithm(name); err != nil {
				continue
			}
			base := attest.DigestAnnotationPrefix + strings.TrimPrefix(name, "fsverity-")
			keys = append(keys, base)
			for _, s := range suffixes {
				keys = append(keys, base+s)
			}
		}
	}
	if !slices.Contains(keys, attest.DefaultDigestAnnotation) {
		t.Fatalf("the key enumeration misses %s: %v", attest.DefaultDigestAnnotation, keys)
	}
	slices.Sort(keys)
	return keys
}

// decodeStrict decodes TOML into v and fails on any key v has no field for.
func decodeStrict(t *testing.T, name string, data []byte, v any) {
	t.Helper()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			t.Fatalf("%s: unknown keys:\n%s", name, sm.String())
		}
		t.Fatalf("%s: %v", name, err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// containerdRuntime is containerd 1.6's CRI runtime entry (pkg/cri/config
// Runtime) with the runc shim's options: a misspelt key fails the strict
// decode instead of being ignored, as containerd would ignore it.
type containerdRuntime struct {
	Type                  string   `toml:"runtime_type"`
	Path                  string   `toml:"runtime_path"`
	Engine                string   `toml:"runtime_engine"`
	Root                  string   `toml:"runtime_root"`
	PodAnnotations        []string `toml:"pod_annotations"`
	ContainerAnnotations  []string `toml:"container_annotations"`
	PrivilegedWithoutDevs bool     `toml:"privileged_without_host_devices"`
	BaseRuntimeSpec       string   `toml:"base_runtime_spec"`
	Options               *struct {
		BinaryName    string
		Root          string
		SystemdCgroup bool
		NoPivotRoot   bool
		NoNewKeyring  bool
		ShimCgroup    string
		IoUid, IoGid  uint32
		CriuPath      string
		CriuImagePath string
		CriuWorkPath  string
	} `toml:"options"`
}

type containerdConfig struct {
	Plugins struct {
		CRI struct {
			Containerd struct {
				Runtimes map[string]containerdRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"io.containerd.grpc.v1.cri"`
	} `toml:"plugins"`
}

const containerdSnippet = "containerd/cfs-runtime.toml"

func TestContainerdSnippet(t *testing.T) {
	data := readFile(t, containerdSnippet)
	var cfg containerdConfig
	decodeStrict(t, containerdSnippet, data, &cfg)
	rts := cfg.Plugins.CRI.Containerd.Runtimes
	if len(rts) != 1 {
		t.Fatalf("%s defines %d runtimes, want exactly %q", containerdSnippet, len(rts), handler)
	}
	rt, ok := rts[handler]
	if !ok {
		t.Fatalf("%s has no runtime %q", containerdSnippet, handler)
	}
	if rt.Type != "io.containerd.runc.v2" {
		t.Errorf("runtime_type = %q, want io.containerd.runc.v2 (the runc shim, which runs BinaryName)", rt.Type)
	}
	if rt.Path != "" || rt.Engine != "" || rt.Root != "" {
		t.Errorf("runtime_path/runtime_engine/runtime_root = %q/%q/%q: the runc v2 shim ignores them; set options.BinaryName", rt.Path, rt.Engine, rt.Root)
	}
	if rt.Options == nil || rt.Options.BinaryName != installedBinary {
		t.Errorf("options.BinaryName = %+v, want %q", rt.Options, installedBinary)
	}
	want := composefsKeys(t)
	for name, got := range map[string][]string{"pod_annotations": rt.PodAnnotations, "container_annotations": rt.ContainerAnnotations} {
		if !slices.Equal(sortedCopy(got), want) {
			t.Errorf("%s = %v\nwant the composefs keys attest reads: %v", name, got, want)
		}
		if len(slices.Compact(sortedCopy(got))) != len(got) {
			t.Errorf("%s lists a key twice: %v", name, got)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// debianContainerdConfig is what Debian 12's containerd package installs as
// /etc/containerd/config.toml, comments left out.
const debianContainerdConfig = `version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`

// The snippet is meant to be appended to config.toml: it must be valid
// there, add the runtime and leave the existing tables alone. A key before
// its first table header would land in config.toml's last table.
func TestContainerdSnippetAppends(t *testing.T) {
	data := readFile(t, containerdSnippet)
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "[") {
			t.Fatalf("%s:%d: %q comes before the first table header: appended to config.toml it would join the last table", containerdSnippet, i+1, line)
		}
		break
	}
	var merged map[string]any
	if err := toml.Unmarshal([]byte(debianContainerdConfig+"\n"+string(data)), &merged); err != nil {
		t.Fatalf("Debian's config.toml with %s appended: %v", containerdSnippet, err)
	}
	cri := dig(t, merged, "plugins", "io.containerd.grpc.v1.cri")
	if got := dig(t, cri, "cni")["conf_dir"]; got != "/etc/cni/net.d" {
		t.Errorf("cni.conf_dir = %v after appending, want the original /etc/cni/net.d", got)
	}
	if got := dig(t, cri, "containerd", "runtimes", handler)["runtime_type"]; got != "io.containerd.runc.v2" {
		t.Errorf("runtimes.%s.runtime_type = %v after appending", handler, got)
	}
	if merged["version"] != int64(2) {
		t.Errorf("version = %v after appending, want 2", merged["version"])
	}
}

// dig walks nested TOML tables.
func dig(t *testing.T, m map[string]any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			t.Fatalf("no table %s", strings.Join(path, "."))
		}
		m = next
	}
	return m
}

// crioRuntime is CRI-O's [crio.runtime.runtimes.NAME] (pkg/config
// RuntimeHandler), the keys a drop-in may set.
type crioRuntime struct {
	RuntimePath                  string            `toml:"runtime_path"`
	RuntimeType                  string            `toml:"runtime_type"`
	RuntimeRoot                  string            `toml:"runtime_root"`
	RuntimeConfigPath            string            `toml:"runtime_config_path"`
	MonitorPath                  string            `toml:"monitor_path"`
	MonitorCgroup                string            `toml:"monitor_cgroup"`
	MonitorExecCgroup            string            `toml:"monitor_exec_cgroup"`
	MonitorEnv                   []string          `toml:"monitor_env"`
	PrivilegedWithoutHostDevices bool              `toml:"privileged_without_host_devices"`
	AllowedAnnotations           []string          `toml:"allowed_annotations"`
	PlatformRuntimePaths         map[string]string `toml:"platform_runtime_paths"`
	DefaultAnnotations           map[string]string `toml:"default_annotations"`
	InheritDefaultRuntime        bool              `toml:"inherit_default_runtime"`
}

type crioConfig struct {
	Crio struct {
		Runtime struct {
			Runtimes map[string]crioRuntime `toml:"runtimes"`
		} `toml:"runtime"`
	} `toml:"crio"`
}

const crioDropIn = "crio/crio.conf.d/10-cfs-runtime.conf"

func TestCRIODropIn(t *testing.T) {
	data := readFile(t, crioDropIn)
	var cfg crioConfig
	decodeStrict(t, crioDropIn, data, &cfg)
	rts := cfg.Crio.Runtime.Runtimes
	if len(rts) != 1 {
		t.Fatalf("%s defines %d runtimes, want exactly %q", crioDropIn, len(rts), handler)
	}
	rt, ok := rts[handler]
	if !ok {
		t.Fatalf("%s has no [crio.runtime.runtimes.%s]", crioDropIn, handler)
	}
	if rt.RuntimeType != "oci" {
		t.Errorf("runtime_type = %q, want oci (conmon runs the runtime with runc's command line)", rt.RuntimeType)
	}
	if rt.RuntimePath != installedBinary {
		t.Errorf("runtime_path = %q, want %q", rt.RuntimePath, installedBinary)
	}
	// CRI-O's default runc root: `cfs-runtime cleanup` without --root and
	// `runc list` see these containers.
	if rt.RuntimeRoot != "/run/runc" {
		t.Errorf("runtime_root = %q, want /run/runc", rt.RuntimeRoot)
	}
	if rt.InheritDefaultRuntime {
		t.Error("inherit_default_runtime = true would replace runtime_path with the default runtime's")
	}
	// CRI-O passes every pod annotation through; its allowed_annotations
	// only un-blocks CRI-O's own feature annotations, and CRI-O refuses to
	// start when the list names a key it does not know
	// (validateAllowedAndGenerateDisallowedAnnotations: "invalid
	// allowed_annotation"). The composefs keys must therefore not be
	// listed; the drop-in states the empty list so that no pod on this
	// handler can use those features.
	if rt.AllowedAnnotations == nil {
		t.Errorf("%s: allowed_annotations is not set; want it present and empty", crioDropIn)
	}
	for _, a := range rt.AllowedAnnotations {
		if strings.HasPrefix(a, attest.DigestAnnotationPrefix) {
			t.Errorf("allowed_annotations names %q: CRI-O would refuse to start (invalid allowed_annotation)", a)
		}
	}
	if len(rt.AllowedAnnotations) != 0 {
		t.Errorf("allowed_annotations = %v, want []", rt.AllowedAnnotations)
	}
}

// The drop-in must not touch anything outside its runtime table: CRI-O
// merges drop-ins key by key, and a stray key would change the whole node.
func TestCRIODropInOnlyItsTable(t *testing.T) {
	var m map[string]any
	if err := toml.Unmarshal(readFile(t, crioDropIn), &m); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(m); !slices.Equal(got, []string{"crio"}) {
		t.Fatalf("top-level keys %v, want [crio]", got)
	}
	if got := keysOf(dig(t, m, "crio")); !slices.Equal(got, []string{"runtime"}) {
		t.Fatalf("crio.* keys %v, want [runtime]", got)
	}
	if got := keysOf(dig(t, m, "crio", "runtime")); !slices.Equal(got, []string{"runtimes"}) {
		t.Fatalf("crio.runtime.* keys %v, want [runtimes]", got)
	}
}

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

type runtimeClass struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Handler    string `yaml:"handler"`
	Scheduling *struct {
		NodeSelector map[string]string `yaml:"nodeSelector"`
	} `yaml:"scheduling"`
}

// dnsLabel is Kubernetes' rule for RuntimeClass handlers (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestRuntimeClass(t *testing.T) {
	const path = "kubernetes/runtimeclass.yaml"
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.KnownFields(true)
	var rc runtimeClass
	if err := dec.Decode(&rc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var extra runtimeClass
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("%s holds more than one document", path)
	}
	if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" {
		t.Errorf("apiVersion/kind = %s/%s, want node.k8s.io/v1/RuntimeClass", rc.APIVersion, rc.Kind)
	}
	if rc.Metadata.Name != handler {
		t.Errorf("metadata.name = %q, want %q (pods say runtimeClassName: %s)", rc.Metadata.Name, handler, handler)
	}
	if !dnsLabel.MatchString(rc.Handler) || len(rc.Handler) > 63 {
		t.Errorf("handler %q is not a DNS label: the API server refuses it", rc.Handler)
	}
	// One manifest for both engines: the handler must be the runtime name
	// in the containerd snippet and in the CRI-O drop-in.
	var ctrd containerdConfig
	decodeStrict(t, containerdSnippet, readFile(t, containerdSnippet), &ctrd)
	if _, ok := ctrd.Plugins.CRI.Containerd.Runtimes[rc.Handler]; !ok {
		t.Errorf("handler %q is not a runtime of %s", rc.Handler, containerdSnippet)
	}
	var crio crioConfig
	decodeStrict(t, crioDropIn, readFile(t, crioDropIn), &crio)
	if _, ok := crio.Crio.Runtime.Runtimes[rc.Handler]; !ok {
		t.Errorf("handler %q is not a runtime of %s", rc.Handler, crioDropIn)
	}
	if rc.Scheduling != nil {
		for k, v := range rc.Scheduling.NodeSelector {
			if k == "" || v == "" {
				t.Errorf("scheduling.nodeSelector has an empty key or value: %q: %q", k, v)
			}
		}
	}
}
