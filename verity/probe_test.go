//go:build linux && !vmtest

package verity

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostHasVerity tells, independently of the package, whether this kernel
// was built with fs-verity, for the tests whose expectation depends on it.
func hostHasVerity() bool {
	for _, p := range []string{"/proc/sys/fs/verity", "/sys/fs/ext4/features/verity"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// fakeKernel points the package at a fake /proc and /sys: with verity true
// the kernel appears to have fs-verity (ext4 lists the feature), otherwise
// it appears to lack it. mountinfo, when not "", replaces
// /proc/self/mountinfo.
func fakeKernel(t *testing.T, verity bool, mountinfoText string) {
	t.Helper()
	dir := t.TempDir()
	oldProc, oldSys, oldMI := procVerity, sysFS, mountinfo
	t.Cleanup(func() { procVerity, sysFS, mountinfo = oldProc, oldSys, oldMI })
	procVerity = filepath.Join(dir, "proc-sys-fs-verity") // never exists
	sysFS = filepath.Join(dir, "sys-fs")
	if err := os.MkdirAll(filepath.Join(sysFS, "ext4", "features"), 0o755); err != nil {
		t.Fatal(err)
	}
	if verity {
		if err := os.WriteFile(filepath.Join(sysFS, "ext4", "features", "verity"), []byte("supported\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if mountinfoText != "" {
		mountinfo = filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(mountinfo, []byte(mountinfoText), 0o444); err != nil {
			t.Fatal(err)
		}
	}
}

// ext4Dir returns a fresh directory on an ext4 filesystem (the test's
// TMPDIR must be on ext4, as on the CI host).
func ext4Dir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Fatalf("%s is not on ext4 (f_type 0x%x); run the tests with TMPDIR on ext4", dir, st.Type)
	}
	return dir
}

// TestProbeHost: the probe's verdict for this host's kernel.
func TestProbeHost(t *testing.T) {
	dir := ext4Dir(t)
	err := Probe(dir)
	if hostHasVerity() {
		// Either usable, or the filesystem lacks the feature.
		if err != nil && !errors.Is(err, ErrFeatureDisabled) {
			t.Fatalf("Probe(%s) on a kernel with fs-verity = %v", dir, err)
		}
		return
	}
	want := "fs-verity in " + dir + ": kernel built without fs-verity"
	if err == nil || err.Error() != want {
		t.Fatalf("Probe(%s) = %v, want %q", dir, err, want)
	}
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, ErrKernelNoVerity) || errors.Is(err, ErrFeatureDisabled) {
		t.Fatalf("Probe error %v does not match the sentinels", err)
	}
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.FSType != "ext4" || ue.Reason != ErrKernelNoVerity {
		t.Fatalf("Probe error %#v", ue)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("Probe left %d files behind in %s", len(entries), dir)
	}
}

// TestProbeNoKernelSupport: a kernel without fs-verity, whatever this host
// runs, is reported as such before anything is tried.
func TestProbeNoKernelSupport(t *testing.T) {
	fakeKernel(t, false, "")
	dir := ext4Dir(t)
	err := Probe(dir)
	if want := "fs-verity in " + dir + ": kernel built without fs-verity"; err == nil || err.Error() != want {
		t.Fatalf("Probe = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrKernelNoVerity) || !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Probe error %v does not match ErrKernelNoVerity", err)
	}
}

// TestProbeFeatureMissing: on a kernel with fs-verity, an ext4 filesystem
// that answers EOPNOTSUPP lacks the verity feature, and the message names
// the device and the fix. This host's ext4 answers EOPNOTSUPP because its
// kernel lacks fs-verity, which the fake /sys hides.
func TestProbeFeatureMissing(t *testing.T) {
	if hostHasVerity() {
		t.Skip("the host kernel has fs-verity: its ext4 may accept the ioctl (covered by the vmtest tests)")
	}
	dir := ext4Dir(t)
	dev, err := exec.Command("findmnt", "-n", "-o", "SOURCE", "--target", dir).Output()
	if err != nil {
		t.Fatalf("findmnt: %v", err)
	}
	source := strings.TrimSpace(string(dev))
	fakeKernel(t, true, "")
	err = Probe(dir)
	want := "fs-verity in " + dir + ": ext4 on " + source + " lacks the verity feature (tune2fs -O verity " + source + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("Probe = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrFeatureDisabled) || !errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("Probe error %v does not match ErrFeatureDisabled/EOPNOTSUPP", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("Probe left %d files behind in %s", len(entries), dir)
	}

	// The same reason when enabling a file there.
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Enable(f)
	want = "enable fs-verity on " + f + ": ext4 on " + source + " lacks the verity feature (tune2fs -O verity " + source + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("Enable = %v, want %q", err, want)
	}
}

