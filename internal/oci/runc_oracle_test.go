package oci

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	cli "github.com/urfave/cli"
)

// runcOracle reads args with urfave/cli v1.22.9, the library runc 1.1.5 is
// built with (Debian's runc: golang-github-urfave-cli 1.22.9), configured
// with runc 1.1.5's global options and its create and run flags (runc's
// main.go, create.go, run.go). It is the in-process reference ParseLine(Runc)
// is fuzzed against; TestRuncDifferential checks both against runc itself.
//
// The result: a Line when runc would go on (Start set when create or run
// reaches the container), or an error when runc refuses the line.
func runcOracle(args []string) (*Line, error) {
	var got *Line
	start := func(name string) func(*cli.Context) error {
		return func(c *cli.Context) error {
			if c.NArg() != 1 { // runc's checkArgs(context, 1, exactArgs)
				return errors.New("exactly 1 argument")
			}
			if c.Args().First() == "" { // errEmptyID
				return errors.New("empty id")
			}
			got = &Line{Command: name, Start: &Start{ID: c.Args().First(), Bundle: c.String("bundle")}}
			return nil
		}
	}
	startFlags := []cli.Flag{
		cli.StringFlag{Name: "bundle, b"},
		cli.StringFlag{Name: "console-socket"},
		cli.StringFlag{Name: "pid-file"},
		cli.BoolFlag{Name: "no-pivot"},
		cli.BoolFlag{Name: "no-new-keyring"},
		cli.IntFlag{Name: "preserve-fds"},
	}
	runFlags := append(append([]cli.Flag{}, startFlags...),
		cli.BoolFlag{Name: "detach, d"}, cli.BoolFlag{Name: "keep"}, cli.BoolFlag{Name: "no-subreaper"})
	app := cli.NewApp()
	app.Name = "runc"
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	app.Flags = []cli.Flag{
		cli.BoolFlag{Name: "debug"},
		cli.StringFlag{Name: "log"},
		cli.StringFlag{Name: "log-format"},
		cli.StringFlag{Name: "root"},
		cli.StringFlag{Name: "criu"},
		cli.BoolFlag{Name: "systemd-cgroup"},
		cli.StringFlag{Name: "rootless"},
	}
	app.Commands = []cli.Command{
		{Name: "create", Flags: startFlags, Action: start("create")},
		{Name: "run", Flags: runFlags, Action: start("run")},
	}
	for _, c := range Commands() {
		if c.Name != "create" && c.Name != "run" && c.Runtimes&Runc != 0 {
			name := c.Name
			app.Commands = append(app.Commands, cli.Command{Name: name, SkipFlagParsing: true, Action: func(*cli.Context) error {
				got = &Line{Command: name}
				return nil
			}})
		}
	}
	app.Version = "1.1.5" // urfave/cli adds --version, -v only with a version
	app.Action = func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("No help topic for '%s'", c.Args().First())
		}
		got = &Line{}
		return nil
	}
	cli.OsExiter = func(int) {}
	cli.HelpPrinter = func(io.Writer, string, interface{}) {}
	if err := app.Run(append([]string{"runc"}, args...)); err != nil {
		return nil, err
	}
	if got == nil {
		// Help or version was printed; nothing runs.
		got = &Line{}
	}
	return got, nil
}

// agreeRunc compares ParseLine(Runc) with what runc (or its oracle) did:
// it must start the same container, refuse what runc refuses, and start
// nothing where runc starts nothing.
func agreeRunc(args []string, ours *Line, oursErr error, runc *Line, runcErr error) error {
	switch {
	case runcErr != nil && oursErr == nil && ours.Start != nil && !ours.Start.Help:
		return fmt.Errorf("%q: runc refuses (%v), cfs-runtime would verify %v", args, runcErr, ours)
	case runcErr != nil:
		return nil
	case runc.Start != nil && oursErr != nil:
		return fmt.Errorf("%q: runc starts %v, cfs-runtime refuses: %v", args, runc, oursErr)
	case runc.Start != nil && (ours.Start == nil || *ours.Start != *runc.Start || ours.Command != runc.Command):
		return fmt.Errorf("%q: runc starts %v, cfs-runtime reads %v", args, runc, ours)
	case runc.Start == nil && oursErr == nil && ours.Start != nil && !ours.Start.Help:
		return fmt.Errorf("%q: runc starts nothing (%v), cfs-runtime would verify %v", args, runc, ours)
	}
	return nil
}

