package oci

import "strings"

// Runtimes is a set of runtime command-line dialects: which runtimes know a
// flag or a command.
type Runtimes uint8

const (
	// Runc is runc 1.1: urfave/cli v1 over Go's flag package.
	Runc Runtimes = 1 << iota
	// Crun is crun: GNU argp (getopt_long) in order.
	Crun
	// Both runtimes.
	Both = Runc | Crun
)

// Flag is one option of runc or crun. This table (GlobalFlags, Commands)
// is the only place cfs-runtime keeps what the runtimes accept: the
// command-line parsers, shell completion and the man page read it.
type Flag struct {
	// Names is the long name, then one-letter aliases (runc: other names of
	// the same flag, -b or --b; crun: getopt short options, -b or -bDIR).
	Names []string
	// Value names the flag's value ("DIR"); "" for a switch.
	Value string
	// Int: the value must be a number (runc: Go's flag.Int; crun: strtoll).
	Int bool
	// Optional: crun only, the value may be given with --name=VALUE only.
	Optional bool
	// Hidden flags are parsed but not offered by completion or the man page.
	Hidden bool
	// RunOnly: of startFlags, a flag of run but not of create.
	RunOnly  bool
	Runtimes Runtimes
	Usage    string
}

// Command is a runtime subcommand.
type Command struct {
	Name, Usage string
	// Container: the first argument is a container id.
	Container bool
	Runtimes  Runtimes
	Flags     []Flag
}

// GlobalFlags are the options before the subcommand. runc's help and
// version come from urfave/cli, crun's help, usage, program-name and HANG
// from argp.
var GlobalFlags = []Flag{
	{Names: []string{"debug"}, Runtimes: Both, Usage: "enable debug logging"},
	{Names: []string{"log"}, Value: "FILE", Runtimes: Both, Usage: "the runtime's log file"},
	{Names: []string{"log-format"}, Value: "FORMAT", Runtimes: Both, Usage: "the runtime's log format"},
	{Names: []string{"log-level"}, Value: "LEVEL", Runtimes: Crun, Usage: "the runtime's log level"},
	{Names: []string{"root"}, Value: "DIR", Runtimes: Both, Usage: "directory of the runtime's container state"},
	{Names: []string{"criu"}, Value: "PATH", Runtimes: Runc, Usage: "path of the criu binary"},
	{Names: []string{"systemd-cgroup"}, Runtimes: Both, Usage: "use systemd cgroups"},
	{Names: []string{"cgroup-manager"}, Value: "MANAGER", Runtimes: Crun, Usage: "cgroup manager: systemd, cgroupfs or disabled"},
	{Names: []string{"rootless"}, Value: "VALUE", Runtimes: Both, Usage: "ignore cgroup permission errors"},
	{Names: []string{"help", "h"}, Runtimes: Runc, Usage: "show cfs-runtime's and the runtime's help"},
	{Names: []string{"help", "?"}, Runtimes: Crun, Usage: "show cfs-runtime's and the runtime's help"},
	{Names: []string{"usage"}, Runtimes: Crun, Hidden: true},
	{Names: []string{"program-name"}, Value: "NAME", Runtimes: Crun, Hidden: true},
	{Names: []string{"HANG"}, Value: "SECS", Optional: true, Runtimes: Crun, Hidden: true},
	{Names: []string{"version", "v"}, Runtimes: Runc, Usage: "print cfs-runtime's and the runtime's version"},
	{Names: []string{"version", "v", "V"}, Runtimes: Crun, Usage: "print cfs-runtime's and the runtime's version"},
}

// argpFlags are what GNU argp adds to every crun subcommand.
var argpFlags = []Flag{
	{Names: []string{"help", "?"}, Runtimes: Crun, Usage: "show help"},
	{Names: []string{"usage"}, Runtimes: Crun, Hidden: true},
	{Names: []string{"program-name"}, Value: "NAME", Runtimes: Crun, Hidden: true},
	{Names: []string{"HANG"}, Value: "SECS", Optional: true, Runtimes: Crun, Hidden: true},
}

// runcHelp is what urfave/cli adds to every runc subcommand.
var runcHelp = Flag{Names: []string{"help", "h"}, Runtimes: Runc, Usage: "show help"}

// startFlags are the options of create and run, complete for runc 1.1 and
// crun: cfs-runtime must read them exactly as the runtime does. (A literal,
// so that it costs the runtime path no initialisation.)
var startFlags = []Flag{
	{Names: []string{"bundle", "b"}, Value: "DIR", Runtimes: Both, Usage: "the bundle directory (default: the working directory)"},
	{Names: []string{"config", "f"}, Value: "FILE", Runtimes: Crun, Usage: "the config file instead of the bundle's config.json"},
	{Names: []string{"console-socket"}, Value: "PATH", Runtimes: Both, Usage: "socket that receives the console's pseudoterminal master"},
	{Names: []string{"pid-file"}, Value: "FILE", Runtimes: Both, Usage: "file to write the container's process id to"},
	{Names: []string{"no-pivot"}, Runtimes: Both, Usage: "do not use pivot_root"},
	{Names: []string{"no-new-keyring"}, Runtimes: Both, Usage: "keep the caller's session keyring"},
	{Names: []string{"preserve-fds"}, Value: "N", Int: true, Runtimes: Both, Usage: "pass N more file descriptors to the container"},
	{Names: []string{"no-subreaper"}, Runtimes: Crun, Usage: "ignored"},
	{Names: []string{"no-subreaper"}, Runtimes: Runc, RunOnly: true, Usage: "do not reap reparented processes"},
	{Names: []string{"detach", "d"}, Runtimes: Both, RunOnly: true, Usage: "detach from the container's process"},
	{Names: []string{"keep"}, Runtimes: Both, RunOnly: true, Usage: "do not delete the container after it exits"},
}

