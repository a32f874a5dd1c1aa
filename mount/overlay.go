//go:build linux

package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// layerAppend caches whether overlayfs takes layers one by one with
// lowerdir+/datadir+ (Linux ≥ 6.8).
var layerAppend atomic.Int32

// errNoLayerAppend: overlayfs refused lowerdir+ or datadir+.
var errNoLayerAppend = errors.New("overlayfs does not support lowerdir+/datadir+")

// overlaySpec is one composefs overlay: the EROFS as the only lower layer,
// the object store as data-only lower layer, and an upper layer unless
// read-only.
type overlaySpec struct {
	lower, data string
	upper, work string // both empty: read-only, lower layers only
	target      string
	verity      bool
}

func (s overlaySpec) readOnly() bool { return s.upper == "" }

// options are the overlay parameters in the order they are set.
func (s overlaySpec) options(legacy bool) [][2]string {
	opts := [][2]string{{"metacopy", "on"}, {"redirect_dir", "on"}}
	if s.verity {
		opts = append(opts, [2]string{"verity", "require"})
	}
	if legacy {
		opts = append(opts, [2]string{"lowerdir", s.lower + "::" + s.data})
	} else {
		opts = append(opts, [2]string{"lowerdir+", s.lower}, [2]string{"datadir+", s.data})
	}
	if !s.readOnly() {
		opts = append(opts, [2]string{"upperdir", s.upper}, [2]string{"workdir", s.work})
	}
	return opts
}

// optionString renders options the way mount(8) -o and mountinfo show them.
func optionString(opts [][2]string, ro bool) string {
	var parts []string
	if ro {
		parts = append(parts, "ro")
	}
	for _, o := range opts {
		parts = append(parts, o[0]+"="+o[1])
	}
	return strings.Join(parts, ",")
}

// overlaySource is the overlay's source in mountinfo, as mount.composefs
// names it.
const overlaySource = "composefs"

// Overlay syntaxes recorded in State.OverlaySyntax.
const (
	SyntaxFsconfig = "fsconfig" // fsopen/fsconfig lowerdir+ datadir+, fsmount, move_mount
	SyntaxLegacy   = "mount(2)" // mount(2) with lowerdir=EROFS::OBJECTS
)

// mountOverlay mounts s on s.target: through the new mount API with
// lowerdir+/datadir+ (no escaping of paths, the kernel's reason in the
// error), falling back to mount(2) with lowerdir=LOWER::DATA on kernels
// that lack lowerdir+ (6.5 to 6.7). It returns the syntax used and the
// options as mount -o would take them.
func mountOverlay(s overlaySpec, log *slog.Logger) (syntax, options string, err error) {
	if layerAppend.Load() != unsupported {
		opts := s.options(false)
		err := fsmountOverlay(s, opts)
		if err == nil {
			layerAppend.Store(supported)
			return SyntaxFsconfig, optionString(opts, s.readOnly()), nil
		}
		if !errors.Is(err, errNoLayerAppend) {
			return "", "", err
		}
		layerAppend.Store(unsupported)
		log.Debug("overlayfs without lowerdir+/datadir+, falling back to lowerdir=LOWER::DATA", "err", err)
	}
	opts := s.options(true)
	data := optionString(opts, false)
	for _, p := range []string{s.lower, s.data, s.upper, s.work} {
		// mount(2) options are split at commas and overlay layer lists at
		// colons; backslash escapes exist but differ between kernels.
		if strings.ContainsAny(p, ",:\\") {
			return "", "", fmt.Errorf("overlay: %q: %w", p, ErrPathSyntax)
		}
	}
	var flags uintptr
	if s.readOnly() {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(overlaySource, s.target, "overlay", flags, data); err != nil {
		hint := ""
		if errors.Is(err, unix.EINVAL) {
			hint = " (the kernel log says why; data-only lower layers need Linux ≥ 6.5, verity= 6.6)"
		}
		return "", "", fmt.Errorf("mount overlay -o %s on %s: %w%s", data, s.target, err, hint)
	}
	return SyntaxLegacy, optionString(opts, s.readOnly()), nil
}

func fsmountOverlay(s overlaySpec, opts [][2]string) error {
	c, err := openFS("overlay")
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.setString("source", overlaySource); err != nil {
		return err
	}
	if s.readOnly() {
		if err := c.setFlag("ro"); err != nil {
			return err
		}
	}
	if err := setOverlayOptions(c, opts); err != nil {
		return err
	}
	if err := c.create(); err != nil {
		var ke *KernelError
		if errors.As(err, &ke) && ke.Errno == unix.EINVAL && len(ke.Log) == 0 && legacyOverlayContext() {
			return fmt.Errorf("%w: %w", ErrOverlayNoDataOnly, err)
		}
		return err
	}
	attrs := 0
	if s.readOnly() {
		attrs = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := c.fsmount(attrs)
	if err != nil {
		return err
	}
	if err := attach(mfd, s.target); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	return nil
}

// setOverlayOptions sets opts on an overlay context; a parameter the
// kernel does not know becomes the error for the missing feature.
func setOverlayOptions(c *fsContext, opts [][2]string) error {
	for _, o := range opts {
		err := c.setString(o[0], o[1])
		if err == nil {
			continue
		}
		var ke *KernelError
		if errors.As(err, &ke) && ke.unknownParameter() {
			switch o[0] {
			case "verity":
				return fmt.Errorf("%w: %w", ErrOverlayNoVerity, err)
			case "lowerdir+", "datadir+":
				return fmt.Errorf("%w: %w", errNoLayerAppend, err)
			case "metacopy", "redirect_dir":
				return fmt.Errorf("%w: %w", ErrOverlayNoMetacopy, err)
			}
		}
		return err
	}
	return nil
}

// legacyOverlayContext reports whether overlayfs predates its own
// fs_context parameters (Linux < 6.5): then fsconfig accepts any key and
// only the mount fails, with the reason in dmesg. Those kernels have no
// data-only lower layers.
func legacyOverlayContext() bool {
	c, err := openFS("overlay")
	if err != nil {
		return false
	}
	defer c.close()
	return unix.FsconfigSetString(c.fd, "cfs_no_such_parameter", "x") == nil
}
