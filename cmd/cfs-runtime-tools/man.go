package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/urfave/cli/v2"
)

// generate-man, a hidden command that `make man` runs: it writes
// cfs-runtime.8 and one page per command, cfs-runtime-COMMAND.8, from the
// command definitions (and oci.Commands for the commands runc/crun run),
// and with DOCS (the repository's docs/) the section 5 pages of the files,
// cfs-runtime-config.toml.5 and cfs-runtime-policy.toml.5 (man5.go).
func init() {
	toolCommands = append(toolCommands, &cli.Command{
		Name:      "generate-man",
		Hidden:    true,
		ArgsUsage: "DIR [DOCS]",
		Action: func(c *cli.Context) error {
			dir := c.Args().First()
			if dir == "" {
				return fmt.Errorf("generate-man: missing output directory")
			}
			pages := manPages(c.App.Commands)
			if docs := c.Args().Get(1); docs != "" {
				files, err := fileManPagesFrom(docs)
				if err != nil {
					return fmt.Errorf("generate-man: %w", err)
				}
				for name, page := range files {
					pages[name] = page
				}
			}
			for name, page := range pages {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(page), 0o644); err != nil {
					return fmt.Errorf("generate-man: %w", err)
				}
			}
			return nil
		},
	})
}

// manPages returns every page by file name.
func manPages(tools []*cli.Command) map[string]string {
	pages := map[string]string{"cfs-runtime.8": mainManPage(tools)}
	for _, c := range tools {
		if !c.Hidden {
			pages["cfs-runtime-"+c.Name+".8"] = commandManPage(c)
		}
	}
	return pages
}

