# shellcheck shell=bash
# Shared by the create benchmarks' host side: their VM hooks
# (tests/bench/vm/*.host.sh) and tests/bench/create-cost.sh. Sourced from
# the repository root.

# bench_tree DIR NFILES [bare]: a root file system: busybox (not if bare)
# and the usual directories, and NFILES-1 files under data/ (128 bytes
# each, one of 1,000 contents: objects, not inline data).
bench_tree() {
	mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/etc"
	[ "${3:-}" = bare ] || cp /bin/busybox "$1/bin/busybox"
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

# bench_images CFS DIR ROOT NAME...: the trees DIR/NAME (bench_tree)
# imported and signed with cfs-runtime binary CFS, in DIR:
#
#   store/              the images (objects get fs-verity in the guest)
#   keys/bench.pub      the signer's public key (the private key is gone)
#   cfg/plain.json      runc's config on ROOT (read-only root), unsigned
#   cfg/NAME.json       the same signed with the key for NAME's digest,
#                       root.path "rootfs" (create rewrites it)
#   digests             NAME=<hex> lines, NAME in capitals
bench_images() {
	local c=$1 d=$2 root=$3 k n digest
	shift 3
	k=$(mktemp -d)
	mkdir -p "$d/keys" "$d/cfg"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/bench.pem" 2>/dev/null
	openssl pkey -in "$k/bench.pem" -pubout -out "$d/keys/bench.pub"
	runc spec --bundle "$k"
	jq --arg r "$root" '.process.terminal = false | .process.args = ["/bin/busybox", "true"] |
		.root = {path: $r, readonly: true}' "$k/config.json" >"$d/cfg/plain.json"
	: >"$d/digests"
	for n in "$@"; do
		digest=$("$c" import --store "$d/store" "$d/$n")
		echo "${n^^}=$digest" >>"$d/digests"
		"$c" sign --key "$k/bench.pem" --format json "$digest" >"$k/$n.ann"
		jq --slurpfile a "$k/$n.ann" '.annotations = $a[0] | .root.path = "rootfs"' "$d/cfg/plain.json" >"$d/cfg/$n.json"
	done
	rm -rf "$k"
}

# bench_vm_images: bench_images in $VM_DATA with the guest's cfs-runtime:
# small (busybox), big (busybox and CFS_BENCH_BIG-1 files, default
# 100,000 in all) and tiny (9 files of 128 bytes, no busybox); plain.json
# on small. Stages the guest's helpers (lib.guest.sh) as /vm/bench-lib.sh.
bench_vm_images() {
	install -m 0644 tests/bench/vm/lib.guest.sh "$VM_ROOT/vm/bench-lib.sh"
	bench_tree "$VM_DATA/small" 1
	bench_tree "$VM_DATA/big" "${CFS_BENCH_BIG:-100000}"
	bench_tree "$VM_DATA/tiny" 10 bare
	bench_images "$VM_ROOT/usr/local/bin/cfs-runtime" "$VM_DATA" "/data/$(basename "$VM_DATA")/small" small big tiny
}
