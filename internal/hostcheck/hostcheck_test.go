//go:build linux

package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
	"golang.org/x/sys/unix"
)

var paths = Paths{Config: "/nonexistent/config.toml", Policy: "/etc/cfs-runtime/policy.toml"}

const risk = ` or set enforcement = "userspace" in /etc/cfs-runtime/policy.toml (weaker: each file is hashed once before the container starts; a change to the store after that is not detected)`

func yes() mount.Feature { return mount.Feature{Supported: true} }

// good is a host with everything: what the VM's kernel on ext4 -O verity has.
func good() Host {
	return Host{Store: "/s", Probed: "/s/objects", FSType: "ext4", KernelVerity: true, KernelKnown: true,
		Features: mount.Features{MountAPI: yes(), FileBackedEROFS: yes(), LoopDevice: yes(), OverlayDataOnly: yes(), OverlayLayerAppend: yes(), OverlayVerity: yes()}}
}

func TestEnforceable(t *testing.T) {
	noKernel := fmt.Errorf("fs-verity in /s/objects: %w", &verity.UnsupportedError{FSType: "ext4", Reason: verity.ErrKernelNoVerity})
	noFeature := fmt.Errorf("fs-verity in /s/objects: %w", &verity.UnsupportedError{FSType: "ext4", Device: "/dev/vdb", Reason: verity.ErrFeatureDisabled, Errno: unix.EOPNOTSUPP})
	noF2fs := fmt.Errorf("fs-verity in /s/objects: %w", &verity.UnsupportedError{FSType: "f2fs", Device: "/dev/vdc", Reason: verity.ErrFeatureDisabled, Errno: unix.EOPNOTSUPP})
	noOverlay := fmt.Errorf("%w: overlay: fsconfig verity=require: invalid argument", mount.ErrOverlayNoVerity)
	for _, tc := range []struct {
		name  string
		edit  func(*Host)
		level attest.Enforcement
		want  string
	}{
		{"all there", func(*Host) {}, attest.EnforceRequire, ""},
		{"no kernel fs-verity", func(h *Host) { h.Verity = noKernel }, attest.EnforceRequire,
			"cannot enforce fs-verity (enforcement require) in store /s: fs-verity in /s/objects: kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY," + risk},
		{"no kernel fs-verity, measure", func(h *Host) { h.Verity = noKernel }, attest.EnforceMeasure,
			"cannot enforce fs-verity (enforcement measure) in store /s: fs-verity in /s/objects: kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY," + risk},
		{"no kernel fs-verity, userspace", func(h *Host) { h.Verity = noKernel }, attest.EnforceUserspace, ""},
		{"ext4 without the feature", func(h *Host) { h.Verity = noFeature }, attest.EnforceRequire,
			"cannot enforce fs-verity (enforcement require) in store /s: fs-verity in /s/objects: ext4 on /dev/vdb lacks the verity feature (tune2fs -O verity /dev/vdb): run tune2fs -O verity /dev/vdb (with the filesystem unmounted), or move store_dir (in /nonexistent/config.toml, which does not exist yet) to ext4 with the verity feature, btrfs or f2fs," + risk},
		{"f2fs without the feature", func(h *Host) { h.Verity = noF2fs }, attest.EnforceMeasure,
			"cannot enforce fs-verity (enforcement measure) in store /s: fs-verity in /s/objects: f2fs on /dev/vdc lacks the verity feature (fsck.f2fs -O verity /dev/vdc): run fsck.f2fs -O verity /dev/vdc (with the filesystem unmounted), or move store_dir (in /nonexistent/config.toml, which does not exist yet) to ext4 with the verity feature, btrfs or f2fs," + risk},
		{"overlayfs without verity=", func(h *Host) { h.Features.OverlayVerity = mount.Feature{Err: noOverlay} }, attest.EnforceRequire,
			`cannot enforce fs-verity (enforcement require) in store /s: overlayfs does not support verity= (needs Linux ≥ 6.6): overlay: fsconfig verity=require: invalid argument: boot a kernel with overlayfs verity= (Linux ≥ 6.6), or set enforcement = "measure" in /etc/cfs-runtime/policy.toml (weaker: each object is measured once before mounting; an object swapped after that is not detected)`},
		{"overlayfs without verity=, measure", func(h *Host) { h.Features.OverlayVerity = mount.Feature{Err: noOverlay} }, attest.EnforceMeasure, ""},
		{"no data-only layers", func(h *Host) { h.Features.OverlayDataOnly = mount.Feature{Err: unix.EINVAL} }, attest.EnforceUserspace,
			"cannot enforce fs-verity (enforcement userspace) in store /s: overlayfs does not support data-only lower layers (needs Linux ≥ 6.5): invalid argument: a kernel with the new mount API, EROFS (or loop devices) and overlayfs data-only lower layers: Linux ≥ 6.5 (see docs/kernel.md)"},
		{"not root", func(h *Host) { h.UID = 1000 }, attest.EnforceUserspace,
			"cannot enforce fs-verity (enforcement userspace) in store /s: running as uid 1000: run as root: the kernel's features can only be tried as root"},
	} {
		h := good()
		tc.edit(&h)
		err := h.Enforceable(tc.level, paths)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrCannotEnforce) {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

// On this host, for real: a kernel without fs-verity (the project's test
// host) cannot enforce require, and says so; userspace works.
func TestProbeThisHost(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	h := Probe(dir + "/store")
	if h.Probed != dir || h.Store != dir+"/store" {
		t.Errorf("probed %s for store %s", h.Probed, h.Store)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("probe left %v", names)
	}
	if err := h.Enforceable(attest.EnforceUserspace, paths); err != nil {
		t.Error(err)
	}
	if has, known := verity.KernelSupport(); known && !has {
		err := h.Enforceable(attest.EnforceRequire, paths)
		if want := "cannot enforce fs-verity (enforcement require) in store " + dir + "/store: fs-verity in " + dir + ": kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY," + risk; err == nil || err.Error() != want {
			t.Errorf("require:\n got %v\nwant %s", err, want)
		}
	} else if err := h.Enforceable(attest.EnforceRequire, paths); h.FSType == "ext4" && err != nil {
		t.Logf("require: %v", err)
	}
}