// TestProbeTmpfs: tmpfs has no fs-verity at all, on any kernel.
func TestProbeTmpfs(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("/dev/shm is not a tmpfs (%v, 0x%x)", err, st.Type)
	}
	dir, err := os.MkdirTemp("/dev/shm", "verity-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	err = Probe(dir)
	if want := "fs-verity in " + dir + ": tmpfs does not support fs-verity"; err == nil || err.Error() != want {
		t.Fatalf("Probe = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrFSNoVerity) || !errors.Is(err, ErrNotSupported) || errors.Is(err, ErrKernelNoVerity) {
		t.Fatalf("Probe error %v does not match ErrFSNoVerity", err)
	}
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = Enable(f)
	if want := "enable fs-verity on " + f + ": tmpfs does not support fs-verity"; err == nil || err.Error() != want {
		t.Fatalf("Enable = %v, want %q", err, want)
	}
	if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("Enable error %v lost the errno", err)
	}
	_, _, err = Measure(f)
	if !errors.Is(err, ErrFSNoVerity) {
		t.Fatalf("Measure = %v, want ErrFSNoVerity", err)
	}
}

func TestProbeMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := Probe(dir)
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotSupported) {
		t.Fatalf("Probe(missing) = %v", err)
	}
}

// TestEnableMeasureHost: on this host's kernel, Enable and Measure return
// the typed errors; IsEnabled says no.
func TestEnableMeasureHost(t *testing.T) {
	if hostHasVerity() {
		t.Skip("the host kernel has fs-verity (covered by the vmtest tests)")
	}
	f := filepath.Join(ext4Dir(t), "file")
	if err := os.WriteFile(f, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Enable(f)
	if want := "enable fs-verity on " + f + ": kernel built without fs-verity"; err == nil || err.Error() != want {
		t.Fatalf("Enable = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, ErrKernelNoVerity) || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("Enable error %v does not match the sentinels", err)
	}
	_, _, err = Measure(f)
	if want := "measure fs-verity of " + f + ": kernel built without fs-verity"; err == nil || err.Error() != want {
		t.Fatalf("Measure = %v, want %q", err, want)
	}
	if on, err := IsEnabled(f); on || err != nil {
		t.Fatalf("IsEnabled = %v, %v", on, err)
	}
	// Invalid parameters are refused before any ioctl.
	if err := Enable(f, WithBlockSize(100)); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("Enable(block size 100) = %v", err)
	}
	if err := Enable(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Enable(missing) = %v", err)
	}
}

func TestUnsupportedErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		e    *UnsupportedError
		want string
	}{
		{&UnsupportedError{FSType: "xfs", Reason: ErrFSNoVerity}, "xfs does not support fs-verity"},
		{&UnsupportedError{FSType: "overlay", Reason: ErrFSNoVerity, Errno: unix.ENOTTY}, "overlay does not support fs-verity"},
		{&UnsupportedError{FSType: "ext4", Reason: ErrKernelNoVerity}, "kernel built without fs-verity"},
		{&UnsupportedError{FSType: "ext4", Device: "/dev/vda", Reason: ErrFeatureDisabled}, "ext4 on /dev/vda lacks the verity feature (tune2fs -O verity /dev/vda)"},
		{&UnsupportedError{FSType: "f2fs", Device: "/dev/sdb1", Reason: ErrFeatureDisabled}, "f2fs on /dev/sdb1 lacks the verity feature (fsck.f2fs -O verity /dev/sdb1)"},
		{&UnsupportedError{FSType: "btrfs", Errno: unix.EOPNOTSUPP}, "fs-verity not supported on btrfs: operation not supported"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.e, ErrNotSupported) || (tc.e.Reason != nil && !errors.Is(tc.e, tc.e.Reason)) {
			t.Errorf("%q does not match its sentinels", tc.want)
		}
	}
	if got := fsTypeName(unix.XFS_SUPER_MAGIC); got != "xfs" {
		t.Errorf("fsTypeName(xfs) = %q", got)
	}
	if got := fsTypeName(0x1234); got != "filesystem 0x1234" {
		t.Errorf("fsTypeName(0x1234) = %q", got)
	}
}

func TestMountSource(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	fakeKernel(t, true, ""+
		"22 27 0:21 / /proc rw,relatime - proc proc rw\n"+
		"27 1 "+dev+" / / rw,relatime shared:1 - ext4 /dev/old rw\n"+
		"90 27 "+dev+" /sub /mnt/with\\040space rw,relatime - ext4 /dev/disk\\040one rw\n")
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := mountSource(int(f.Fd())); got != "/dev/disk one" {
		t.Fatalf("mountSource = %q, want %q", got, "/dev/disk one")
	}
	for in, want := range map[string]string{`a\040b`: "a b", `\134x`: `\x`, `no`: "no", `tail\04`: `tail\04`, `\999`: `\999`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProbeUnknownKernel: with neither /proc/sys/fs nor /sys/fs/ext4 to look
// at, the probe does not guess; on this host the ioctl then says
// EOPNOTSUPP, reported without a reason.
func TestProbeUnknownKernel(t *testing.T) {
	if hostHasVerity() {
		t.Skip("the host kernel has fs-verity: its ext4 may accept the ioctl")
	}
	dir := ext4Dir(t)
	fakeKernel(t, false, "")
	procVerity = "/nonexistent/proc/sys/fs/verity"
	sysFS = "/nonexistent/sys/fs"
	err := Probe(dir)
	want := "fs-verity in " + dir + ": fs-verity not supported on ext4: operation not supported"
	if err == nil || err.Error() != want {
		t.Fatalf("Probe = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrNotSupported) || errors.Is(err, ErrKernelNoVerity) || errors.Is(err, ErrFeatureDisabled) {
		t.Fatalf("Probe error %v matches the wrong sentinels", err)
	}
}