// startFlagsOf returns the flags of create or run for runtimes r.
func startFlagsOf(command string, r Runtimes) []Flag {
	out := make([]Flag, 0, len(startFlags)+len(argpFlags))
	for _, f := range startFlags {
		if f.Runtimes&r != 0 && (command == "run" || !f.RunOnly) {
			out = append(out, f)
		}
	}
	return out
}

// Commands returns the runtimes' subcommands, for completion and the man
// page (built on demand: the runtime path never needs it). The flags of
// commands other than create and run are runc's.
func Commands() []Command {
	return []Command{
		{Name: "checkpoint", Usage: "checkpoint a running container", Container: true, Runtimes: Both, Flags: values(Both,
			"image-path=", "work-path=", "parent-path=", "leave-running", "tcp-established", "ext-unix-sk", "shell-job", "lazy-pages",
			"status-fd=", "page-server=", "file-locks", "pre-dump", "manage-cgroups-mode=", "empty-ns=", "auto-dedup")},
		{Name: "create", Usage: "verify and mount the composefs root filesystem, then create the container", Container: true, Runtimes: Both,
			Flags: startFlagsOf("create", Both)},
		{Name: "delete", Usage: "delete any resources held by the container (and its composefs mount)", Container: true, Runtimes: Both, Flags: values(Both, "force|f")},
		{Name: "events", Usage: "display container events such as OOM notifications and resource usage", Container: true, Runtimes: Runc, Flags: values(Runc, "interval=", "stats")},
		{Name: "exec", Usage: "execute a new process inside the container", Container: true, Runtimes: Both, Flags: values(Both,
			"console-socket=", "cwd=", "env|e=", "tty|t", "user|u=", "additional-gids|g=", "process|p=", "detach|d", "pid-file=",
			"process-label=", "apparmor=", "no-new-privs", "cap|c=", "preserve-fds=", "cgroup=", "ignore-paused")},
		{Name: "features", Usage: "show the enabled features", Runtimes: Both},
		{Name: "kill", Usage: "send a signal (default SIGTERM) to the container's init process", Container: true, Runtimes: Both, Flags: values(Both, "all|a")},
		{Name: "list", Usage: "list the containers started by the runtime with the given root", Runtimes: Both, Flags: values(Both, "format|f=", "quiet|q")},
		{Name: "mounts", Usage: "add or remove mounts from a running container", Container: true, Runtimes: Crun},
		{Name: "pause", Usage: "suspend all processes inside the container", Container: true, Runtimes: Both},
		{Name: "ps", Usage: "display the processes running inside a container", Container: true, Runtimes: Both, Flags: values(Both, "format|f=")},
		{Name: "restore", Usage: "refused: a checkpoint image is not a verified root filesystem", Container: true, Runtimes: Both, Flags: values(Both,
			"console-socket=", "image-path=", "work-path=", "tcp-established", "ext-unix-sk", "shell-job", "file-locks", "manage-cgroups-mode=",
			"bundle|b=", "detach|d", "pid-file=", "no-subreaper", "no-pivot", "empty-ns=", "auto-dedup", "lazy-pages", "lsm-profile=", "lsm-mount-context=")},
		{Name: "resume", Usage: "resume all processes that have been previously paused", Container: true, Runtimes: Both},
		{Name: "run", Usage: "verify and mount the composefs root filesystem, then create and start the container", Container: true, Runtimes: Both,
			Flags: startFlagsOf("run", Both)},
		{Name: "spec", Usage: "create a new specification file", Runtimes: Both, Flags: values(Both, "bundle|b=", "rootless")},
		{Name: "start", Usage: "execute the user defined process in a created container", Container: true, Runtimes: Both},
		{Name: "state", Usage: "output the state of a container", Container: true, Runtimes: Both},
		{Name: "update", Usage: "update container resource constraints", Container: true, Runtimes: Both, Flags: values(Both,
			"resources|r=", "blkio-weight=", "cpu-period=", "cpu-quota=", "cpu-share=", "cpu-rt-period=", "cpu-rt-runtime=", "cpuset-cpus=",
			"cpuset-mems=", "memory=", "memory-reservation=", "memory-swap=", "pids-limit=", "l3-cache-schema=", "mem-bw-schema=")},
	}
}

// values is shorthand for flags that only completion reads: "name|alias"
// for a switch, "name|alias=" for a flag with a value.
func values(r Runtimes, specs ...string) []Flag {
	flags := make([]Flag, 0, len(specs))
	for _, s := range specs {
		f := Flag{Runtimes: r}
		if n, ok := strings.CutSuffix(s, "="); ok {
			s, f.Value = n, "VALUE"
		}
		f.Names = strings.Split(s, "|")
		flags = append(flags, f)
	}
	return flags
}

// flagsOf selects the flags of one runtime from a table.
func flagsOf(table []Flag, r Runtimes) []Flag {
	out := make([]Flag, 0, len(table))
	for _, f := range table {
		if f.Runtimes&r != 0 {
			out = append(out, f)
		}
	}
	return out
}
