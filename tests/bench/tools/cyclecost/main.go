// Command cyclecost measures what a runtime wrapper costs in a container's
// create + delete: CPU time of every process of the cycle and the wall time
// of the wrapper's own part, with the runtime replaced by nooprt (a
// stand-in named runc that keeps runc's state file and runs the poststop
// hooks, nothing else), so that runc's cost and noise are not in the
// figures.
//
//	cyclecost [-rounds N] [-warmup N] -root DIR [-base NAME] [-gone TEMPLATE] VARIANT...
//	cyclecost -calibrate
//
// A VARIANT is NAME=BINARY,BUNDLE,CONFIG[,MOUNTED[,ARG...]]: each cycle
// copies the file CONFIG to BUNDLE/config.json, runs `BINARY ARG... --root
// DIR create --bundle BUNDLE ID`, waits until every process it started has
// exited, checks that MOUNTED (if not empty) exists, runs `BINARY ARG...
// --root DIR delete ID`, waits again and checks that DIR/ID and TEMPLATE
// (if given) are gone.
// "{id}" in MOUNTED and TEMPLATE is the container id. Variants take turns
// round by round, in a rotating order.
//
// cyclecost is a child subreaper (PR_SET_CHILD_SUBREAPER): processes that
// outlive their parent (cfs-runtime's exit watcher, which its create starts
// and leaves behind when it execs the runtime) are reparented to it, and
// wait4 gives the CPU time of every process of the cycle, including those
// each one waited for (the poststop hook, which the runtime waits for). A
// process that fails stops the run with its output.
//
// Per variant and metric the output is "NAME METRIC MEDIAN Q1 Q3 MIN MAX"
// in milliseconds over the rounds; with -base, "added NAME METRIC MEDIAN
// Q1 Q3" follow: the round-by-round difference from the base variant (the
// rounds are paired, so what disturbs a whole round drops out). Metrics:
//
//	cpu          user + sys of every process of the cycle
//	wall         create_wall + delete_wall + hook_wall: the wrapper's own part
//	create_wall  create: from the fork of BINARY to the runtime's start
//	create_cpu   CPU time of the create process up to the runtime's start
//	delete_wall  delete: from the fork of BINARY to the runtime's start
//	delete_cpu   CPU time of the delete process up to the runtime's start
//	hook_wall    the poststop hooks, as the runtime ran them
//	hook_cpu     their CPU time
//	other_cpu    processes left behind (the exit watcher)
//	others       how many there were
//
// The runtime's start is the moment its main began (nooprt's record), so
// create_* and delete_* include the runtime's own process start, which the
// base variant pays as well.
//
// -calibrate prints "calibrate MS": the CPU time of a fixed integer loop
// (median of 5), a speed reference that involves no kernel.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

var metrics = []string{"cpu", "wall", "create_wall", "create_cpu", "delete_wall", "delete_cpu", "hook_wall", "hook_cpu", "other_cpu", "others"}

type variant struct {
	name, bin, bundle, mounted string
	args                       []string // before --root
	config                     []byte
	vals                       map[string][]float64 // metric: one value per measured round
}

type bench struct {
	root, gone string
	log        string // nooprt's record file
	out        string // the processes' stdout and stderr
	env        []string
}

func nowNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func cpuNs(ru *syscall.Rusage) int64 { return ru.Utime.Nano() + ru.Stime.Nano() }

// step is one process of the cycle and all it left behind.
type step struct {
	cpu    int64 // the process and everything reaped with it
	others int   // processes reparented to us
	other  int64 // their CPU time
	rec    []int64
}

