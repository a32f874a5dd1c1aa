// Package oci understands the command line of an OCI runtime (runc, crun)
// well enough to find what cfs-runtime needs (the subcommand, the bundle, the
// container id, the log options) while leaving argv untouched for hand-off.
//
// Arguments are classified by flag tables, never by scanning for words: a
// flag that takes a value consumes the next argument, so `--root create run`
// is the run subcommand with root "create".
package oci

import (
	"path/filepath"
	"strings"
)

// flagSpec describes one flag: its names (without dashes) and whether it
// takes a value.
type flagSpec struct {
	names    []string
	hasValue bool
}

// globalFlags are the union of runc's and crun's global options.
var globalFlags = []flagSpec{
	{[]string{"debug"}, false},
	{[]string{"log"}, true},
	{[]string{"log-format"}, true},
	{[]string{"log-level"}, true}, // crun
	{[]string{"root"}, true},
	{[]string{"criu"}, true}, // runc
	{[]string{"systemd-cgroup"}, false},
	{[]string{"cgroup-manager"}, true}, // crun
	{[]string{"rootless"}, true},
	{[]string{"help", "h", "?"}, false},
	{[]string{"usage"}, false}, // crun
	{[]string{"version", "v", "V"}, false},
}

// createFlags are the options of create and run in runc and crun.
var createFlags = []flagSpec{
	{[]string{"bundle", "b"}, true},
	{[]string{"config", "f"}, true}, // crun: config file name inside the bundle
	{[]string{"console-socket"}, true},
	{[]string{"pid-file"}, true},
	{[]string{"preserve-fds"}, true},
	{[]string{"no-pivot"}, false},
	{[]string{"no-new-keyring"}, false},
	{[]string{"no-subreaper"}, false},
	{[]string{"detach", "d"}, false}, // run
	{[]string{"keep"}, false},        // run
	{[]string{"help", "h"}, false},
}

// OwnFlags are cfs-runtime's own global options. They are removed from argv
// before hand-off; the real runtime never sees them.
var ownFlags = []flagSpec{
	{[]string{"cfs-config"}, true},
}

// Invocation is what Parse found in an OCI runtime command line.
type Invocation struct {
	// Args is the argv (without argv[0]) to hand to the real runtime: the
	// original arguments minus cfs-runtime's own options.
	Args []string
	// Global holds the global flags seen, by canonical name ("log", "root").
	// Boolean flags map to "true" unless given as --flag=value.
	Global map[string]string
	// Own holds cfs-runtime's own options ("cfs-config").
	Own map[string]string
	// Command is the subcommand ("" if none), CommandArgs what follows it.
	Command     string
	CommandArgs []string
	// Flags holds the subcommand's flags for create and run.
	Flags map[string]string
	// Positional are the subcommand's non-flag arguments (create/run).
	Positional []string
}

// Parse classifies args (os.Args[1:]).
func Parse(args []string) *Invocation {
	inv := &Invocation{Global: map[string]string{}, Own: map[string]string{}, Flags: map[string]string{}}
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !isFlag(a) {
			break
		}
		name, value, hasEq := splitFlag(a)
		if spec, ok := lookup(ownFlags, name); ok {
			i += consume(spec, hasEq, args, i, value, inv.Own, nil)
			continue
		}
		spec, ok := lookup(globalFlags, name)
		if !ok {
			// Unknown global flag: pass it through, assume it takes no
			// value (both runtimes' value flags are all in the table).
			inv.Args = append(inv.Args, a)
			i++
			continue
		}
		n := consume(spec, hasEq, args, i, value, inv.Global, &inv.Args)
		i += n
	}
	if i < len(args) && args[i] == "--" {
		inv.Args = append(inv.Args, args[i])
		i++
	}
	if i < len(args) {
		inv.Command = args[i]
		inv.CommandArgs = args[i+1:]
		inv.Args = append(inv.Args, args[i:]...)
	}
	if inv.Command == "create" || inv.Command == "run" {
		parseCommand(inv, createFlags)
	}
	return inv
}

