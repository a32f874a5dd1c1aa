package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"

	"github.com/urfave/cli/v2"
)

// completionCommand prints a shell completion script. The script is
// generated from the command definitions (cfs-runtime's own commands, their
// subcommands and flags) and from oci.Commands (what runc and crun
// accept), so it covers both halves of the CLI and never runs cfs-runtime
// while completing, except `cfs-runtime list -q` for container ids.
var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a bash or zsh completion script for cfs-runtime's and the runtime's commands",
	ArgsUsage: "bash|zsh",
	Description: "bash: `source <(cfs-runtime completion bash)`, or save it as\n" +
		"/usr/share/bash-completion/completions/cfs-runtime.\n" +
		"zsh: save `cfs-runtime completion zsh` as _cfs-runtime in a directory of $fpath,\n" +
		"e.g. /usr/local/share/zsh/site-functions/_cfs-runtime. `make install` installs both.",
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("completion: want exactly one shell, bash or zsh (usage: cfs-runtime completion bash|zsh)", 2)
		}
		root := completionTree(c.App.Commands)
		switch sh := c.Args().First(); sh {
		case "bash":
			return writeBashCompletion(c.App.Writer, root)
		case "zsh":
			return writeZshCompletion(c.App.Writer, root)
		default:
			return cli.Exit(fmt.Sprintf("completion: unknown shell %q (want bash or zsh)", sh), 2)
		}
	},
}

// cfsConfigUsage describes cfs-runtime's own global option.
const cfsConfigUsage = "cfs-runtime's configuration file"

// flagValues are the fixed values of some flags, by "COMMAND --flag" (the
// top-level command; "" for global flags).
var flagValues = map[string][]string{
	" --log-format":      {"text", "json"},
	" --rootless":        {"true", "false", "auto"},
	"list --format":      {"table", "json"},
	"ps --format":        {"table", "json"},
	"sign --format":      {"podman", "json", "annotations"},
	"seal --format":      {"podman", "json", "annotations"},
	"seal --canonical":   {"oci", "composefs-rs"},
	"import --canonical": {"oci", "composefs-rs"},
	"verity --hash-alg":  {"sha256", "sha512"},
	"import --hash":      {"sha256", "sha512"},
	"seal --hash":        {"sha256", "sha512"},
	"digest --hash":      {"sha256", "sha512"},
	"mkimage --hash":     {"sha256", "sha512"},
}

// argValues are the fixed values of a command's first argument.
var argValues = map[string][]string{
	"completion": {"bash", "zsh"},
	"hook":       {"createRuntime"},
}

// compFlag is one option for completion.
type compFlag struct {
	names  []string // with dashes: "--bundle", "-b"
	usage  string
	value  bool // takes a value
	repeat bool // may be given more than once
	dirs   bool // the value is a directory
	values []string
}

// compCommand is a command for completion: the root (global options,
// every command as a subcommand), a command or a subcommand.
type compCommand struct {
	name, usage string
	flags       []compFlag
	subs        []*compCommand
	// args is what positional arguments are: "files", "containers" (the
	// first is a container id) or "" (none or free text).
	args   string
	values []string // fixed values of the first positional argument
}

// completionTree collects the whole CLI: cfs-runtime's commands (tools, the
// app's commands: toolCommands), then the runtime's (a runtime command of
// the same name as a tool is left out).
func completionTree(tools []*cli.Command) *compCommand {
	root := &compCommand{name: "cfs-runtime", flags: runtimeFlags(oci.GlobalFlags, "")}
	root.flags = append(root.flags, compFlag{names: []string{"--cfs-config"}, value: true, usage: cfsConfigUsage})
	own := map[string]bool{}
	for _, c := range tools {
		if c.Hidden {
			continue
		}
		own[c.Name] = true
		root.subs = append(root.subs, toolCompletion(c, c.Name))
	}
	for _, rc := range oci.Commands() {
		if own[rc.Name] {
			continue
		}
		cc := &compCommand{name: rc.Name, usage: rc.Usage, flags: runtimeFlags(rc.Flags, rc.Name)}
		if rc.Container {
			cc.args = "containers"
		}
		root.subs = append(root.subs, cc)
	}
	sort.Slice(root.subs, func(i, j int) bool { return root.subs[i].name < root.subs[j].name })
	return root
}