func mainManPage(tools []*cli.Command) string {
	m := &roff{}
	m.header("cfs-runtime", "run OCI containers only from signed, fs-verity protected composefs images")
	m.section("SYNOPSIS")
	m.raw(`\fBcfs\-runtime\fR [\fB\-\-cfs\-config\fR \fIFILE\fR] [\fIruntime global options\fR] \fICOMMAND\fR [\fIoptions\fR] [\fIarguments\fR]`)
	m.section("DESCRIPTION")
	m.text("cfs-runtime is an OCI runtime that stands in front of runc (or crun). " +
		"A container starts only from a root filesystem whose composefs digest is signed by a key the trust policy trusts, " +
		"mounted so that fs-verity checks what is read. " +
		"Container engines (`podman --runtime`, containerd and CRI-O runtime handlers) drive it exactly as they drive runc.")
	m.text("`create` and `run` load the bundle's config.json and the trust policy, verify the signature of the composefs digest " +
		"in the container's annotations (composefs.merged.erofs.v1.fsverity-sha256-12 and its .sig, .cosign or .sigstore-bundle), " +
		"find the image in the store (or import the bundle's root filesystem and require that it has the signed digest), " +
		"enforce the policy's level (require, measure or userspace), mount the composefs image, point root.path at it " +
		"and execute the real runtime with the same arguments. Every other runtime command is handed to the real runtime untouched.")
	m.text("When cfs-runtime refuses a container it exits 1, prints one line `cfs-runtime: REASON` on standard error " +
		"and appends the same message to the runtime's --log file (JSON with --log-format json): what podman, conmon, containerd and CRI-O show.")
	m.section("RUNTIME COMMANDS")
	m.text("Handled by the real runtime, with its options (see runc(8)):")
	for _, rc := range oci.Commands() {
		m.item(`\fB`+escape(rc.Name)+`\fR`, rc.Usage)
	}
	m.section("COMMANDS")
	m.text("cfs-runtime's own commands; each has its page:")
	for _, c := range tools {
		if !c.Hidden {
			m.item(`\fBcfs\-runtime\-`+escape(c.Name)+`\fR(8)`, c.Usage)
		}
	}
	m.section("GLOBAL OPTIONS")
	m.item(`\fB\-\-cfs\-config\fR \fIFILE\fR`, "cfs-runtime's configuration file, instead of $CFS_RUNTIME_CONFIG or /etc/cfs-runtime/config.toml. Removed from the command line before the real runtime runs.")
	m.text("Every other global option (--root, --log, --log-format, --debug, --systemd-cgroup, ...) is the real runtime's and is passed to it. " +
		"--version prints cfs-runtime's version, then the runtime's; --help cfs-runtime's commands, then the runtime's help.")
	m.section("FILES")
	m.item(`\fI/etc/cfs\-runtime/config.toml\fR`, "the configuration: runtime, store_dir, state_dir, log_file, log_level, policy, audit_file. A missing file means the defaults. See cfs-runtime-config.toml(5).")
	m.item(`\fI/etc/cfs\-runtime/policy.toml\fR`, "the trust policy: enforcement, unsigned, [[signer]], [[allow_unsigned]]. Must be owned by root and writable by root only; without it every container is refused. See cfs-runtime-policy.toml(5).")
	m.item(`\fI/var/lib/cfs\-runtime\fR`, "the store: composefs images (images/DIGEST) and content objects (objects/XX/...).")
	m.item(`\fI/run/cfs\-runtime/ID\fR`, "the composefs mount and writable layer of container ID, removed when the container is deleted.")
	m.item(`\fI/var/log/cfs\-runtime.log\fR`, "cfs-runtime's own log.")
	m.section("ENVIRONMENT")
	m.item(`\fBCFS_RUNTIME_CONFIG\fR`, "the configuration file (podman and conmon start the runtime with a scrubbed environment: use /etc/cfs-runtime/config.toml there).")
	m.item(`\fBCOSIGN_PASSWORD\fR`, "the password of an encrypted signing key (sign, seal); when it is not set and stdin is a terminal, the password is asked for.")
	m.item(`\fBCFS_RUNTIME_SIGSTORE\fR`, "the cfs-runtime-sigstore helper that verifies keyless sigstore bundles.")
	m.section("EXIT STATUS")
	m.text("For runtime commands, the real runtime's exit status (create and run: 1 when cfs-runtime refuses the container). " +
		"For cfs-runtime's own commands 0 on success, 1 on failure, 2 on a usage error; see each command's page.")
	m.section("SEE ALSO")
	var also []string
	for _, c := range tools {
		if !c.Hidden {
			also = append(also, `\fBcfs\-runtime\-`+escape(c.Name)+`\fR(8)`)
		}
	}
	for _, p := range fileManPages {
		also = append(also, `\fB`+escape(strings.TrimSuffix(p.page, ".5"))+`\fR(5)`)
	}
	also = append(also, `\fBrunc\fR(8)`, `\fBpodman\-run\fR(1)`, `\fBcontainers.conf\fR(5)`, `\fBfsverity\fR(1)`, `\fBmkcomposefs\fR(1)`)
	m.raw(strings.Join(also, ", "))
	return m.String()
}

func commandManPage(c *cli.Command) string {
	m := &roff{}
	m.header("cfs-runtime-"+c.Name, c.Usage)
	m.section("SYNOPSIS")
	m.raw(synopsis("cfs-runtime "+c.Name, c))
	m.section("DESCRIPTION")
	if c.Description != "" {
		m.text(c.Description)
	} else {
		m.text(sentence(c.Usage))
	}
	if flags := visibleFlags(c.Flags); len(flags) > 0 {
		m.section("OPTIONS")
		m.flags(flags)
	}
	var subs []*cli.Command
	for _, s := range c.Subcommands {
		if !s.Hidden && s.Name != "help" {
			subs = append(subs, s)
		}
	}
	if len(subs) > 0 {
		m.section("COMMANDS")
		for _, s := range subs {
			m.subsection(s.Name)
			m.raw(synopsis("cfs-runtime "+c.Name+" "+s.Name, s))
			m.text(sentence(s.Usage))
			if s.Description != "" {
				m.text(s.Description)
			}
			m.flags(visibleFlags(s.Flags))
		}
	}
	m.section("SEE ALSO")
	m.raw(`\fBcfs\-runtime\fR(8)`)
	return m.String()
}

