//go:build linux

// Package hostcheck tells whether this host and a store can enforce a
// trust policy's enforcement level, from the kernel's features tried for
// real (mount.Probe, verity.Probe), and says what to change when they
// cannot. create's refusal, `cfs-runtime policy check` and `cfs-runtime
// doctor` word it the same way.
package hostcheck

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ErrCannotEnforce: the host or the store lacks what the level needs.
var ErrCannotEnforce = errors.New("cannot enforce fs-verity")

// Host is what trying the kernel's features on the store's filesystem
// found.
type Host struct {
	// Store is the store directory; Probed where the features were tried:
	// the store's objects directory, or the nearest directory above it
	// that exists (a store not made yet).
	Store, Probed string
	// FSType is the filesystem of Probed ("ext4", "tmpfs", ...).
	FSType string
	// KernelVerity: the kernel was built with fs-verity (KernelKnown:
	// that could be told).
	KernelVerity, KernelKnown bool
	// Verity is nil when fs-verity could be enabled on a file in Probed,
	// else why not (an error matching verity.ErrNotSupported).
	Verity   error
	Features mount.Features
	// UID is the user the features were tried as: only root can.
	UID int
}

// Probe tries the features in the store's objects directory (or the
// nearest existing directory above it). It needs root and a writable
// directory; nothing is left behind.
func Probe(store string) Host {
	h := Host{Store: store, Probed: existingDir(filepath.Join(store, "objects")), UID: os.Geteuid()}
	h.KernelVerity, h.KernelKnown = verity.KernelSupport()
	fstype, err := verity.FilesystemType(h.Probed)
	if err != nil {
		fstype = "unknown"
	}
	h.FSType = fstype
	h.Verity = verity.Probe(h.Probed)
	h.Features = mount.Probe(h.Probed)
	return h
}

// existingDir returns dir or the nearest directory above it that exists.
func existingDir(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
		if d == filepath.Dir(d) {
			return d
		}
	}
}

// Paths name the files a fix is made in.
type Paths struct {
	Config, Policy string
}

// userspaceRisk is what enforcement = "userspace" gives up.
const userspaceRisk = `(weaker: each file is hashed once before the container starts; a change to the store after that is not detected)`

// VerityFix says what to change when fs-verity is unusable in the store
// (err as verity.Probe returns it) at an enforcement level that needs it.
func VerityFix(err error, p Paths) string {
	return VerityRemedy(err, p) + fmt.Sprintf(`, or set enforcement = "userspace" in %s %s`, p.Policy, userspaceRisk)
}

// VerityRemedy is VerityFix without the weaker level: what gives the
// store fs-verity.
func VerityRemedy(err error, p Paths) string {
	var ue *verity.UnsupportedError
	errors.As(err, &ue)
	moveStore := fmt.Sprintf("move store_dir (%s) to ext4 with the verity feature, btrfs or f2fs", configName(p.Config))
	switch {
	case errors.Is(err, verity.ErrKernelNoVerity):
		return "boot a kernel built with CONFIG_FS_VERITY"
	case errors.Is(err, verity.ErrFeatureDisabled):
		dev := "DEV"
		if ue != nil && ue.Device != "" {
			dev = ue.Device
		}
		tool := "tune2fs -O verity " + dev
		if ue != nil && ue.FSType == "f2fs" {
			tool = "fsck.f2fs -O verity " + dev
		}
		return fmt.Sprintf("run %s (with the filesystem unmounted), or %s", tool, moveStore)
	case errors.Is(err, verity.ErrFSNoVerity):
		if has, known := verity.KernelSupport(); known && !has {
			return "boot a kernel built with CONFIG_FS_VERITY and " + moveStore
		}
	}
	return moveStore
}

func configName(path string) string {
	if path == "" {
		return "in the configuration"
	}
	if _, err := os.Stat(path); err != nil {
		return "in " + path + ", which does not exist yet"
	}
	return "in " + path
}

// Problem is one thing the host lacks for a level.
type Problem struct {
	Level  attest.Enforcement
	Store  string
	Reason error  // what is missing
	Fix    string // what to change
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%s (enforcement %s) in store %s: %v: %s", ErrCannotEnforce, p.Level, p.Store, p.Reason, p.Fix)
}

func (p *Problem) Unwrap() []error { return []error{ErrCannotEnforce, p.Reason} }

// Enforceable returns nil when the host can enforce level with this
// store, else a *Problem saying what it lacks and what to change.
func (h Host) Enforceable(level attest.Enforcement, paths Paths) error {
	problem := func(reason error, fix string) error {
		return &Problem{Level: level, Store: h.Store, Reason: reason, Fix: fix}
	}
	if h.UID != 0 {
		return problem(fmt.Errorf("running as uid %d", h.UID), "run as root: the kernel's features can only be tried as root")
	}
	if err := h.Features.Usable(); err != nil {
		return problem(err, "a kernel with the new mount API, EROFS (or loop devices) and overlayfs data-only lower layers: Linux ≥ 6.5 (see docs/kernel.md)")
	}
	if level == attest.EnforceUserspace {
		return nil
	}
	if h.Verity != nil {
		return problem(h.Verity, VerityFix(h.Verity, paths))
	}
	if level == attest.EnforceRequire && !h.Features.OverlayVerity.Supported {
		return problem(h.Features.OverlayVerity.Err, OverlayVerityFix(paths))
	}
	return nil
}

// OverlayVerityFix says what to change when overlayfs lacks verity= at
// enforcement require.
func OverlayVerityFix(p Paths) string {
	return fmt.Sprintf(`boot a kernel with overlayfs verity= (Linux ≥ 6.6), or set enforcement = "measure" in %s (weaker: each object is measured once before mounting; an object swapped after that is not detected)`, p.Policy)
}
