package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrCommandLine means cfs-runtime cannot tell with certainty what the
// runtime would do with a command line: it refuses to hand it over.
var ErrCommandLine = errors.New("refusing the command line")

// Line is what a runtime makes of a command line (argv without argv[0],
// cfs-runtime's own options removed), read with that runtime's own rules.
type Line struct {
	// Command is the subcommand; "" when the runtime only prints its help
	// or version, or has no command to run.
	Command string
	// Start is set for create and run: the container they start.
	Start *Start
}

// Start is the container a create or run command line starts.
type Start struct {
	ID string
	// Bundle is --bundle as given ("" for the working directory).
	Bundle string
	// Config is crun's --config as given ("" for the bundle's config.json).
	Config string
	// Help: the runtime only prints the command's help; nothing starts.
	Help bool
}

// DialectOf returns whose command-line rules the runtime at path follows:
// Runc for runc, Crun for crun (and its handler names crun-*, krun), and
// Both for any other runtime, whose command lines cfs-runtime accepts only
// where runc's and crun's rules agree.
func DialectOf(path string) Runtimes {
	switch b := filepath.Base(path); {
	case b == "runc":
		return Runc
	case b == "crun", b == "krun", strings.HasPrefix(b, "crun-"):
		return Crun
	}
	return Both
}

// ParseLine reads args exactly as the runtime dialect d will: runc's
// urfave/cli v1 (flags moved before the arguments, Go's flag syntax) or
// crun's argp (getopt_long in order: abbreviations, short option clusters,
// parsing stops at the first argument). An error means the runtime would
// refuse the line, or, for Both, that the two dialects read it differently.
func ParseLine(d Runtimes, args []string) (*Line, error) {
	switch d {
	case Runc:
		return parseRunc(args)
	case Crun:
		return parseCrun(args)
	}
	l1, err1 := parseRunc(args)
	l2, err2 := parseCrun(args)
	switch {
	case err1 != nil:
		return nil, err1
	case err2 != nil:
		return nil, err2
	case !l1.equal(l2):
		return nil, fmt.Errorf("%w: runc and crun would read it differently (%s against %s); give options before the container id, in their long form", ErrCommandLine, l1, l2)
	}
	return l1, nil
}

func (l *Line) equal(o *Line) bool {
	if l.Command != o.Command || (l.Start == nil) != (o.Start == nil) {
		return false
	}
	return l.Start == nil || *l.Start == *o.Start
}

func (l *Line) String() string {
	if l.Start == nil {
		return fmt.Sprintf("command %q", l.Command)
	}
	if l.Start.Help {
		return fmt.Sprintf("%s --help", l.Command)
	}
	return fmt.Sprintf("%s of container %q from bundle %q config %q", l.Command, l.Start.ID, l.Start.Bundle, l.Start.Config)
}

// Paths returns the bundle directory and the config file the runtime of
// dialect d loads for s, relative paths taken against cwd: runc chdirs to
// the bundle and reads config.json there; crun reads a --config other than
// "config.json" relative to the directory it was started in.
func (s *Start) Paths(cwd string) (bundle, config string) {
	bundle = s.Bundle
	switch {
	case bundle == "":
		bundle = cwd
	case !filepath.IsAbs(bundle):
		bundle = filepath.Join(cwd, bundle)
	}
	bundle = filepath.Clean(bundle)
	switch c := s.Config; {
	case c == "" || c == "config.json":
		config = filepath.Join(bundle, "config.json")
	case filepath.IsAbs(c):
		config = filepath.Clean(c)
	default:
		config = filepath.Join(cwd, c)
	}
	return bundle, config
}

// NeedsCwd reports whether Paths needs the working directory: callers
// skip os.Getwd otherwise.
func (s *Start) NeedsCwd() bool {
	return !filepath.IsAbs(s.Bundle) || (s.Config != "" && s.Config != "config.json" && !filepath.IsAbs(s.Config))
}

// refuse builds the error for a line the runtime itself would not run.
func refuse(runtime, format string, a ...any) error {
	return fmt.Errorf("%w: %s would refuse it: %s", ErrCommandLine, runtime, fmt.Sprintf(format, a...))
}

// --- runc: urfave/cli v1.22 over Go's flag package ---

func parseRunc(args []string) (*Line, error) {
	set, rest, err := goFlags(flagsOf(GlobalFlags, Runc), args)
	if err != nil {
		return nil, err
	}
	if set.isTrue("help") || set.isTrue("version") || len(rest) == 0 {
		return &Line{}, nil
	}
	line := &Line{Command: rest[0]}
	if line.Command != "create" && line.Command != "run" {
		return line, nil
	}
	flags := append(startFlagsOf(line.Command, Runc), runcHelp)
	set, rest, err = goFlags(flags, urfaveReorder(flags, rest[1:]))
	if err != nil {
		return nil, err
	}
	if set.isTrue("help") {
		line.Start = &Start{Help: true}
		return line, nil
	}
	if len(rest) != 1 {
		return nil, refuse("runc", "%q requires exactly 1 argument, the container id (got %d: %q)", line.Command, len(rest), rest)
	}
	if rest[0] == "" {
		return nil, refuse("runc", "container id cannot be empty")
	}
	line.Start = &Start{ID: rest[0], Bundle: set.values["bundle"]}
	return line, nil
}

