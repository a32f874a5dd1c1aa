package oci

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		command    string
		global     map[string]string
		flags      map[string]string
		positional []string
		handoff    []string // nil = same as argv
	}{
		{
			name:       "go-runc (containerd) create",
			argv:       []string{"--root", "/run/containerd/runc/k8s.io", "--log", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/log.json", "--log-format", "json", "create", "--bundle", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", "--pid-file", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/init.pid", "abc"},
			command:    "create",
			global:     map[string]string{"root": "/run/containerd/runc/k8s.io", "log": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/log.json", "log-format": "json"},
			flags:      map[string]string{"bundle": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", "pid-file": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/init.pid"},
			positional: []string{"abc"},
		},
		{
			name:       "conmon (podman) create",
			argv:       []string{"--systemd-cgroup", "--root=/run/runc", "--log-format=json", "--log", "/var/lib/containers/storage/overlay-containers/c1/userdata/oci-log", "create", "--bundle", "/var/lib/containers/storage/overlay-containers/c1/userdata", "--pid-file", "/run/containers/storage/overlay-containers/c1/userdata/pidfile", "--console-socket", "/tmp/conmon-term.XYZ", "--no-new-keyring", "c1"},
			command:    "create",
			global:     map[string]string{"systemd-cgroup": "true", "root": "/run/runc", "log-format": "json", "log": "/var/lib/containers/storage/overlay-containers/c1/userdata/oci-log"},
			flags:      map[string]string{"bundle": "/var/lib/containers/storage/overlay-containers/c1/userdata", "pid-file": "/run/containers/storage/overlay-containers/c1/userdata/pidfile", "console-socket": "/tmp/conmon-term.XYZ", "no-new-keyring": "true"},
			positional: []string{"c1"},
		},
		{
			name:       "conmon with runtime_supports_json",
			argv:       []string{"--log-format=json", "--log", "/var/lib/containers/storage/overlay-containers/c3/userdata/oci-log", "create", "--bundle", "/var/lib/containers/storage/overlay-containers/c3/userdata", "--pid-file", "/run/containers/storage/overlay-containers/c3/userdata/pidfile", "c3"},
			command:    "create",
			global:     map[string]string{"log-format": "json", "log": "/var/lib/containers/storage/overlay-containers/c3/userdata/oci-log"},
			flags:      map[string]string{"bundle": "/var/lib/containers/storage/overlay-containers/c3/userdata", "pid-file": "/run/containers/storage/overlay-containers/c3/userdata/pidfile"},
			positional: []string{"c3"},
		},
		{
			name:    "podman exec via conmon",
			argv:    []string{"--root=/run/runc", "exec", "-d", "--pid-file", "/tmp/p", "--process", "/tmp/proc.json", "--detach", "c1"},
			command: "exec",
			global:  map[string]string{"root": "/run/runc"},
			flags:   map[string]string{},
		},
		{
			name:       "CRI-O create with crun log prefix",
			argv:       []string{"--systemd-cgroup", "--root=/run/crun", "--log=file:/var/log/crio/c.log", "--log-level=debug", "create", "--bundle", "/run/containers/storage/overlay-containers/c2/userdata", "--pid-file", "/run/containers/storage/overlay-containers/c2/userdata/pidfile", "c2"},
			command:    "create",
			global:     map[string]string{"systemd-cgroup": "true", "root": "/run/crun", "log": "file:/var/log/crio/c.log", "log-level": "debug"},
			flags:      map[string]string{"bundle": "/run/containers/storage/overlay-containers/c2/userdata", "pid-file": "/run/containers/storage/overlay-containers/c2/userdata/pidfile"},
			positional: []string{"c2"},
		},
		{
			name:       "runtime-tools harness: run with -b and -d",
			argv:       []string{"run", "-b", "bundle", "-d", "--preserve-fds", "2", "ctr"},
			command:    "run",
			global:     map[string]string{},
			flags:      map[string]string{"bundle": "bundle", "detach": "true", "preserve-fds": "2"},
			positional: []string{"ctr"},
		},
		{
			name:       "--root create run is the run subcommand",
			argv:       []string{"--root", "create", "run", "--bundle=x", "id"},
			command:    "run",
			global:     map[string]string{"root": "create"},
			flags:      map[string]string{"bundle": "x"},
			positional: []string{"id"},
		},
		{
			name:       "single-dash long flags",
			argv:       []string{"-root", "/r", "-log-format=json", "create", "-bundle", "/b", "id"},
			command:    "create",
			global:     map[string]string{"root": "/r", "log-format": "json"},
			flags:      map[string]string{"bundle": "/b"},
			positional: []string{"id"},
		},
		{
			name:    "unknown global flags are kept for the hand-off (ParseLine refuses them)",
			argv:    []string{"--new-global", "create", "--new-thing=1", "--bundle", "/b", "id", "extra"},
			command: "create",
			global:  map[string]string{},
		},
		{
			name:       "runc moves flags after the id before it",
			argv:       []string{"create", "id", "--bundle", "/b"},
			command:    "create",
			global:     map[string]string{},
			flags:      map[string]string{"bundle": "/b"},
			positional: []string{"id"},
		},
		{
			name:       "double dash ends flags",
			argv:       []string{"run", "--", "-weird-id"},
			command:    "run",
			global:     map[string]string{},
			flags:      map[string]string{},
			positional: []string{"-weird-id"},
		},
		{
			name:    "own flag is stripped",
			argv:    []string{"--cfs-config", "/etc/x.toml", "--root", "/r", "state", "id"},
			command: "state",
			global:  map[string]string{"root": "/r"},
			flags:   map[string]string{},
			handoff: []string{"--root", "/r", "state", "id"},
		},
		{
			name:    "no arguments at all",
			argv:    []string{},
			command: "",
			global:  map[string]string{},
			flags:   map[string]string{},
			handoff: []string{},
		},
		{
			name:    "value flag missing its value at the end",
			argv:    []string{"--root"},
			command: "",
			global:  map[string]string{"root": ""},
			flags:   map[string]string{},
		},
		{
			name:    "version",
			argv:    []string{"--version"},
			command: "",
			global:  map[string]string{"version": "true"},
			flags:   map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := Parse(tc.argv)
			if inv.Command != tc.command {
				t.Errorf("command = %q, want %q", inv.Command, tc.command)
			}
			if !reflect.DeepEqual(inv.Global, tc.global) {
				t.Errorf("global = %v, want %v", inv.Global, tc.global)
			}
			if tc.positional != nil {
				// create and run: what runc starts, read by ParseLine.
				d := Runc
				if _, ok := inv.Global["log-level"]; ok {
					d = Crun
				}
				line, err := ParseLine(d, inv.Args)
				if err != nil {
					t.Fatalf("ParseLine: %v", err)
				}
				if line.Start == nil || line.Start.ID != tc.positional[0] || line.Start.Bundle != tc.flags["bundle"] {
					t.Errorf("ParseLine = %v, want id %q bundle %q", line, tc.positional[0], tc.flags["bundle"])
				}
			}
			want := tc.handoff
			if want == nil {
				want = tc.argv
			}
			if len(want) == 0 && len(inv.Args) == 0 {
				return
			}
			if !reflect.DeepEqual(inv.Args, want) {
				t.Errorf("hand-off argv = %q, want %q", inv.Args, want)
			}
		})
	}
}

func TestLog(t *testing.T) {
	inv := Parse([]string{"--log=file:/l", "--log-format", "json", "create", "-b", "rel/b", "id"})
	if got := inv.LogFile(); got != "/l" {
		t.Errorf("LogFile = %q", got)
	}
	if got := inv.LogFormat(); got != "json" {
		t.Errorf("LogFormat = %q", got)
	}
	inv = Parse([]string{"--log=journald:x", "run", "id"})
	if inv.LogFile() != "" || inv.LogFormat() != "text" {
		t.Errorf("defaults: log %q format %q", inv.LogFile(), inv.LogFormat())
	}
	if Parse([]string{"-v"}).WantsVersion() != true || Parse([]string{"exec", "-v"}).WantsVersion() {
		t.Error("WantsVersion")
	}
}