// run starts argv, waits until no child is left and reads nooprt's record
// of the runtime run it ended in.
func (b *bench) run(cmd string, argv []string) (*step, error) {
	if err := os.WriteFile(b.log, nil, 0o644); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(b.out, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   b.env,
		Files: []uintptr{null.Fd(), out.Fd(), out.Fd()},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	s := &step{}
	var failed error
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		p, err := syscall.Wait4(-1, &ws, 0, &ru)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.ECHILD {
			break
		}
		if err != nil {
			return nil, err
		}
		if p == pid {
			s.cpu = cpuNs(&ru)
		} else {
			s.others++
			s.other += cpuNs(&ru)
		}
		if (!ws.Exited() || ws.ExitStatus() != 0) && failed == nil {
			who := "a process it left behind"
			if p == pid {
				who = "it"
			}
			failed = fmt.Errorf("%s: %s exited %v", strings.Join(argv, " "), who, ws)
		}
	}
	if failed != nil {
		o, _ := os.ReadFile(b.out)
		return nil, fmt.Errorf("%w: %s", failed, strings.TrimSpace(string(o)))
	}
	rec, err := os.ReadFile(b.log)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(rec))
	if len(f) != 6 || f[0] != cmd {
		return nil, fmt.Errorf("%s: the runtime stand-in recorded %q, want one %s", strings.Join(argv, " "), rec, cmd)
	}
	for _, x := range f[1:] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("nooprt record %q: %w", rec, err)
		}
		s.rec = append(s.rec, n)
	}
	return s, nil
}

// cycle is one create + delete of v as container id.
func (b *bench) cycle(v *variant, id string) (map[string]float64, error) {
	if err := os.WriteFile(filepath.Join(v.bundle, "config.json"), v.config, 0o644); err != nil {
		return nil, err
	}
	t0 := nowNs()
	argv := func(cmd ...string) []string {
		return slices.Concat([]string{v.bin}, v.args, []string{"--root", b.root}, cmd)
	}
	c, err := b.run("create", argv("create", "--bundle", v.bundle, id))
	if err != nil {
		return nil, err
	}
	if v.mounted != "" {
		if _, err := os.Stat(strings.ReplaceAll(v.mounted, "{id}", id)); err != nil {
			return nil, fmt.Errorf("%s: after create: %w", v.name, err)
		}
	}
	t1 := nowNs()
	d, err := b.run("delete", argv("delete", id))
	if err != nil {
		return nil, err
	}
	for _, p := range []string{filepath.Join(b.root, id), strings.ReplaceAll(b.gone, "{id}", id)} {
		if _, err := os.Lstat(p); p != "" && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %s is left after delete", v.name, p)
		}
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	m := map[string]float64{
		"create_wall": ms(c.rec[0] - t0),
		"create_cpu":  ms(c.rec[1]),
		"delete_wall": ms(d.rec[0] - t1),
		"delete_cpu":  ms(d.rec[1]),
		"hook_wall":   ms(d.rec[3]),
		"hook_cpu":    ms(d.rec[4]),
		"other_cpu":   ms(c.other + d.other),
		"others":      float64(c.others + d.others),
		"cpu":         ms(c.cpu + c.other + d.cpu + d.other),
	}
	m["wall"] = m["create_wall"] + m["delete_wall"] + m["hook_wall"]
	return m, nil
}

// quartiles of vals (sorted in place), as cyclebench reports them.
func quartiles(vals []float64) (med, q1, q3 float64) {
	slices.Sort(vals)
	n := len(vals)
	med = vals[n/2]
	if n%2 == 0 {
		med = (vals[n/2-1] + vals[n/2]) / 2
	}
	return med, vals[n/4], vals[(3*n)/4]
}

// calibrate: CPU milliseconds of a fixed integer loop (xorshift), on one
// thread.
func calibrate() float64 {
	runtime.LockOSThread()
	var times []float64
	for range 5 {
		var a, b syscall.Rusage
		_ = syscall.Getrusage(unix.RUSAGE_THREAD, &a)
		x := uint64(88172645463325252)
		for range 50_000_000 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		_ = syscall.Getrusage(unix.RUSAGE_THREAD, &b)
		if x == 0 { // never: keeps the loop
			fmt.Println()
		}
		times = append(times, float64(cpuNs(&b)-cpuNs(&a))/1e6)
	}
	med, _, _ := quartiles(times)
	return med
}

