// Command cyclebench times container lifecycles: each variant is a list of
// commands run one after another (e.g. create, then delete), variants are
// interleaved round by round with a rotating order so that none always runs
// first, and the median wall time of each variant is printed.
//
//	cyclebench [-rounds N] [-warmup N] NAME=CMD ARGS...[ ;; CMD ARGS...] ...
//
// "{id}" in an argument becomes a container id unique to the variant and
// round. Arguments are split on spaces (no quoting: paths with spaces are not
// supported). A command that fails stops the run with its output, so that a
// benchmark never reports the time of a refusal. The output is one line per
// variant: "NAME MEDIAN_MS MIN_MS MAX_MS Q1_MS Q3_MS" (Q1 and Q3: the
// quartiles, for the spread of the rounds).
//
// It is a Go program rather than shell so that it runs the same on the host
// and in the busybox guest (tests/bench/vm), with exec overhead that does
// not depend on the shell.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

type variant struct {
	name  string
	steps [][]string
	times []time.Duration
	out   *os.File // the commands' stdout and stderr
}

func parse(arg string) (*variant, error) {
	name, cmds, ok := strings.Cut(arg, "=")
	if !ok || name == "" {
		return nil, fmt.Errorf("variant %q: want NAME=CMD ARGS", arg)
	}
	out, err := os.CreateTemp("", "cyclebench-*.out")
	if err != nil {
		return nil, err
	}
	os.Remove(out.Name()) // still readable through /proc/self/fd
	v := &variant{name: name, out: out}
	for _, c := range strings.Split(cmds, ";;") {
		f := strings.Fields(c)
		if len(f) == 0 {
			return nil, fmt.Errorf("variant %q: empty command", name)
		}
		v.steps = append(v.steps, f)
	}
	return v, nil
}

// run runs the variant's commands once and returns the wall time.
func (v *variant) run(id string) (time.Duration, error) {
	start := time.Now()
	for _, step := range v.steps {
		args := make([]string, len(step))
		for i, a := range step {
			args[i] = strings.ReplaceAll(a, "{id}", id)
		}
		// Output goes to a file, not a pipe: a created container keeps
		// its stdio open until it is deleted, and a pipe would make
		// create look as if it never ended.
		if err := v.out.Truncate(0); err != nil {
			return 0, err
		}
		if _, err := v.out.Seek(0, 0); err != nil {
			return 0, err
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = v.out, v.out
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", v.out.Fd()))
			return 0, fmt.Errorf("%s: %s: %w: %s", v.name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return time.Since(start), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func main() {
	rounds := flag.Int("rounds", 20, "measured rounds")
	warmup := flag.Int("warmup", 1, "unmeasured rounds first")
	flag.Parse()
	var vs []*variant
	for _, a := range flag.Args() {
		v, err := parse(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cyclebench:", err)
			os.Exit(2)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		fmt.Fprintln(os.Stderr, "cyclebench: no variants")
		os.Exit(2)
	}
	pid := os.Getpid()
	for r := 0; r < *warmup+*rounds; r++ {
		for k := range vs {
			v := vs[(r+k)%len(vs)]
			d, err := v.run(fmt.Sprintf("cb%d-%s-%d", pid, v.name, r))
			if err != nil {
				fmt.Fprintln(os.Stderr, "cyclebench:", err)
				os.Exit(1)
			}
			if r >= *warmup {
				v.times = append(v.times, d)
			}
		}
	}
	for _, v := range vs {
		slices.Sort(v.times)
		n := len(v.times)
		med := v.times[n/2]
		if n%2 == 0 {
			med = (v.times[n/2-1] + v.times[n/2]) / 2
		}
		fmt.Printf("%s %.3f %.3f %.3f %.3f %.3f\n", v.name, ms(med), ms(v.times[0]), ms(v.times[n-1]), ms(v.times[n/4]), ms(v.times[(3*n)/4]))
	}
}
