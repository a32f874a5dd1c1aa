package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// fileManPages are the section 5 pages, made from the reference in docs/
// (docs/config.md, docs/policy.md) so that there is one text to keep
// true: file name, the doc it comes from, its NAME line, the file it
// describes.
var fileManPages = []struct{ page, doc, usage, file string }{
	{"cfs-runtime-config.toml.5", "config.md", "cfs-runtime's configuration file", "/etc/cfs-runtime/config.toml"},
	{"cfs-runtime-policy.toml.5", "policy.md", "cfs-runtime's trust policy", "/etc/cfs-runtime/policy.toml"},
}

// fileManPagesFrom renders the section 5 pages from the docs in dir.
func fileManPagesFrom(dir string) (map[string]string, error) {
	pages := map[string]string{}
	for _, p := range fileManPages {
		md, err := os.ReadFile(filepath.Join(dir, p.doc))
		if err != nil {
			return nil, fmt.Errorf("man page %s: %w", p.page, err)
		}
		name := strings.TrimSuffix(p.page, ".5")
		m := &roff{}
		m.headerSection(name, "5", p.usage)
		m.section("SYNOPSIS")
		m.raw(`\fI` + escape(p.file) + `\fR`)
		m.section("DESCRIPTION")
		markdownToRoff(m, string(md))
		m.section("SEE ALSO")
		also := []string{`\fBcfs\-runtime\fR(8)`, `\fBcfs\-runtime\-policy\fR(8)`, `\fBcfs\-runtime\-doctor\fR(8)`}
		for _, q := range fileManPages {
			if q.page != p.page {
				also = append(also, `\fB`+escape(strings.TrimSuffix(q.page, ".5"))+`\fR(5)`)
			}
		}
		m.raw(strings.Join(also, ", "))
		pages[p.page] = m.String()
	}
	return pages, nil
}

var mdLink = regexp.MustCompile(`\[([^\]]+)\]\([^)]+\)`)

// markdownToRoff writes the markdown the reference docs use (a title,
// paragraphs, tables, fenced and indented code, bullet lists, ## headings)
// as man(7).
// The title is left out: the page's NAME says it. A table becomes tagged
// paragraphs: the first column the tag, then the "meaning" column, then
// the others as "header: cell".
func markdownToRoff(m *roff, md string) {
	lines := strings.Split(md, "\n")
	var para []string
	flush := func() {
		if len(para) > 0 {
			m.text(mdLink.ReplaceAllString(strings.Join(para, " "), "$1"))
			para = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "# "):
			flush()
		case strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "### "):
			flush()
			m.subsection(strings.TrimLeft(l, "# "))
		case strings.HasPrefix(l, "```"):
			flush()
			m.WriteString(".PP\n.nf\n")
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				m.raw(escapeLine(lines[i]))
			}
			m.WriteString(".fi\n")
		case strings.HasPrefix(l, "|"):
			flush()
			header := tableCells(l)
			i++ // the --- row
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "|") {
				i++
				cells := tableCells(lines[i])
				// The "meaning" column first, then "header: cell".
				var meaning string
				var parts []string
				for j := 1; j < len(cells) && j < len(header); j++ {
					switch {
					case cells[j] == "":
					case header[j] == "meaning":
						meaning = strings.TrimSuffix(cells[j], ".")
					default:
						parts = append(parts, header[j]+": "+cells[j])
					}
				}
				if meaning != "" {
					parts = append([]string{meaning}, parts...)
				}
				m.item(line(mdLink.ReplaceAllString(cells[0], "$1")), mdLink.ReplaceAllString(strings.Join(parts, "; "), "$1"))
			}
		case strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "- "):
			flush()
			item := []string{l[2:]}
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
				i++
				item = append(item, strings.TrimSpace(lines[i]))
			}
			m.WriteString(".IP \\(bu 2\n")
			m.raw(line(mdLink.ReplaceAllString(strings.Join(item, " "), "$1")))
		case strings.TrimSpace(l) == "":
			flush()
		case len(para) == 0 && (strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t")):
			// An indented code block: kept as it is.
			m.WriteString(".PP\n.nf\n")
			for ; i < len(lines) && (strings.HasPrefix(lines[i], "    ") || strings.HasPrefix(lines[i], "\t")); i++ {
				m.raw(escapeLine(strings.TrimPrefix(strings.TrimPrefix(lines[i], "\t"), "    ")))
			}
			i--
			m.WriteString(".fi\n")
		default:
			para = append(para, strings.TrimSpace(l))
		}
	}
	flush()
}

// tableCells splits a markdown table row, undoing \| escapes.
func tableCells(row string) []string {
	row = strings.Trim(strings.TrimSpace(row), "|")
	cells := strings.Split(strings.ReplaceAll(row, `\|`, "\x00"), "|")
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(strings.TrimSpace(c), "\x00", "|")
	}
	return cells
}

// escapeLine escapes a line of a code block.
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