func parse(arg string) (*variant, error) {
	name, spec, ok := strings.Cut(arg, "=")
	f := strings.Split(spec, ",")
	if !ok || name == "" || len(f) < 3 {
		return nil, fmt.Errorf("variant %q: want NAME=BINARY,BUNDLE,CONFIG[,MOUNTED[,ARG...]]", arg)
	}
	config, err := os.ReadFile(f[2])
	if err != nil {
		return nil, err
	}
	v := &variant{name: name, bin: f[0], bundle: f[1], config: config, vals: map[string][]float64{}}
	if len(f) > 3 {
		v.mounted, v.args = f[3], f[4:]
	}
	return v, nil
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "cyclecost:", err)
	os.Exit(1)
}

func main() {
	rounds := flag.Int("rounds", 200, "measured rounds")
	warmup := flag.Int("warmup", 2, "unmeasured rounds first")
	root := flag.String("root", "", "the runtime's --root (nooprt's state)")
	base := flag.String("base", "", "variant that the others are compared with, round by round")
	gone := flag.String("gone", "", "a path (with {id}) that must not exist after delete")
	cal := flag.Bool("calibrate", false, "time a fixed integer loop instead")
	flag.Parse()
	if *cal {
		fmt.Printf("calibrate %.3f\n", calibrate())
		return
	}
	if *root == "" || flag.NArg() == 0 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "usage: cyclecost [-rounds N] [-warmup N] -root DIR [-base NAME] [-gone TEMPLATE] NAME=BINARY,BUNDLE,CONFIG[,MOUNTED[,ARG...]]...")
		os.Exit(2)
	}
	var vs []*variant
	var baseV *variant
	for _, a := range flag.Args() {
		v, err := parse(a)
		if err != nil {
			die(err)
		}
		if v.name == *base {
			baseV = v
		}
		vs = append(vs, v)
	}
	if *base != "" && baseV == nil {
		die(fmt.Errorf("no variant %q for -base", *base))
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		die(fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err))
	}
	tmp, err := os.MkdirTemp("", "cyclecost-")
	if err != nil {
		die(err)
	}
	defer os.RemoveAll(tmp)
	b := &bench{root: *root, gone: *gone, log: filepath.Join(tmp, "noop.log"), out: filepath.Join(tmp, "out")}
	b.env = append(os.Environ(), "CFS_BENCH_NOOP_LOG="+b.log)
	if err := os.WriteFile(b.out, nil, 0o644); err != nil {
		die(err)
	}
	pid := os.Getpid()
	for r := 0; r < *warmup+*rounds; r++ {
		for k := range vs {
			v := vs[(r+k)%len(vs)]
			m, err := b.cycle(v, fmt.Sprintf("cc%d-%s-%d", pid, v.name, r))
			if err != nil {
				os.RemoveAll(tmp)
				die(err)
			}
			if r < *warmup {
				continue
			}
			for _, k := range metrics {
				v.vals[k] = append(v.vals[k], m[k])
			}
		}
	}
	var w bytes.Buffer
	for _, v := range vs {
		for _, k := range metrics {
			vals := slices.Clone(v.vals[k])
			med, q1, q3 := quartiles(vals)
			fmt.Fprintf(&w, "%s %s %.3f %.3f %.3f %.3f %.3f\n", v.name, k, med, q1, q3, vals[0], vals[len(vals)-1])
		}
	}
	for _, v := range vs {
		if baseV == nil || v == baseV {
			continue
		}
		for _, k := range metrics {
			d := make([]float64, *rounds)
			for i := range d {
				d[i] = v.vals[k][i] - baseV.vals[k][i]
			}
			med, q1, q3 := quartiles(d)
			fmt.Fprintf(&w, "added %s %s %.3f %.3f %.3f\n", v.name, k, med, q1, q3)
		}
	}
	os.Stdout.Write(w.Bytes())
}