// synopsis is "cfs-runtime CMD [options] ARGS" in roff.
func synopsis(name string, c *cli.Command) string {
	s := `\fB` + escape(name) + `\fR`
	if len(visibleFlags(c.Flags)) > 0 {
		s += ` [\fIoptions\fR]`
	}
	a := strings.TrimSpace(c.ArgsUsage)
	if a == "" && len(c.Subcommands) > 0 {
		a = "COMMAND [options] [arguments]"
		if c.Action != nil { // the command does something without one
			a = "[" + a + "]"
		}
	}
	if a != "" {
		s += ` \fI` + escape(a) + `\fR`
	}
	return s
}

// sentence turns a command's usage into a sentence.
func sentence(usage string) string {
	if usage == "" {
		return ""
	}
	return strings.ToUpper(usage[:1]) + usage[1:] + "."
}

func visibleFlags(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if _, ok := f.(cli.DocGenerationFlag); ok && !isHiddenFlag(f) {
			out = append(out, f)
		}
	}
	return out
}

// roff builds a man(7) page.
type roff struct{ strings.Builder }

func (m *roff) header(name, usage string) { m.headerSection(name, "8", usage) }

func (m *roff) headerSection(name, section, usage string) {
	fmt.Fprintf(m, ".TH %s %s \"\" \"cfs-runtime %s\" \"cfs-runtime manual\"\n", strings.ToUpper(escape(name)), section, escape(version))
	// No hyphenation, ragged right: digests and option names stay whole.
	m.WriteString(".nh\n.ad l\n")
	m.section("NAME")
	m.raw(escape(name) + ` \- ` + escape(usage))
}

func (m *roff) section(title string) { fmt.Fprintf(m, ".SH %s\n", title) }

func (m *roff) subsection(title string) { fmt.Fprintf(m, ".SS %s\n", escape(title)) }

// raw writes a line that is already roff.
func (m *roff) raw(line string) { fmt.Fprintf(m, "%s\n", line) }

// text writes paragraphs of help text: blank lines separate paragraphs,
// lines are filled, `code` is bold; a paragraph of indented lines is kept
// as it is.
func (m *roff) text(s string) {
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		m.WriteString(".PP\n")
		lines := strings.Split(para, "\n")
		if strings.HasPrefix(lines[0], " ") || strings.HasPrefix(lines[0], "\t") {
			m.WriteString(".nf\n")
			for _, l := range lines {
				m.raw(line(l))
			}
			m.WriteString(".fi\n")
			continue
		}
		for i, l := range lines {
			lines[i] = strings.TrimSpace(l)
		}
		m.raw(line(strings.Join(lines, " ")))
	}
}

// item writes a tagged paragraph: tag (roff) and filled text.
func (m *roff) item(tag, text string) {
	m.WriteString(".TP\n")
	m.raw(tag)
	m.raw(line(text))
}

func (m *roff) flags(flags []cli.Flag) {
	for _, f := range flags {
		df := f.(cli.DocGenerationFlag)
		placeholder, usage := flagPlaceholder(df.GetUsage())
		var names []string
		for _, n := range f.Names() {
			n = `\fB` + escape(dashed(n)) + `\fR`
			if df.TakesValue() {
				if placeholder == "" {
					placeholder = "value"
				}
				n += ` \fI` + escape(placeholder) + `\fR`
			}
			names = append(names, n)
		}
		if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
			usage += " (required)"
		} else if def := df.GetDefaultText(); df.TakesValue() && def != "" {
			usage += " (default: " + def + ")"
		}
		if sf, ok := f.(cli.DocGenerationSliceFlag); ok && sf.IsSliceFlag() {
			usage += " May be given more than once."
		}
		m.item(strings.Join(names, ", "), usage)
	}
}

// line escapes one line of help text and sets `code` in bold.
func line(s string) string {
	parts := strings.Split(s, "`")
	for i, p := range parts {
		parts[i] = escape(p)
		switch {
		case i%2 == 0:
		case i < len(parts)-1:
			parts[i] = `\fB` + parts[i] + `\fR`
		default: // an unpaired backquote stays
			parts[i] = "`" + parts[i]
		}
	}
	out := strings.Join(parts, "")
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// escape makes text literal in roff.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}
