//go:build linux

package hooks

import (
	"strconv"
	"strings"
)

// overlayOptions is what the check reads of an overlay's superblock
// options in mountinfo.
type overlayOptions struct {
	lower  []string // layers merged into the tree, top first
	data   []string // data-only layers (after "::", or datadir+)
	upper  string
	verity string // "" (off), "on" or "require"
}

// parseOverlayOptions reads an overlay's options as mountinfo shows them:
// lowerdir=A:B::D (mount(2); Linux ≥ 6.5 shows the string as given) or
// lowerdir+=A,datadir+=D (the new mount API, Linux ≥ 6.8).
func parseOverlayOptions(s string) overlayOptions {
	var o overlayOptions
	for _, opt := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(opt, "=")
		v = unescapeOption(v)
		switch k {
		case "lowerdir":
			o.lower, o.data = splitLowerdir(v)
		case "lowerdir+":
			o.lower = append(o.lower, v)
		case "datadir+":
			o.data = append(o.data, v)
		case "upperdir":
			o.upper = v
		case "verity":
			o.verity = v
		}
	}
	return o
}

// splitLowerdir splits a lowerdir= value the way overlayfs does: layers
// separated by ':', data-only layers after "::", '\' escaping the next
// character.
func splitLowerdir(v string) (lower, data []string) {
	if v == "" {
		return nil, nil
	}
	layers := &lower
	var cur []byte
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur = append(cur, v[i])
		case v[i] == ':':
			*layers = append(*layers, string(cur))
			cur = cur[:0]
			if i+1 < len(v) && v[i+1] == ':' {
				i++
				layers = &data
			}
		default:
			cur = append(cur, v[i])
		}
	}
	*layers = append(*layers, string(cur))
	return lower, data
}

// unescapeOption undoes mountinfo's escaping of option values: the kernel
// writes ',', '=', whitespace and '\' as a backslash and three octal digits.
func unescapeOption(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
