//go:build linux

package mount

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelError is a failed mount step with the messages the kernel left in
// the filesystem context log (fsopen(2)): the kernel's own reason, such as
// "erofs: cannot find valid erofs superblock", which mount(2) only prints
// to dmesg. It matches its Errno with errors.Is.
type KernelError struct {
	Op    string     // what was tried: "fsconfig lowerdir+=/run/...", "fsmount", ...
	Errno unix.Errno // what the kernel returned
	Log   []string   // the fs context log, "e "/"w "/"i " prefixes removed
}

func (e *KernelError) Error() string {
	s := e.Op + ": " + e.Errno.Error()
	if len(e.Log) > 0 {
		s += " (" + strings.Join(e.Log, "; ") + ")"
	}
	return s
}

func (e *KernelError) Unwrap() error { return e.Errno }

// unknownParameter reports whether the kernel refused a parameter it does
// not know, which is how a filesystem says a feature is missing
// (fs/fs_context.c: "%s: Unknown parameter '%s'").
func (e *KernelError) unknownParameter() bool {
	if e.Errno != unix.EINVAL {
		return false
	}
	for _, l := range e.Log {
		if strings.Contains(l, "Unknown parameter") {
			return true
		}
	}
	return false
}

// fsContext is an fsopen(2) filesystem context being configured.
type fsContext struct {
	fd     int
	fstype string
}

func openFS(fstype string) (*fsContext, error) {
	fd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	return &fsContext{fd: fd, fstype: fstype}, nil
}

func (c *fsContext) close() { unix.Close(c.fd) }

// log drains the context's message log.
func (c *fsContext) log() []string {
	var msgs []string
	buf := make([]byte, 4096)
	for range 32 {
		n, err := unix.Read(c.fd, buf)
		if err != nil || n <= 0 {
			break
		}
		m := strings.TrimSpace(string(buf[:n]))
		if len(m) > 2 && m[1] == ' ' && strings.ContainsRune("ewi", rune(m[0])) {
			m = m[2:]
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func (c *fsContext) fail(op string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &KernelError{Op: op, Errno: errno, Log: c.log()}
}

func (c *fsContext) setString(key, value string) error {
	if err := unix.FsconfigSetString(c.fd, key, value); err != nil {
		return c.fail(fmt.Sprintf("%s: fsconfig %s=%s", c.fstype, key, value), err)
	}
	return nil
}

func (c *fsContext) setFlag(key string) error {
	if err := unix.FsconfigSetFlag(c.fd, key); err != nil {
		return c.fail(fmt.Sprintf("%s: fsconfig %s", c.fstype, key), err)
	}
	return nil
}

func (c *fsContext) create() error {
	if err := unix.FsconfigCreate(c.fd); err != nil {
		return c.fail(c.fstype+": fsconfig create", err)
	}
	return nil
}

// fsmount returns a detached mount of the created superblock. Closing the
// descriptor before it is attached destroys the mount.
func (c *fsContext) fsmount(attrs int) (int, error) {
	fd, err := unix.Fsmount(c.fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, c.fail(c.fstype+": fsmount", err)
	}
	return fd, nil
}

// attach moves the detached mount mfd onto target and closes mfd.
func attach(mfd int, target string) error {
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount onto %s: %w", target, err)
	}
	return nil
}