// toolCompletion converts a cli.Command; top names the top-level command
// for flagValues.
func toolCompletion(c *cli.Command, top string) *compCommand {
	cc := &compCommand{name: c.Name, usage: firstLine(c.Usage)}
	if c.Name == top {
		cc.values = argValues[top]
	}
	for _, f := range c.Flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok || isHiddenFlag(f) {
			continue
		}
		placeholder, usage := flagPlaceholder(df.GetUsage())
		cf := compFlag{value: df.TakesValue(), usage: firstLine(usage), dirs: placeholder == "DIR"}
		for _, n := range f.Names() {
			cf.names = append(cf.names, dashed(n))
		}
		if sf, ok := f.(cli.DocGenerationSliceFlag); ok && sf.IsSliceFlag() {
			cf.repeat = true
		}
		cf.values = flagValues[top+" "+cf.names[0]]
		cc.flags = append(cc.flags, cf)
	}
	for _, s := range c.Subcommands {
		// urfave/cli adds a help subcommand to the command it runs.
		if !s.Hidden && s.Name != "help" {
			cc.subs = append(cc.subs, toolCompletion(s, top))
		}
	}
	switch {
	case len(cc.subs) > 0 || cc.values != nil:
	case strings.Contains(c.ArgsUsage, "ID"):
		cc.args = "containers"
	case c.ArgsUsage != "":
		cc.args = "files"
	}
	return cc
}

func isHiddenFlag(f cli.Flag) bool {
	h, ok := f.(interface{ IsVisible() bool })
	return ok && !h.IsVisible()
}

// runtimeFlags converts the runtimes' flags of one command ("" for the
// global ones): one entry per long name, with every runtime's one-letter
// aliases (runc's --help is -h, crun's -?).
func runtimeFlags(table []oci.Flag, cmd string) []compFlag {
	var flags []compFlag
	index := map[string]int{}
	for _, of := range table {
		if of.Hidden {
			continue
		}
		long := dashed(of.Names[0])
		i, seen := index[long]
		if !seen {
			i = len(flags)
			index[long] = i
			flags = append(flags, compFlag{
				names:  []string{long},
				value:  of.Value != "",
				usage:  of.Usage,
				values: flagValues[cmd+" "+long],
				dirs:   of.Value == "DIR" || strings.HasSuffix(of.Names[0], "-path"),
			})
		}
		for _, n := range of.Names[1:] {
			if !slices.Contains(flags[i].names, dashed(n)) {
				flags[i].names = append(flags[i].names, dashed(n))
			}
		}
	}
	return flags
}

// flagPlaceholder splits urfave/cli's "usage with a `PLACEHOLDER`".
func flagPlaceholder(usage string) (placeholder, text string) {
	before, rest, ok := strings.Cut(usage, "`")
	if !ok {
		return "", usage
	}
	name, after, ok := strings.Cut(rest, "`")
	if !ok {
		return "", usage
	}
	return name, before + name + after
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// walk calls fn for every command below c with its path of names.
func (c *compCommand) walk(path []string, fn func(path []string, c *compCommand)) {
	fn(path, c)
	for _, s := range c.subs {
		s.walk(append(path[:len(path):len(path)], s.name), fn)
	}
}

func (c *compCommand) flagNames(valued bool) string {
	var names []string
	for _, f := range c.flags {
		if !valued || f.value {
			names = append(names, f.names...)
		}
	}
	return strings.Join(names, " ")
}

func (c *compCommand) subNames() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, " ")
}

