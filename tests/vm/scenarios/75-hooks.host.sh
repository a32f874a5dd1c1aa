# shellcheck shell=bash
# Inputs for hook mode in the guest (75-hooks.sh), made on the host with the
# cfs-runtime binary run.sh just built for the guest (static, so it runs
# here too):
#
#   a.cfs, b.cfs      composefs images of two busybox trees (mkimage), whose
#                     /etc/hello differ; objects/ holds the files of both
#   keys/trusted.pub  the key the guest's policy trusts (its private half
#                     signs A's image digest here and is not staged)
#   digests           DA=<hex> DB=<hex>: the images' fs-verity digests (sh)
#   bundle/config.json  runc spec + jq: `cat /etc/hello`, read-only root
#                     /mnt/75-hooks/merged (the guest mounts composefs
#                     there), annotations of A signed by the trusted key,
#                     and hooks.createRuntime: cfs-runtime hook createRuntime
#                     with the guest's configuration
C=$VM_ROOT/usr/local/bin/cfs-runtime
[ -x "$C" ] || {
	echo "no cfs-runtime in the guest root (did go build fail?)"
	exit 1
}
D=$VM_DATA
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# images A and B and their objects; a blob larger than 64 bytes is an
# object (smaller files are inline), so the overlay's verity=require has
# something to check
for n in a b; do
	vm_busybox_rootfs "$t/$n"
	echo "hello from image ${n^^}" >"$t/$n/etc/hello"
	head -c 4096 /dev/urandom >"$t/$n/blob"
	"$C" mkimage --digest-store "$D/objects" "$t/$n" "$D/$n.cfs"
done
dA=$(fsverity digest --compact --hash-alg=sha256 "$D/a.cfs")
dB=$(fsverity digest --compact --hash-alg=sha256 "$D/b.cfs")
[ "$("$C" verity digest "$D/a.cfs")" = "sha256:$dA $D/a.cfs" ]
[ "$dA" != "$dB" ]
printf 'DA=%s\nDB=%s\n' "$dA" "$dB" >"$D/digests"

mkdir -p "$D/keys"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/trusted.pem" 2>/dev/null
openssl pkey -in "$t/trusted.pem" -pubout -out "$D/keys/trusted.pub"
"$C" sign --key "$t/trusted.pem" --format json "$D/a.cfs" >"$t/a.json"
jq -e --arg d "$dA" '.["composefs.merged.erofs.v1.fsverity-sha256-12"] == $d' "$t/a.json" >/dev/null

mkdir -p "$D/bundle"
runc spec --bundle "$t"
jq --slurpfile a "$t/a.json" \
	'.process.terminal = false | .process.args = ["cat", "/etc/hello"] |
	 .root = {"path": "/mnt/75-hooks/merged", "readonly": true} | .annotations = $a[0] |
	 .hooks.createRuntime = [{"path": "/usr/local/bin/cfs-runtime", "args": ["cfs-runtime", "hook", "createRuntime"],
	                          "env": ["CFS_RUNTIME_CONFIG=/etc/cfs-runtime/75-hooks.toml"]}]' \
	"$t/config.json" >"$D/bundle/config.json"
