# shellcheck shell=bash
# Inputs for verified create in the guest (50-verified-create.sh), made on
# the host with the cfs-runtime binary run.sh just built for the guest (it is
# static, so it runs here too):
#
#   a/rootfs            image A: busybox, /etc/hello, /blob (100 KiB random:
#                       the object the guest corrupts)
#   b/rootfs            image B: busybox, another /etc/hello
#   keys/trusted.pub    the key the guest's policy trusts (its private half
#                       signs here and is not staged); other.* an untrusted key
#   cfg/NAME.json       OCI configs for a/rootfs (`runc spec` + jq), differing
#                       in annotations and process:
#                         signed       A signed by the trusted key, writable root
#                         eio          A signed, reads /blob
#                         cycle        A signed, read-only root (create/delete cycles)
#                         sleeper      A signed, sleeps (a running container)
#                         unsigned     no annotations
#                         wrong-key    A signed by the untrusted key
#                         other-digest A's digest with the trusted signature of B's
#                         bad-cwd      A signed, a relative process.cwd (runc refuses)
#   b.annotations.json  B signed by the trusted key
#   digests             DA=<hex> DB=<hex> DBLOB=<hex of /blob's object> (sh)
#   noverity.img        an ext4 made without the verity feature
C=$VM_ROOT/usr/local/bin/cfs-runtime
[ -x "$C" ] || {
	echo "no cfs-runtime in the guest root (did go build fail?)"
	exit 1
}
D=$VM_DATA

rootfs() { # rootfs DIR HELLO
	vm_busybox_rootfs "$1"
	echo "$2" >"$1/etc/hello"
	chmod 0755 "$1"
}
rootfs "$D/a/rootfs" "hello from signed image A"
head -c 102400 /dev/urandom >"$D/a/rootfs/blob"
rootfs "$D/b/rootfs" "hello from image B"
# mkfs.ext4 -d keeps whole seconds of the mtimes only, and the composefs
# digest covers them: pin every mtime to a whole second, so that the digest
# signed here is the digest of the tree the guest reads from its disk.
find "$D/a" "$D/b" -exec touch -h -d @1700000000 {} +
dA=$("$C" digest "$D/a/rootfs")
dB=$("$C" digest "$D/b/rootfs")
dBlob=$(fsverity digest --compact "$D/a/rootfs/blob")
[ "$dA" != "$dB" ]
printf 'DA=%s\nDB=%s\nDBLOB=%s\n' "$dA" "$dB" "$dBlob" >"$D/digests"

# keys: only the public halves go to the guest
k=$(mktemp -d)
trap 'rm -rf "$k"' EXIT
mkdir -p "$D/keys"
for n in trusted other; do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/$n.pem" 2>/dev/null
	openssl pkey -in "$k/$n.pem" -pubout -out "$D/keys/$n.pub"
done
"$C" sign --key "$k/trusted.pem" --format json "$dA" >"$k/a.json"
"$C" sign --key "$k/other.pem" --format json "$dA" >"$k/a-other.json"
"$C" sign --key "$k/trusted.pem" --format json "$dB" >"$D/b.annotations.json"
key=composefs.merged.erofs.v1.fsverity-sha256-12
jq -e --arg d "$dA" --arg k "$key" '.[$k] == $d and (.[$k + ".cosign"] | length > 0)' "$k/a.json" >/dev/null
# A's digest, with the (valid) trusted signature over B's digest
jq --arg k "$key" --slurpfile b "$D/b.annotations.json" '.[$k + ".cosign"] = $b[0][$k + ".cosign"]' \
	"$k/a.json" >"$k/a-otherdigest.json"

# OCI configs
mkdir -p "$D/cfg"
runc spec --bundle "$k"
cfg() { # cfg NAME ANNOTATIONS_FILE|"" READONLY SHELL_COMMAND
	local ann='{}'
	[ -n "$2" ] && ann=$(cat "$2")
	jq --argjson a "$ann" --argjson ro "$3" --arg cmd "$4" \
		'.process.terminal = false | .process.args = ["sh", "-c", $cmd] | .root.readonly = $ro |
		 if $a == {} then del(.annotations) else .annotations = $a end' \
		"$k/config.json" >"$D/cfg/$1.json"
}
# what the container's root is: its own mountinfo
show_root='cat /proc/self/mountinfo'
cfg signed "$k/a.json" false "cat /etc/hello; echo written >/etc/written && cat /etc/written; $show_root"
cfg eio "$k/a.json" true "cat /etc/hello; cat /blob >/dev/null"
cfg cycle "$k/a.json" true "true"
cfg sleeper "$k/a.json" true "sleep 600"
cfg unsigned "" true "cat /etc/hello; $show_root"
cfg wrong-key "$k/a-other.json" true "true"
cfg other-digest "$k/a-otherdigest.json" true "true"
# signed, but runc itself refuses it (process.cwd must be absolute), after
# cfs-runtime has mounted the image
jq '.process.cwd = "relative"' "$D/cfg/cycle.json" >"$D/cfg/bad-cwd.json"
jq -e '.annotations | length == 2' "$D/cfg/signed.json" >/dev/null
jq -e 'has("annotations") | not' "$D/cfg/unsigned.json" >/dev/null

# a store on an ext4 without the verity feature (loop-mounted in the guest)
mkfs.ext4 -q -F -b 4096 -O ^verity "$D/noverity.img" 32M