// flagSet is the result of parsing: each flag's last value by its first
// name, and which of its names were used.
type flagSet struct {
	values map[string]string
	used   map[string]string // first name -> the name given
}

func (s *flagSet) isTrue(name string) bool {
	v, ok := s.values[name]
	return ok && v == "true"
}

// goFlags parses as Go's flag.FlagSet.Parse does (flags up to the first
// argument or "--"; -name and --name alike; -name=value; a flag with a
// value takes the next argument whatever it is), then applies urfave/cli's
// rule that two names of one flag cannot both be used. It returns the
// arguments after the flags.
func goFlags(flags []Flag, args []string) (*flagSet, []string, error) {
	set := &flagSet{values: map[string]string{}, used: map[string]string{}}
	for len(args) > 0 {
		s := args[0]
		if len(s) < 2 || s[0] != '-' {
			break
		}
		dashes := 1
		if s[1] == '-' {
			dashes = 2
			if len(s) == 2 {
				args = args[1:]
				break
			}
		}
		name := s[dashes:]
		if name == "" || name[0] == '-' || name[0] == '=' {
			return nil, nil, refuse("runc", "bad flag syntax: %s", s)
		}
		args = args[1:]
		value, hasValue := "", false
		if i := strings.IndexByte(name[1:], '='); i >= 0 {
			name, value, hasValue = name[:i+1], name[i+2:], true
		}
		f, ok := lookupName(flags, name)
		if !ok {
			return nil, nil, refuse("runc", "flag provided but not defined: -%s", name)
		}
		switch {
		case f.Value == "":
			if !hasValue {
				value = "true"
			}
			b, err := strconv.ParseBool(value)
			if err != nil {
				return nil, nil, refuse("runc", "invalid boolean value %q for -%s", value, name)
			}
			value = strconv.FormatBool(b)
		case !hasValue && len(args) == 0:
			return nil, nil, refuse("runc", "flag needs an argument: -%s", name)
		case !hasValue:
			value, args = args[0], args[1:]
		}
		if f.Int {
			if _, err := strconv.ParseInt(value, 0, strconv.IntSize); err != nil {
				return nil, nil, refuse("runc", "invalid value %q for flag -%s", value, name)
			}
		}
		key := f.Names[0]
		if prev, ok := set.used[key]; ok && prev != name {
			return nil, nil, refuse("runc", "cannot use two forms of the same flag: %s %s", name, prev)
		}
		set.used[key] = name
		set.values[key] = value
	}
	return set, args, nil
}

