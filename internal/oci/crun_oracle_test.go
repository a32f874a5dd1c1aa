package oci

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// crunOracle runs testdata/crun_argp.c: glibc's argp over crun's option
// tables, the reference ParseLine(Crun) is compared with.
type crunOracle struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startCrunOracle(t testing.TB) *crunOracle {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("needs a C compiler for the argp oracle")
	}
	bin := filepath.Join(t.TempDir(), "crun_argp")
	if out, err := exec.Command(cc, "-O1", "-Wall", "-o", bin, "testdata/crun_argp.c").CombinedOutput(); err != nil {
		t.Fatalf("building the argp oracle: %v\n%s", err, out)
	}
	o := &crunOracle{cmd: exec.Command(bin)}
	if o.in, err = o.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := o.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	o.out = bufio.NewReader(stdout)
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.in.Close(); _ = o.cmd.Wait() })
	return o
}

// errHang: --HANG made argp sleep; the alarm ended it.
var errHang = errors.New("argp --HANG")

// read returns crun's reading of args: a Line, or an error where crun
// exits non-zero.
func (o *crunOracle) read(args []string) (*Line, error) {
	buf := binary.LittleEndian.AppendUint32(nil, uint32(len(args)))
	for _, a := range args {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(a)))
		buf = append(buf, a...)
	}
	if _, err := o.in.Write(buf); err != nil {
		panic(err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(o.out, hdr[:]); err != nil {
		panic(err)
	}
	status := syscall.WaitStatus(binary.LittleEndian.Uint32(hdr[:4]))
	report := make([]byte, binary.LittleEndian.Uint32(hdr[4:]))
	if _, err := io.ReadFull(o.out, report); err != nil {
		panic(err)
	}
	words := strings.Split(string(report), "\x00")
	switch {
	case status.Signaled() && status.Signal() == syscall.SIGALRM:
		return nil, errHang
	case !status.Exited() || status.ExitStatus() != 0:
		return nil, fmt.Errorf("crun exits with %v", status)
	case words[0] == "start":
		s := &Start{ID: words[1], Bundle: words[2], Config: words[3]}
		if s.Bundle == "-unset-" {
			s.Bundle = ""
		}
		if s.Config == "config.json" {
			s.Config = ""
		}
		return &Line{Command: "create", Start: s}, nil
	case words[0] == "line":
		return &Line{Command: words[1]}, nil
	}
	return &Line{}, nil // help, usage or version
}

// agreeCrun: ParseLine(Crun) starts what crun starts, and nothing else.
func agreeCrun(args []string, ours *Line, oursErr error, crun *Line, crunErr error) error {
	oursStarts := oursErr == nil && ours.Start != nil && !ours.Start.Help
	crunStarts := crunErr == nil && crun.Start != nil
	switch {
	case errors.Is(crunErr, errHang):
		return nil
	case crunStarts && !oursStarts:
		return fmt.Errorf("%q: crun starts %v, cfs-runtime reads %v (%v)", args, crun, ours, oursErr)
	case oursStarts && !crunStarts:
		return fmt.Errorf("%q: crun starts nothing (%v, %v), cfs-runtime would verify %v", args, crun, crunErr, ours)
	case oursStarts:
		s := *ours.Start
		if s.Config == "config.json" {
			s.Config = ""
		}
		if s != *crun.Start {
			return fmt.Errorf("%q: crun starts %v, cfs-runtime reads %v", args, crun, ours)
		}
	}
	return nil
}

// crunVocabulary: getopt's forms of every create and run option (unique
// prefixes, clusters, attached values), argp's own options, and words
// that look like options.
var crunVocabulary = []string{
	"ida", "idb", "", "-", "--", "-x",
	"--bundle", "-b", "--bundle=B1", "-bB1", "-b=B1", "--bun", "--b", "--bundle=", "B1",
	"-f", "--config", "--config=c.json", "--conf", "--con", "c.json", "config.json", "-fconfig.json",
	"-d", "--detach", "-db", "-dbB1", "--keep", "--kee=1", "--no-pivot", "--no-", "--pid-file",
	"--preserve-fds", "--preserve-fds= 5", "--preserve-fds=", "-1", "5x",
	"--help", "-?", "--usage", "--HANG=0", "--program-name", "--foo", "-h", "-v",
}

var crunGlobalVocabulary = []string{"--root", "R", "--roo", "--ro", "--debug", "--cgroup-m", "disabled", "--log-level=debug", "--log-l=x", "--rootless", "true", "-V", "--", "create", "run", "state"}

func TestCrunOracle(t *testing.T) {
	o := startCrunOracle(t)
	corpus := append(allLines("create", crunVocabulary, 2), allLines("run", crunVocabulary, 2)...)
	corpus = append(corpus, argvCorpus(4, 6000, crunVocabulary, crunGlobalVocabulary)...)
	failures, starts := 0, 0
	for _, argv := range corpus {
		ours, oursErr := ParseLine(Crun, argv)
		crun, crunErr := o.read(argv)
		if crunErr == nil && crun.Start != nil {
			starts++
		}
		if err := agreeCrun(argv, ours, oursErr, crun, crunErr); err != nil {
			t.Error(err)
			if failures++; failures > 20 {
				t.Fatal("too many disagreements")
			}
		}
	}
	t.Logf("%d command lines, %d start a container", len(corpus), starts)
}

// FuzzParseLineCrun holds ParseLine(Crun) equal to glibc's argp on open
// input (argv is the fuzzed string split at NUL bytes).
func FuzzParseLineCrun(f *testing.F) {
	for _, argv := range argvCorpus(5, 60, crunVocabulary, crunGlobalVocabulary) {
		f.Add(strings.Join(argv, "\x00"))
	}
	o := startCrunOracle(f)
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, "\x00")
		ours, oursErr := ParseLine(Crun, argv)
		crun, crunErr := o.read(argv)
		if err := agreeCrun(argv, ours, oursErr, crun, crunErr); err != nil {
			t.Fatal(err)
		}
	})
}
