# shellcheck shell=bash
# Inputs for the warm verified-create benchmark in the guest
# (10-create-require.sh), made on the host with the guest's static binaries:
#
#   small/, big/        root file systems: busybox and a few directories;
#                       big/ adds BIG-1 files under data/ (128 bytes each, one
#                       of 1,000 contents: objects, not inline data)
#   store/              both imported (objects get fs-verity in the guest)
#   cfg/plain.json      runc's config on small/ (read-only root), unsigned
#   cfg/small.json, cfg/big.json   signed by keys/bench.pub (readonly root)
#   bundles b-runc/ b-shim/ b-small/ b-big/: config.json is copied from cfg/
#                       before each create (create rewrites root.path)
#   digests             SMALL=<hex> BIG=<hex>
# and in the guest root: cyclebench, bare-shim (a Go program that only execs
# runc: the floor for a Go wrapper).
C=$VM_ROOT/usr/local/bin/cfs-runtime
D=$VM_DATA
BIG=${CFS_BENCH_BIG:-100000}
G=/data/$(basename "$D") # where $D is in the guest

vm_go build -o "$VM_ROOT/usr/local/bin/cyclebench" ./tests/bench/tools/cyclebench
k=$(mktemp -d)
trap 'rm -rf "$k"' EXIT
vm_go build -o "$VM_ROOT/usr/local/bin/bare-shim" ./tests/bench/tools/bareshim

tree() { # DIR NFILES
	mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/etc"
	cp /bin/busybox "$1/bin/busybox"
	python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n - 1):
    sub = os.path.join(root, "data", "%03d" % (i % 1000))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%06d" % i), "wb") as f:
        f.write((b"%08d" % (i % 1000)) * 16)
PY
}
tree "$D/small" 1
tree "$D/big" "$BIG"
small=$("$C" import --store "$D/store" "$D/small")
big=$("$C" import --store "$D/store" "$D/big")
printf 'SMALL=%s\nBIG=%s\n' "$small" "$big" >"$D/digests"

mkdir -p "$D/keys" "$D/cfg"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/bench.pem" 2>/dev/null
openssl pkey -in "$k/bench.pem" -pubout -out "$D/keys/bench.pub"
runc spec --bundle "$k"
jq --arg r "$G/small" '.process.terminal = false | .process.args = ["/bin/busybox", "true"] |
	.root = {path: $r, readonly: true}' "$k/config.json" >"$D/cfg/plain.json"
for n in small big; do
	d=$(eval echo "\$$n")
	"$C" sign --key "$k/bench.pem" --format json "$d" >"$k/$n.ann"
	jq --slurpfile a "$k/$n.ann" '.annotations = $a[0] | .root.path = "rootfs"' "$D/cfg/plain.json" >"$D/cfg/$n.json"
done
mkdir -p "$D/b-runc" "$D/b-shim" "$D/b-small/rootfs" "$D/b-big/rootfs"
