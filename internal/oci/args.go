// Package oci understands the command line of an OCI runtime (runc, crun)
// while leaving argv untouched for hand-off.
//
// Two readings: Parse is a quick first pass over the global options (it
// finds cfs-runtime's own options, the subcommand, the log options);
// ParseLine then reads the line exactly as the configured runtime will, and
// decides which container a create or run starts. Both read the flag table
// (table.go), never scan for words: a flag that takes a value consumes the
// next argument, so `--root create run` is the run subcommand.
package oci

import (
	"strings"
)

// ownFlags are cfs-runtime's own global options. They are removed from argv
// before hand-off; the real runtime never sees them.
var ownFlags = []Flag{{Names: []string{"cfs-config"}, Value: "FILE"}}

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
}

// Parse classifies args (os.Args[1:]), taking the global options of runc
// and crun together.
func Parse(args []string) *Invocation {
	inv := &Invocation{Global: map[string]string{}, Own: map[string]string{}}
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !isFlag(a) {
			break
		}
		name, value, hasEq := splitFlag(a)
		if spec, ok := lookupName(ownFlags, name); ok {
			i += consume(spec, hasEq, args, i, value, inv.Own, nil)
			continue
		}
		spec, ok := lookupName(GlobalFlags, name)
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
	return inv
}

// consume records flag args[i] (and its value) in into, appends what it
// consumed to out when out is not nil, and returns how many args it used.
func consume(spec Flag, hasEq bool, args []string, i int, value string, into map[string]string, out *[]string) int {
	n := 1
	switch {
	case hasEq:
	case spec.Value != "" && i+1 < len(args):
		value = args[i+1]
		n = 2
	case spec.Value != "":
		value = ""
	default:
		value = "true"
	}
	into[spec.Names[0]] = value
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