// writeBashCompletion writes a self-contained bash script (no
// bash-completion package needed).
func writeBashCompletion(w io.Writer, root *compCommand) error {
	var b strings.Builder
	b.WriteString(`# bash completion for cfs-runtime: its own commands and the OCI runtime
# commands it hands to runc/crun. Generated by ` + "`cfs-runtime completion bash`" + `.

# _cfs_runtime_spec CMD SUB: the options (flags), options taking a value
# (valued), subcommands (subs) and arguments (args, values) of a command.
_cfs_runtime_spec() {
	flags= valued= subs= args= values=
	case "$1/$2" in
`)
	root.walk(nil, func(path []string, c *compCommand) {
		key := "/"
		switch len(path) {
		case 1:
			key = path[0] + "/"
		case 2:
			key = path[0] + "/" + path[1]
		}
		if len(path) > 2 {
			return
		}
		fmt.Fprintf(&b, "\t%s)\n\t\tflags=%s valued=%s", bashQuote(key), bashQuote(c.flagNames(false)), bashQuote(c.flagNames(true)))
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, " subs=%s", bashQuote(c.subNames()))
		}
		if c.args != "" {
			fmt.Fprintf(&b, " args=%s", c.args)
		}
		if len(c.values) > 0 {
			fmt.Fprintf(&b, " values=%s", bashQuote(strings.Join(c.values, " ")))
		}
		b.WriteString(" ;;\n")
	})
	b.WriteString(`	esac
}

# _cfs_runtime_optvalue CMD SUB OPTION: what the option's value is: a list
# of words (values), or kind=dirs or kind=files.
_cfs_runtime_optvalue() {
	values= kind=files
	case "$1/$2 $3" in
`)
	root.walk(nil, func(path []string, c *compCommand) {
		if len(path) > 2 {
			return
		}
		key := strings.Join(path, "/")
		if len(path) < 2 {
			key += "/"
		}
		for _, f := range c.flags {
			if !f.value || (len(f.values) == 0 && !f.dirs) {
				continue
			}
			pats := make([]string, len(f.names))
			for i, n := range f.names {
				pats[i] = bashQuote(key + " " + n)
			}
			if len(f.values) > 0 {
				fmt.Fprintf(&b, "\t%s) values=%s ;;\n", strings.Join(pats, "|"), bashQuote(strings.Join(f.values, " ")))
			} else {
				fmt.Fprintf(&b, "\t%s) kind=dirs ;;\n", strings.Join(pats, "|"))
			}
		}
	})
	b.WriteString(`	esac
}

_cfs_runtime() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local cmd= sub= npos=0 i w flags valued subs args values kind
	local -a global=()
	COMPREPLY=()
	_cfs_runtime_spec "" ""
	# Find the command and subcommand before the cursor. bash splits
	# --flag=value into three words; an option that takes a value consumes
	# the next word. Global options are kept for ` + "`list -q`" + ` (--root).
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == = ]]; then
			[[ -z $cmd ]] && global+=("=${COMP_WORDS[i+1]}")
			((i++))
			continue
		fi
		if [[ $w == -* ]]; then
			[[ -z $cmd ]] && global+=("$w")
			if [[ ${COMP_WORDS[i+1]} != = && " $valued " == *" $w "* ]]; then
				((i++))
				[[ -z $cmd ]] && global+=("${COMP_WORDS[i]}")
			fi
			continue
		fi
		if ((npos == 0)) && [[ " $subs " == *" $w "* ]]; then
			if [[ -z $cmd ]]; then cmd=$w; else sub=$w; fi
			_cfs_runtime_spec "$cmd" "$sub"
		else
			((npos++))
		fi
	done

	# The value of an option: after "--flag", "--flag=" or "--flag=x".
	local opt= prefix=
	if [[ $cur == = && " $valued " == *" $prev "* ]]; then
		opt=$prev cur= prefix==
	elif [[ $prev == = ]]; then
		opt=${COMP_WORDS[COMP_CWORD-2]}
	elif [[ $cur != -* && " $valued " == *" $prev "* ]]; then
		opt=$prev
	fi
	if [[ -n $opt ]]; then
		_cfs_runtime_optvalue "$cmd" "$sub" "$opt"
		if [[ -n $values ]]; then
			COMPREPLY=($(compgen -P "$prefix" -W "$values" -- "$cur"))
		elif [[ -z $prefix && $kind == dirs ]]; then
			compopt -o dirnames 2>/dev/null
		elif [[ -z $prefix ]]; then
			compopt -o default 2>/dev/null
		fi
		return 0
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return 0
	fi
	if ((npos == 0)) && [[ -n $subs ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
		return 0
	fi
	if [[ -n $values ]]; then
		((npos == 0)) && COMPREPLY=($(compgen -W "$values" -- "$cur"))
		return 0
	fi
	case $args in
	containers)
		if ((npos == 0)); then
			COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${global[@]}" list -q 2>/dev/null)" -- "$cur"))
		elif [[ $cmd == kill ]] && ((npos == 1)); then
			COMPREPLY=($(compgen -W 'SIGTERM SIGKILL SIGINT SIGHUP SIGQUIT SIGUSR1 SIGUSR2 SIGSTOP SIGCONT SIGWINCH' -- "$cur"))
		fi
		;;
	files) compopt -o default 2>/dev/null ;;
	esac
	return 0
}

complete -F _cfs_runtime cfs-runtime
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// bashQuote single-quotes s for bash.
func bashQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeZshCompletion writes a #compdef script for $fpath.
func writeZshCompletion(w io.Writer, root *compCommand) error {
	var b strings.Builder
	b.WriteString(`#compdef cfs-runtime
# zsh completion for cfs-runtime: its own commands and the OCI runtime
# commands it hands to runc/crun. Generated by ` + "`cfs-runtime completion zsh`" + `.

# Container ids, from the runtime (with the --root given on the line).
_cfs_runtime_containers() {
	local -a ids global
	[[ -n ${_cfs_runtime_opts[--root]} ]] && global=(--root ${_cfs_runtime_opts[--root]})
	ids=(${(f)"$(_call_program containers ${(q)_cfs_runtime_prog} ${(q)global} list -q 2>/dev/null)"})
	_describe -t containers 'container id' ids
}

_cfs_runtime() {
	local curcontext=$curcontext state state_descr line ret=1
	local _cfs_runtime_prog=$words[1]
	typeset -A opt_args
	typeset -A _cfs_runtime_opts
	_arguments -C \
`)
	for _, f := range root.flags {
		fmt.Fprintf(&b, "\t\t%s \\\n", zshFlagSpec(f))
	}
	b.WriteString("\t\t'1: :->command' \\\n\t\t'*:: :->args' && return 0\n")
	b.WriteString(`	_cfs_runtime_opts=("${(@kv)opt_args}")
	case $state in
	command)
		local -a commands=(
`)
	for _, s := range root.subs {
		fmt.Fprintf(&b, "\t\t\t%s\n", zshQuote(zshEscapeColon(s.name)+":"+s.usage))
	}
	b.WriteString("\t\t)\n\t\t_describe -t commands 'cfs-runtime command' commands && ret=0\n\t\t;;\n\targs)\n\t\tcurcontext=${curcontext%:*:*}:cfs-runtime-$words[1]:\n\t\tcase $words[1] in\n")
	for _, s := range root.subs {
		fmt.Fprintf(&b, "\t\t(%s)\n", s.name)
		writeZshCommand(&b, s, "\t\t\t")
		b.WriteString("\t\t\t;;\n")
	}
	b.WriteString(`		esac
		;;
	esac
	return ret
}

_cfs_runtime "$@"
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeZshCommand writes the completion of one command whose name is
// $words[1].
func writeZshCommand(b *strings.Builder, c *compCommand, indent string) {
	if len(c.subs) > 0 {
		fmt.Fprintf(b, "%sif (( CURRENT == 2 )); then\n%s\tlocal -a subcommands=(\n", indent, indent)
		for _, s := range c.subs {
			fmt.Fprintf(b, "%s\t\t%s\n", indent, zshQuote(zshEscapeColon(s.name)+":"+s.usage))
		}
		fmt.Fprintf(b, "%s\t)\n%s\t_describe -t commands %s subcommands && ret=0\n", indent, indent, zshQuote(c.name+" command"))
		fmt.Fprintf(b, "%selse\n%s\tshift words\n%s\t(( CURRENT-- ))\n%s\tcase $words[1] in\n", indent, indent, indent, indent)
		for _, s := range c.subs {
			fmt.Fprintf(b, "%s\t(%s)\n", indent, s.name)
			writeZshCommand(b, s, indent+"\t\t")
			fmt.Fprintf(b, "%s\t\t;;\n", indent)
		}
		fmt.Fprintf(b, "%s\tesac\n%sfi\n", indent, indent)
		return
	}
	specs := make([]string, 0, len(c.flags)+2)
	for _, f := range c.flags {
		specs = append(specs, zshFlagSpec(f))
	}
	switch {
	case len(c.values) > 0:
		specs = append(specs, zshQuote("1:"+c.name+":("+strings.Join(c.values, " ")+")"))
	case c.args == "containers" && c.name == "kill":
		specs = append(specs, "'1:container id:_cfs_runtime_containers'", "'2:signal:_signals'")
	case c.args == "containers":
		specs = append(specs, "'1:container id:_cfs_runtime_containers'")
	case c.args == "files":
		specs = append(specs, "'*:file:_files'")
	}
	fmt.Fprintf(b, "%s_arguments -s -S", indent)
	for _, s := range specs {
		fmt.Fprintf(b, " \\\n%s\t%s", indent, s)
	}
	fmt.Fprintf(b, " && ret=0\n")
}

// zshFlagSpec is the _arguments spec of a flag, single-quoted as needed:
// '(-b --bundle)'{-b,--bundle}'=[usage]:value:_files -/'.
func zshFlagSpec(f compFlag) string {
	var head string
	switch {
	case f.repeat && len(f.names) > 1:
		head = "'*'{" + strings.Join(f.names, ",") + "}"
	case f.repeat:
		head = "'*'" + f.names[0]
	case len(f.names) > 1:
		head = zshQuote("("+strings.Join(f.names, " ")+")") + "{" + strings.Join(f.names, ",") + "}"
	default:
		head = f.names[0]
	}
	spec := ""
	if f.value {
		spec = "="
	}
	if f.usage != "" {
		spec += "[" + zshEscapeSpec(f.usage) + "]"
	}
	if f.value {
		name := "value"
		switch {
		case len(f.values) > 0:
			spec += ":" + name + ":(" + strings.Join(f.values, " ") + ")"
		case f.dirs:
			spec += ":directory:_files -/"
		default:
			spec += ":" + name + ":_files"
		}
	}
	return head + zshQuote(spec)
}

// zshEscapeSpec escapes what _arguments gives a meaning inside [...].
func zshEscapeSpec(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func zshEscapeColon(s string) string { return strings.ReplaceAll(s, ":", `\:`) }

// zshQuote single-quotes s for zsh.
func zshQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