// parseCommand reads the subcommand's flags up to the first positional
// argument, as runc's CLI library does; the rest are positional.
func parseCommand(inv *Invocation, table []flagSpec) {
	args := inv.CommandArgs
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !isFlag(a) {
			break
		}
		name, value, hasEq := splitFlag(a)
		spec, ok := lookup(table, name)
		if !ok {
			spec = flagSpec{names: []string{name}}
		}
		i += consume(spec, hasEq, args, i, value, inv.Flags, nil)
	}
	inv.Positional = args[i:]
}

// consume records flag args[i] (and its value) in into, appends what it
// consumed to out when out is not nil, and returns how many args it used.
func consume(spec flagSpec, hasEq bool, args []string, i int, value string, into map[string]string, out *[]string) int {
	n := 1
	switch {
	case hasEq:
	case spec.hasValue && i+1 < len(args):
		value = args[i+1]
		n = 2
	case spec.hasValue:
		value = ""
	default:
		value = "true"
	}
	into[spec.names[0]] = value
	if out != nil {
		*out = append(*out, args[i:i+n]...)
	}
	return n
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// splitFlag turns "--name=value", "-name=value", "--name" or "-n" into its
// name and value.
func splitFlag(a string) (name, value string, hasEq bool) {
	name = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, value, hasEq = strings.Cut(name, "=")
	return name, value, hasEq
}

func lookup(table []flagSpec, name string) (flagSpec, bool) {
	for _, s := range table {
		for _, n := range s.names {
			if n == name {
				return s, true
			}
		}
	}
	return flagSpec{}, false
}

// ContainerID is the first positional argument of create/run ("" if none).
func (inv *Invocation) ContainerID() string {
	if len(inv.Positional) == 0 {
		return ""
	}
	return inv.Positional[0]
}

// NeedsCwd reports whether Bundle needs the working directory (no
// --bundle, or a relative one): callers skip os.Getwd otherwise.
func (inv *Invocation) NeedsCwd() bool {
	b := inv.Flags["bundle"]
	return b == "" || !filepath.IsAbs(b)
}

// Bundle returns the bundle directory of create/run: --bundle, made
// absolute against cwd, or cwd itself (runc's default).
func (inv *Invocation) Bundle(cwd string) string {
	b, ok := inv.Flags["bundle"]
	if !ok || b == "" {
		return cwd
	}
	if !filepath.IsAbs(b) {
		b = filepath.Join(cwd, b)
	}
	return filepath.Clean(b)
}

// ConfigName is the runtime config file inside the bundle (crun's --config,
// default config.json).
func (inv *Invocation) ConfigName() string {
	if c := inv.Flags["config"]; c != "" {
		return c
	}
	return "config.json"
}

// LogFile returns the runtime's --log path with crun's "file:" prefix
// removed; "" when absent or not a file (crun's journald:/syslog:).
func (inv *Invocation) LogFile() string {
	l := inv.Global["log"]
	if rest, ok := strings.CutPrefix(l, "file:"); ok {
		return rest
	}
	if strings.HasPrefix(l, "journald:") || strings.HasPrefix(l, "syslog:") {
		return ""
	}
	return l
}

// LogFormat is the runtime's --log-format ("text" by default).
func (inv *Invocation) LogFormat() string {
	if f := inv.Global["log-format"]; f != "" {
		return f
	}
	return "text"
}

// WantsVersion reports a top-level --version/-v.
func (inv *Invocation) WantsVersion() bool {
	_, ok := inv.Global["version"]
	return ok && inv.Command == ""
}

// GlobalArgs is the hand-off argv before the subcommand: the runtime's
// global options, for running another subcommand with the same --root.
func (inv *Invocation) GlobalArgs() []string {
	if inv.Command == "" {
		return inv.Args
	}
	return inv.Args[:len(inv.Args)-len(inv.CommandArgs)-1]
}
