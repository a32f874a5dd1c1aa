package wrapper

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// watchHandOff covers a create that the runtime rejects after cfs-runtime
// has mounted the root filesystem (say, an invalid process.cwd): runc then
// exits before it registered the container, so no poststop hook will ever
// unmount. cfs-runtime cannot wait for that itself, because it becomes the
// runtime (same PID) by exec. Instead it starts a detached watcher holding a
// pidfd of this process: `cfs-runtime cleanup --after-exit 3 ID` waits until
// the runtime exits and unmounts if the runtime does not know the container.
// A watcher that cannot be started is logged, not fatal: `delete` and
// `cfs-runtime cleanup` remain.
func watchHandOff(env *runtimeEnv) {
	self, err := os.Executable()
	if err != nil {
		env.log.Warn("no exit watcher", "err", err)
		return
	}
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		env.log.Warn("no exit watcher: pidfd_open", "err", err)
		return
	}
	pf := os.NewFile(uintptr(pidfd), "pidfd")
	defer pf.Close()
	args := []string{}
	if env.cfg.Path != "" {
		args = append(args, "--cfs-config", env.cfg.Path)
	}
	args = append(args, env.inv.GlobalArgs()...)
	args = append(args, "cleanup", "--after-exit", "3", env.start.ID)
	cmd := exec.Command(self, args...)
	cmd.Args[0] = "cfs-runtime"
	// No stdio (conmon and shims wait for EOF on theirs), its own session,
	// and the pidfd as fd 3.
	cmd.ExtraFiles = []*os.File{pf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	restore := hideInheritedFds()
	err = cmd.Start()
	restore()
	if err != nil {
		env.log.Warn("no exit watcher", "err", err)
		return
	}
	// Not waited for: after the exec the runtime is its parent.
	_ = cmd.Process.Release()
}

// hideInheritedFds marks every descriptor above stderr close-on-exec for
// the moment the watcher is started, and returns the function that undoes
// it. Descriptors the caller passed to the runtime without close-on-exec
// (--preserve-fds, conmon's sync pipes) must reach the runtime but not the
// watcher, which would hold them open for the life of the container.
func hideInheritedFds() func() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return func() {}
	}
	var marked []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err == nil {
			marked = append(marked, fd)
		}
	}
	return func() {
		for _, fd := range marked {
			flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err == nil {
				_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC)
			}
		}
	}
}

// waitExit blocks until the process behind pidfd has exited.
func waitExit(pidfd int) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}