// runcVocabulary are the words argv shapes are made of: ids, every form
// of --bundle, values that look like flags, "--" and "-", switches with
// and without values, unknown flags, global options.
var runcVocabulary = []string{
	"ida", "idb", "", "-", "--", "-x",
	"--bundle", "-b", "--bundle=B1", "-b=B1", "-bundle", "-bundle=B2", "--b", "---bundle", "--bundle=", "B1", "B2",
	"-d", "--detach", "--detach=false", "-d=true", "--keep", "--no-pivot", "--no-subreaper=maybe",
	"--pid-file", "--preserve-fds", "--preserve-fds=0x1", "-1", "0",
	"--foo", "-h", "--help=false", "--config", "-f",
}

var runcGlobalVocabulary = []string{"--root", "R", "--debug", "--log-format=json", "--rootless", "true", "--foo", "-v", "--", "create", "run", "state"}

// argvCorpus yields n argv shapes: the bypasses, then random
// global prefixes and command words from the vocabularies.
func argvCorpus(seed int64, n int, vocab, globals []string) [][]string {
	corpus := [][]string{
		{"run", "ida", "--bundle", "B1"},
		{"run", "ida", "-b", "B1"},
		{"run", "--bundle", "B1", "ida", "--"},
		{"create", "--bundle", "B1", "ida", "--pid-file", "P"},
		{"run", "-d", "ida", "--bundle", "B1"},
		{"run", "--bundle", "--", "ida"},
		{"run", "--", "--bundle", "B1", "ida"},
		{"create", "--bundle", "B1", "-b", "B2", "ida"},
		{"create", "--bundle", "B1", "--bundle", "B2", "ida"},
		{"run", "ida", "--", "idb"},
		{"--root", "R", "run", "ida", "--root", "B1"},
	}
	r := rand.New(rand.NewSource(seed))
	for len(corpus) < n {
		var argv []string
		for k := r.Intn(4) - 1; k > 0; k-- {
			argv = append(argv, globals[r.Intn(len(globals))])
		}
		argv = append(argv, []string{"create", "run"}[r.Intn(2)])
		for k := 1 + r.Intn(4); k > 0; k-- {
			argv = append(argv, vocab[r.Intn(len(vocab))])
		}
		corpus = append(corpus, argv)
	}
	return corpus
}

// allLines is every command line of command and up to depth words of vocab.
func allLines(command string, vocab []string, depth int) [][]string {
	lines := [][]string{{command}}
	for last := lines; depth > 0; depth-- {
		var next [][]string
		for _, l := range last {
			for _, w := range vocab {
				next = append(next, append(append([]string{}, l...), w))
			}
		}
		lines, last = append(lines, next...), next
	}
	return lines
}

// TestRuncOracle: every argv of up to three words from the vocabulary
// after create and run, and a random corpus with global options, reads
// as runc's own library reads it.
func TestRuncOracle(t *testing.T) {
	corpus := append(allLines("create", runcVocabulary, 3), allLines("run", runcVocabulary, 2)...)
	corpus = append(corpus, argvCorpus(1, 5000, runcVocabulary, runcGlobalVocabulary)...)
	failures := 0
	for _, argv := range corpus {
		ours, oursErr := ParseLine(Runc, argv)
		runc, runcErr := runcOracle(argv)
		if err := agreeRunc(argv, ours, oursErr, runc, runcErr); err != nil {
			t.Error(err)
			if failures++; failures > 20 {
				t.Fatal("too many disagreements")
			}
		}
	}
	t.Logf("%d command lines", len(corpus))
}

// FuzzParseLineRunc holds ParseLine(Runc) equal to runc's library on open
// input: argv is the fuzzed string split at NUL bytes.
func FuzzParseLineRunc(f *testing.F) {
	for _, argv := range argvCorpus(2, 60, runcVocabulary, runcGlobalVocabulary) {
		f.Add(strings.Join(argv, "\x00"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, "\x00")
		ours, oursErr := ParseLine(Runc, argv)
		runc, runcErr := runcOracle(argv)
		if err := agreeRunc(argv, ours, oursErr, runc, runcErr); err != nil {
			t.Fatal(err)
		}
	})
}
