//go:build linux

package hooks

import (
	"reflect"
	"testing"
)

func TestParseOverlayOptions(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		want       overlayOptions
	}{
		{
			// Linux 6.12 and 6.18, mount(2) with lowerdir=EROFS::OBJECTS
			name: "mount2",
			opts: "ro,lowerdir=/run/c/lower::/store/objects,redirect_dir=on,metacopy=on,verity=require",
			want: overlayOptions{lower: []string{"/run/c/lower"}, data: []string{"/store/objects"}, verity: "require"},
		},
		{
			// the new mount API: lowerdir+ and datadir+, one layer each
			name: "fsconfig",
			opts: "ro,lowerdir+=/run/c/lower,datadir+=/store/objects,datadir+=/store2,redirect_dir=on,metacopy=on,verity=require",
			want: overlayOptions{lower: []string{"/run/c/lower"}, data: []string{"/store/objects", "/store2"}, verity: "require"},
		},
		{
			name: "podman-overlay",
			opts: "rw,lowerdir=/var/lib/containers/storage/overlay/l/ABC:/var/lib/containers/storage/overlay/l/DEF,upperdir=/u/diff,workdir=/u/work,redirect_dir=nofollow,uuid=on",
			want: overlayOptions{lower: []string{"/var/lib/containers/storage/overlay/l/ABC", "/var/lib/containers/storage/overlay/l/DEF"}, upper: "/u/diff"},
		},
		{
			// A path with a comma, a colon and a space, mounted as
			// lowerdir=/tmp/a\,b\:c d::/data: the kernel keeps the
			// overlay escapes and adds its own octal ones (6.18).
			name: "escapes",
			opts: `ro,lowerdir=/tmp/a\134\054b\134:c\040d::/data,redirect_dir=on,metacopy=on,verity=on`,
			want: overlayOptions{lower: []string{"/tmp/a,b:c d"}, data: []string{"/data"}, verity: "on"},
		},
		{
			name: "two-data-layers",
			opts: "lowerdir=/a:/b::/c::/d",
			want: overlayOptions{lower: []string{"/a", "/b"}, data: []string{"/c", "/d"}},
		},
		{
			name: "octal-in-fsconfig-path",
			opts: `lowerdir+=/x\075y\011z,verity=require`,
			want: overlayOptions{lower: []string{"/x=y\tz"}, verity: "require"},
		},
		{name: "none", opts: "rw", want: overlayOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseOverlayOptions(tc.opts); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnescapeOption(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:            "plain",
		`a\040b`:           "a b",
		`\134\134`:         `\\`,
		`trailing\04`:      `trailing\04`, // not three digits: kept
		`\999`:             `\999`,        // not octal
		`\400`:             `\400`,        // more than a byte
		`x\012y`:           "x\ny",
		`/p/\303\251t\303`: "/p/\xc3\xa9t\xc3",
	} {
		if got := unescapeOption(in); got != want {
			t.Errorf("unescapeOption(%q) = %q, want %q", in, got, want)
		}
	}
}
