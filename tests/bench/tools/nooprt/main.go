// Command nooprt is the benchmarks' stand-in for runc: installed under the
// name "runc", it keeps runc's bookkeeping that cfs-runtime relies on and
// does nothing else, so that a create + delete cycle through it costs what
// the wrapper in front of it costs, without runc's own cost and noise.
//
//	runc [--root DIR] create [--bundle DIR] ID
//	    writes DIR/ID/state.json (what runtimestate.Knows looks for: the container
//	    is known, as after a real create) and exits 0
//	runc [--root DIR] delete [--force] ID
//	    runs the bundle's poststop hooks as runc does when it destroys a
//	    created container (argv, env, the state on stdin), then removes
//	    DIR/ID
//	runc [--root DIR] state ID
//	    exits 0 if the container is known, else 1
//
// Anything else exits 0. Only the flags the benchmarks pass are read.
//
// If $CFS_BENCH_NOOP_LOG names a file, one line is appended to it per run:
//
//	COMMAND START_NS CPU_NS HOOKS HOOK_WALL_NS HOOK_CPU_NS
//
// START_NS is CLOCK_MONOTONIC when main began, CPU_NS the process's CPU
// time (user + sys) at that moment. The CPU time of a process survives
// exec, so CPU_NS is what the caller that exec'd this program (cfs-runtime
// or the bare shim) spent, plus this program's own start. HOOK_* are the
// wall and CPU time of the poststop hooks it ran (0 if none).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func nowNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func cpuNs(ru *syscall.Rusage) int64 {
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "nooprt: "+format+"\n", a...)
	os.Exit(1)
}

type record struct {
	cmd               string
	start, cpu        int64
	hooks             int
	hookWall, hookCPU int64
}

func main() {
	rec := record{start: nowNs()}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	rec.cpu = cpuNs(&ru)

	root := "/run/runc"
	args := os.Args[1:]
	// global options, then the command
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		if v, rest, ok := opt(a, args, "--root", "-root"); ok {
			root, args = v, rest
		} else if _, rest, ok := opt(a, args, "--log", "--log-format"); ok {
			args = rest
		}
	}
	if len(args) == 0 {
		os.Exit(0)
	}
	rec.cmd, args = args[0], args[1:]
	bundle, id := ".", ""
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		if v, rest, ok := opt(a, args, "--bundle", "-b"); ok {
			bundle, args = v, rest
		} else if !strings.HasPrefix(a, "-") {
			id = a
		}
	}
	dir := filepath.Join(root, id)
	switch rec.cmd {
	case "create":
		create(dir, bundle, id)
	case "delete":
		deleteContainer(&rec, dir, id)
	case "state":
		if _, err := os.Stat(filepath.Join(dir, "state.json")); err != nil {
			os.Exit(1)
		}
	}
	if p := os.Getenv("CFS_BENCH_NOOP_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fail("%v", err)
		}
		fmt.Fprintf(f, "%s %d %d %d %d %d\n", rec.cmd, rec.start, rec.cpu, rec.hooks, rec.hookWall, rec.hookCPU)
		if err := f.Close(); err != nil {
			fail("%v", err)
		}
	}
}

// opt reads option a if it is one of names, given as "NAME VALUE" (the
// value is the first of args) or "NAME=VALUE"; it returns the value and
// the arguments after it.
func opt(a string, args []string, names ...string) (string, []string, bool) {
	for _, n := range names {
		if a == n {
			if len(args) == 0 {
				fail("%s needs a value", n)
			}
			return args[0], args[1:], true
		}
		if v, ok := strings.CutPrefix(a, n+"="); ok {
			return v, args, true
		}
	}
	return "", args, false
}

type state struct {
	OCIVersion string `json:"ociVersion"`
	ID         string `json:"id"`
	Status     string `json:"status"`
	Bundle     string `json:"bundle"`
}

func create(dir, bundle, id string) {
	if id == "" {
		fail("create: no container id")
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		fail("%v", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		fail("%v", err)
	}
	b, _ := json.Marshal(state{OCIVersion: "1.0.2", ID: id, Status: "created", Bundle: abs})
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		fail("%v", err)
	}
}

type hook struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

func deleteContainer(rec *record, dir, id string) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		fail("delete: container %q does not exist", id)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		fail("delete: %s: %v", dir, err)
	}
	cfg, err := os.ReadFile(filepath.Join(st.Bundle, "config.json"))
	if err != nil {
		fail("delete: %v", err)
	}
	var spec struct {
		Hooks struct {
			Poststop []hook `json:"poststop"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(cfg, &spec); err != nil {
		fail("delete: %s: %v", st.Bundle, err)
	}
	st.Status = "stopped"
	stdin, _ := json.Marshal(st)
	for _, h := range spec.Hooks.Poststop {
		t0 := nowNs()
		cpu, err := runHook(h, stdin)
		rec.hookWall += nowNs() - t0
		rec.hookCPU += cpu
		rec.hooks++
		if err != nil {
			fail("delete: poststop hook %s: %v", h.Path, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		fail("%v", err)
	}
}

// runHook runs one hook as runc does (its argv and env or, without one,
// runc's, the state on stdin), waits for it and returns its CPU time.
func runHook(h hook, stdin []byte) (int64, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, err
	}
	// the state is far smaller than a pipe's buffer: written before the
	// hook starts
	_, err := syscall.Write(p[1], stdin)
	syscall.Close(p[1])
	if err != nil {
		syscall.Close(p[0])
		return 0, err
	}
	argv := h.Args
	if len(argv) == 0 {
		argv = []string{h.Path}
	}
	env := h.Env
	if env == nil { // runc's exec.Cmd: no env in the hook is runc's own
		env = os.Environ()
	}
	pid, err := syscall.ForkExec(h.Path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(p[0]), 1, 2},
	})
	syscall.Close(p[0])
	if err != nil {
		return 0, err
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return cpuNs(&ru), fmt.Errorf("exited %v", ws)
	}
	return cpuNs(&ru), nil
}
