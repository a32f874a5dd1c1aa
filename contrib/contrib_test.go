// Package contrib_test checks the integration files under contrib/ that no
// test suite can run for real here: the CRI-O drop-in (CRI-O is not packaged
// for Debian 12), the RuntimeClass manifest, and the containerd drop-in
// (imported into Debian 12's stock config.toml, as tests/bats/containerd.bats
// runs it with containerd 1.6), crictl's configuration and examples.
package contrib_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	Version int `toml:"version"`
	Plugins struct {
		CRI struct {
			SandboxImage        string `toml:"sandbox_image"`
			RestrictOOMScoreAdj bool   `toml:"restrict_oom_score_adj"`
			CNI                 struct {
				BinDir  string `toml:"bin_dir"`
				ConfDir string `toml:"conf_dir"`
			} `toml:"cni"`
			Containerd struct {
				DefaultRuntimeName string                       `toml:"default_runtime_name"`
				Runtimes           map[string]containerdRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"io.containerd.grpc.v1.cri"`
	} `toml:"plugins"`
}

// containerdDropIn is installed as /etc/containerd/conf.d/cfs-runtime.toml
// and read through config.toml's imports.
const containerdDropIn = "containerd/cfs-runtime.toml"

// debianContainerdConfig is what Debian 12's containerd package installs as
// /etc/containerd/config.toml, comments left out; tests/bats/containerd.bats
// runs containerd with it.
const debianContainerdConfig = "testdata/debian12-containerd-config.toml"

func TestContainerdDropIn(t *testing.T) {
	data := readFile(t, containerdDropIn)
	var cfg containerdConfig
	decodeStrict(t, containerdDropIn, data, &cfg)
	if cfg.Version != 2 {
		t.Errorf("version = %d, want 2 (containerd 1.6 and 1.7 read imported files of version 2)", cfg.Version)
	}
	cri := cfg.Plugins.CRI
	rts := cri.Containerd.Runtimes
	if got := slices.Sorted(maps.Keys(rts)); !slices.Equal(got, []string{handler, "runc"}) {
		t.Fatalf("%s defines runtimes %v, want [%s runc]", containerdDropIn, got, handler)
	}
	// Naming any runtime drops containerd's built-in runc entry: the
	// default handler must be restated, or the CRI plugin does not start.
	if cri.Containerd.DefaultRuntimeName != "runc" || rts["runc"].Type != "io.containerd.runc.v2" {
		t.Errorf("default_runtime_name = %q, runtimes.runc.runtime_type = %q: want runc, io.containerd.runc.v2",
			cri.Containerd.DefaultRuntimeName, rts["runc"].Type)
	}
	rt := rts[handler]
	if rt.Type != "io.containerd.runc.v2" {
		t.Errorf("runtime_type = %q, want io.containerd.runc.v2 (the runc shim, which runs BinaryName)", rt.Type)
	}
	if rt.Path != "" || rt.Engine != "" || rt.Root != "" {
		t.Errorf("runtime_path/runtime_engine/runtime_root = %q/%q/%q: the runc v2 shim ignores them; set options.BinaryName", rt.Path, rt.Engine, rt.Root)
	}
	if rt.Options == nil || rt.Options.BinaryName != installedBinary {
		t.Errorf("options.BinaryName = %+v, want %q", rt.Options, installedBinary)
	}
	if rt.Options != nil && rts["runc"].Options != nil && rt.Options.SystemdCgroup != rts["runc"].Options.SystemdCgroup {
		t.Errorf("SystemdCgroup differs between runc and %s: the kubelet has one cgroup driver", handler)
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
	if len(rts["runc"].PodAnnotations)+len(rts["runc"].ContainerAnnotations) != 0 {
		t.Error("the runc handler passes annotations: only cfs needs them")
	}
	// containerd's default, which docs/kubernetes.md tells offline nodes to
	// import; tests/bats/containerd.bats tags its pause image so.
	if cri.SandboxImage != "registry.k8s.io/pause:3.6" {
		t.Errorf("sandbox_image = %q, want containerd 1.6's default registry.k8s.io/pause:3.6", cri.SandboxImage)
	}
	if cri.RestrictOOMScoreAdj {
		t.Error("restrict_oom_score_adj = true is for a containerd without CAP_SYS_RESOURCE only: leave it commented")
	}
	if !bytes.Contains(data, []byte("\n  # restrict_oom_score_adj = true\n")) {
		t.Error("the commented restrict_oom_score_adj = true line (tests/bats/containerd.bats uncomments it) is missing")
	}
}

// The drop-in must change nothing outside the CRI plugin: an imported
// file's top-level keys (root, state, grpc, ...) override config.toml's.
func TestContainerdDropInOnlyCRI(t *testing.T) {
	var m map[string]any
	if err := toml.Unmarshal(readFile(t, containerdDropIn), &m); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(m); !slices.Equal(got, []string{"plugins", "version"}) {
		t.Fatalf("top-level keys %v, want [plugins version]", got)
	}
	if got := keysOf(dig(t, m, "plugins")); !slices.Equal(got, []string{"io.containerd.grpc.v1.cri"}) {
		t.Fatalf("plugins %v, want only io.containerd.grpc.v1.cri", got)
	}
}

// importContainerd merges an imported file into config.toml as containerd
// 1.6 and 1.7 do (services/server/config mergeConfig): top-level keys are
// overridden, and each plugin's section is replaced whole, not merged.
func importContainerd(main, imported map[string]any) map[string]any {
	merged := maps.Clone(main)
	for k, v := range imported {
		if k != "plugins" {
			merged[k] = v
		}
	}
	plugins, _ := main["plugins"].(map[string]any)
	plugins = maps.Clone(plugins)
	if plugins == nil {
		plugins = map[string]any{}
	}
	if from, ok := imported["plugins"].(map[string]any); ok {
		maps.Copy(plugins, from)
	}
	merged["plugins"] = plugins
	return merged
}

// Debian's stock config.toml importing the drop-in keeps its CNI
// directories (the drop-in restates them: its CRI section replaces the stock
// one) and its other plugins, and gains both handlers.
func TestContainerdDropInOnDebianConfig(t *testing.T) {
	var stock, dropIn map[string]any
	if err := toml.Unmarshal(readFile(t, debianContainerdConfig), &stock); err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(readFile(t, containerdDropIn), &dropIn); err != nil {
		t.Fatal(err)
	}
	merged := importContainerd(stock, dropIn)
	if merged["version"] != int64(2) {
		t.Errorf("version = %v after importing, want 2", merged["version"])
	}
	stockCNI := dig(t, stock, "plugins", "io.containerd.grpc.v1.cri", "cni")
	cni := dig(t, merged, "plugins", "io.containerd.grpc.v1.cri", "cni")
	for _, k := range []string{"bin_dir", "conf_dir"} {
		if cni[k] != stockCNI[k] {
			t.Errorf("cni.%s = %v after importing, want Debian's %v", k, cni[k], stockCNI[k])
		}
	}
	if got, want := dig(t, merged, "plugins", "io.containerd.internal.v1.opt")["path"], "/var/lib/containerd/opt"; got != want {
		t.Errorf("opt plugin path = %v after importing, want %v", got, want)
	}
	rts := dig(t, merged, "plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")
	for _, name := range []string{"runc", handler} {
		if got := dig(t, rts, name)["runtime_type"]; got != "io.containerd.runc.v2" {
			t.Errorf("runtimes.%s.runtime_type = %v after importing", name, got)
		}
	}
}

// crictl's configuration (pkg/common/file.go's Config keys) for containerd's
// default socket.
func TestCrictlYAML(t *testing.T) {
	const path = "containerd/crictl.yaml"
	var c struct {
		RuntimeEndpoint   string `yaml:"runtime-endpoint"`
		ImageEndpoint     string `yaml:"image-endpoint"`
		Timeout           int    `yaml:"timeout"`
		Debug             bool   `yaml:"debug"`
		PullImageOnCreate bool   `yaml:"pull-image-on-create"`
		DisablePullOnRun  bool   `yaml:"disable-pull-on-run"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	const sock = "unix:///run/containerd/containerd.sock"
	if c.RuntimeEndpoint != sock || c.ImageEndpoint != sock {
		t.Errorf("runtime-endpoint, image-endpoint = %q, %q, want %q", c.RuntimeEndpoint, c.ImageEndpoint, sock)
	}
	if c.Timeout <= 0 {
		t.Errorf("timeout = %d, want a positive number of seconds", c.Timeout)
	}
}

// The example pod and container: a host-network pod (no CNI), a container
// whose annotations the user fills with `cfs-runtime sign --format json`.
func TestCrictlExamples(t *testing.T) {
	var pod struct {
		Metadata struct {
			Name, Namespace, UID string
			Attempt              int
		} `json:"metadata"`
		LogDirectory string `json:"log_directory"`
		Linux        struct {
			SecurityContext struct {
				NamespaceOptions struct {
					Network int `json:"network"`
				} `json:"namespace_options"`
			} `json:"security_context"`
		} `json:"linux"`
	}
	decodeJSONStrict(t, "containerd/pod.json", &pod)
	if pod.Metadata.Name == "" || pod.Metadata.Namespace == "" || pod.Metadata.UID == "" {
		t.Errorf("pod metadata %+v: crictl needs name, namespace and uid", pod.Metadata)
	}
	// runtime.v1.NamespaceMode NODE = 2: the host's network, so no CNI.
	if n := pod.Linux.SecurityContext.NamespaceOptions.Network; n != 2 {
		t.Errorf("namespace_options.network = %d, want 2 (NODE: host network, no CNI plugin needed)", n)
	}
	var ctr struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Image struct {
			Image string `json:"image"`
		} `json:"image"`
		LogPath     string            `json:"log_path"`
		Annotations map[string]string `json:"annotations"`
	}
	decodeJSONStrict(t, "containerd/ctr.json", &ctr)
	if ctr.Metadata.Name == "" || ctr.Image.Image == "" {
		t.Errorf("container metadata.name %q, image %q: both are required", ctr.Metadata.Name, ctr.Image.Image)
	}
	if ctr.Annotations == nil {
		t.Error("ctr.json has no annotations object to put the signature in")
	}
}

func decodeJSONStrict(t *testing.T, path string, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
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
	// in the containerd drop-in and in the CRI-O drop-in.
	var ctrd containerdConfig
	decodeStrict(t, containerdDropIn, readFile(t, containerdDropIn), &ctrd)
	if _, ok := ctrd.Plugins.CRI.Containerd.Runtimes[rc.Handler]; !ok {
		t.Errorf("handler %q is not a runtime of %s", rc.Handler, containerdDropIn)
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

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