// urfaveReorder moves the command's flags (and the argument after each
// flag given without "=") before the other arguments, as urfave/cli
// v1.22's reorderArgs does; a "--" not taken as a value ends the
// reordering and stays in front of the rest.
func urfaveReorder(flags []Flag, args []string) []string {
	var flagArgs, rest []string
	mayBeValue := false
	for i, a := range args {
		switch {
		case mayBeValue && !urfaveIsFlag(flags, a):
			mayBeValue = false
			flagArgs = append(flagArgs, a)
		case a == "--":
			rest = append(append([]string{"--"}, rest...), args[i+1:]...)
			return append(flagArgs, rest...)
		case urfaveIsFlag(flags, a):
			flagArgs = append(flagArgs, a)
			mayBeValue = !strings.Contains(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	return append(flagArgs, rest...)
}

// urfaveIsFlag is urfave/cli v1.22's argIsFlag: up to two leading dashes
// (and then one more) dropped, the name before "=" one of the flags'.
func urfaveIsFlag(flags []Flag, a string) bool {
	if a == "-" || a == "--" || !strings.HasPrefix(a, "-") {
		return false
	}
	a = strings.TrimPrefix(strings.TrimPrefix(a, "--"), "-")
	a, _, _ = strings.Cut(a, "=")
	_, ok := lookupName(flags, a)
	return ok
}

func lookupName(flags []Flag, name string) (Flag, bool) {
	for _, f := range flags {
		for _, n := range f.Names {
			if n == name {
				return f, true
			}
		}
	}
	return Flag{}, false
}

// --- crun: GNU argp, getopt_long with ARGP_IN_ORDER ---

func parseCrun(args []string) (*Line, error) {
	set, rest, done, err := getopt(flagsOf(GlobalFlags, Crun), args)
	if err != nil {
		return nil, err
	}
	if done || len(rest) == 0 {
		return &Line{}, nil
	}
	if m, ok := set.values["cgroup-manager"]; ok && m != "systemd" && m != "cgroupfs" && m != "disabled" {
		return nil, refuse("crun", "unknown cgroup manager %q", m)
	}
	if l, ok := set.values["log-level"]; ok && l != "error" && l != "warning" && l != "debug" {
		return nil, refuse("crun", "unknown verbosity %q", l)
	}
	line := &Line{Command: rest[0]}
	if line.Command != "create" && line.Command != "run" {
		return line, nil
	}
	flags := append(startFlagsOf(line.Command, Crun), argpFlags...)
	set, rest, done, err = getopt(flags, rest[1:])
	if err != nil {
		return nil, err
	}
	if done {
		line.Start = &Start{Help: true}
		return line, nil
	}
	if v, ok := set.values["preserve-fds"]; ok && !strtolInt(v) {
		return nil, refuse("crun", "invalid value for `preserve-fds`: %q", v)
	}
	if len(rest) != 1 {
		return nil, refuse("crun", "`%s` requires exactly 1 argument, the container id (got %d: %q)", line.Command, len(rest), rest)
	}
	b, ok := set.values["bundle"]
	if ok && b == "" {
		return nil, refuse("crun", "realpath `` failed: an empty --bundle")
	}
	line.Start = &Start{ID: rest[0], Bundle: b, Config: set.values["config"]}
	return line, nil
}

// getopt parses as glibc's argp_parse with ARGP_IN_ORDER and a parser that
// takes no arguments: getopt_long's long options (unique prefixes accepted,
// --name=value or the next argument for a required value, =value only for
// an optional one), short option clusters (-bDIR, -b DIR), and parsing ends
// at the first argument or after "--". done reports an option that makes
// argp exit on the spot (--help, --usage, --version).
func getopt(flags []Flag, args []string) (set *flagSet, rest []string, done bool, err error) {
	set = &flagSet{values: map[string]string{}, used: map[string]string{}}
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		i++
		if a[1] == '-' {
			name, value, hasEq := strings.Cut(a[2:], "=")
			f, err := longOption(flags, name)
			if err != nil {
				return nil, nil, false, err
			}
			switch {
			case f.Value == "" && hasEq:
				return nil, nil, false, refuse("crun", "option '--%s' doesn't allow an argument", f.Names[0])
			case f.Value == "" || f.Optional || hasEq:
			case i < len(args):
				value = args[i]
				i++
			default:
				return nil, nil, false, refuse("crun", "option '--%s' requires an argument", f.Names[0])
			}
			if exits(f) {
				return set, nil, true, nil
			}
			set.values[f.Names[0]] = value
			continue
		}
	cluster:
		for j := 1; j < len(a); j++ {
			f, ok := shortOption(flags, a[j])
			if !ok {
				return nil, nil, false, refuse("crun", "invalid option -- '%c'", a[j])
			}
			if exits(f) {
				return set, nil, true, nil
			}
			if f.Value == "" {
				set.values[f.Names[0]] = ""
				continue
			}
			switch {
			case j+1 < len(a):
				set.values[f.Names[0]] = a[j+1:]
			case i < len(args):
				set.values[f.Names[0]] = args[i]
				i++
			default:
				return nil, nil, false, refuse("crun", "option requires an argument -- '%c'", a[j])
			}
			break cluster
		}
	}
	return set, args[i:], false, nil
}

// exits: argp prints help or usage, crun its version, and exits.
func exits(f Flag) bool {
	n := f.Names[0]
	return n == "help" || n == "usage" || n == "version"
}

// longOption finds --name: an exact name, else the one flag whose name
// starts with it (several are ambiguous, none unrecognized).
func longOption(flags []Flag, name string) (Flag, error) {
	var found []Flag
	for _, f := range flags {
		if f.Names[0] == name {
			return f, nil
		}
		if strings.HasPrefix(f.Names[0], name) {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 0:
		return Flag{}, refuse("crun", "unrecognized option '--%s'", name)
	case 1:
		return found[0], nil
	}
	return Flag{}, refuse("crun", "option '--%s' is ambiguous", name)
}

func shortOption(flags []Flag, c byte) (Flag, bool) {
	for _, f := range flags {
		for _, n := range f.Names[1:] {
			if len(n) == 1 && n[0] == c {
				return f, true
			}
		}
	}
	return Flag{}, false
}

// strtolInt is crun's parse_int_or_fail: strtoll in base 10 (leading
// white space and a sign allowed; "" is 0, since strtoll then stops at the
// terminating NUL), nothing after the digits, within int.
func strtolInt(s string) bool {
	if s == "" {
		return true
	}
	_, err := strconv.ParseInt(strings.TrimLeft(s, " \t\n\v\f\r"), 10, 32)
	return err == nil
}
