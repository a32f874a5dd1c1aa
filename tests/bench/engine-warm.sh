#!/usr/bin/env bash
# Warm verified create (issue #18): `cfs-runtime run` of a trivial container
# whose image is already in the store, with runc, three ways interleaved:
#
#   ref/annotations   the binary of $BENCH_REF (default main), the seal in
#                     the bundle's annotations (how it was done before)
#   new/annotations   today's binary, the same bundle (no image named: no
#                     helper runs)
#   new/cri-o         today's binary, a bundle as CRI-O makes it: no
#                     composefs annotations, the image named by
#                     io.kubernetes.cri-o.ImageName/ImageRef; the seal is
#                     cached in the store by the image id (no helper runs
#                     after the first create)
#   new/cri-o helper  the same with the cache entry removed before every
#                     run: create runs cfs-runtime-engine to read the seal
#                     from containers-storage (a private one), as it does
#                     for every containerd create (containerd 1.6 passes
#                     no image id to key the cache by)
#
# Prints the median wall time of each over ROUNDS (30) rounds. Needs root,
# runc, podman, umoci.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
ROUNDS=${ROUNDS:-30}
RUNC=${RUNC:-/usr/sbin/runc}
work=$(mktemp -d /tmp/cfs-bench-engine.XXXXXX)
chmod 0755 "$work"
pm() { podman --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"; }
cleanup() {
	pm rmi -af >/dev/null 2>&1 || true
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh

make -s build >/dev/null
mkdir -p "$work/new" "$work/keys"
install_runtime bin "$work/new"
install_bin bin/cfs-runtime-tools "$work/new/cfs-runtime-tools"
install_bin bin/cfs-runtime-engine "$work/new/cfs-runtime-engine"
export BENCH_REF=${BENCH_REF:-main}
ref=$(build_ref "$work/ref")

# A sealed busybox image, in the store and in containers-storage.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/keys/k.key" 2>/dev/null
openssl pkey -in "$work/keys/k.key" -pubout -out "$work/keys/k.pub"
printf 'enforcement = "userspace"\nunsigned = "reject"\n[[signer]]\nname = "bench"\npublic_key = "%s"\n' "$work/keys/k.pub" >"$work/policy.toml"
lay=$work/lay
umoci init --layout "$lay"
umoci new --image "$lay:1"
umoci unpack --image "$lay:1" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/bin"
cp /bin/busybox "$work/b/rootfs/bin/busybox"
ln -s busybox "$work/b/rootfs/bin/true"
umoci repack --image "$lay:1" "$work/b"
seal=$("$work/new/cfs-runtime" seal --key "$work/keys/k.key" --format json "oci:$lay:1" 2>/dev/null)
"$work/new/cfs-runtime" import --store "$work/store" "oci:$lay:1" >/dev/null 2>&1
skopeo copy -q "oci:$lay:1" "containers-storage:[overlay@$work/storage+$work/run]localhost/bench:1"
id=$(pm image inspect --format '{{.Id}}' localhost/bench:1)

cat >"$work/config.toml" <<EOF
runtime = "$RUNC"
policy = "$work/policy.toml"
store_dir = "$work/store"
state_dir = "$work/state"
log_file = ""
containers_storage = "$work/storage"
EOF
# the reference binary does not know containers_storage
grep -v '^containers_storage' "$work/config.toml" >"$work/ref.toml"

bundle() { # DIR ANNOTATIONS-JSON
	mkdir -p "$1/rootfs"
	(cd "$1" && "$RUNC" spec)
	jq --argjson a "$2" '.process.terminal = false | .process.args = ["/bin/true"] | .annotations = $a' "$1/config.json" >"$1/c" && mv "$1/c" "$1/config.json"
}
bundle "$work/ann" "$seal"
bundle "$work/crio" "$(jq -n --arg r "$id" '{"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": "localhost/bench:1", "io.kubernetes.cri-o.ImageRef": $r}')"

once() { # BIN CONFIG BUNDLE ID
	local t0 t1
	t0=$EPOCHREALTIME
	CFS_RUNTIME_CONFIG=$2 "$1/cfs-runtime" run --bundle "$3" "cfs-bench-engine-$$-$4" >/dev/null
	t1=$EPOCHREALTIME
	ms "$t0" "$t1"
}
a=() b=() c=() d=()
for i in $(seq "$ROUNDS"); do
	a+=("$(once "$work/ref/bin" "$work/ref.toml" "$work/ann" "$i-a")")
	b+=("$(once "$work/new" "$work/config.toml" "$work/ann" "$i-b")")
	c+=("$(once "$work/new" "$work/config.toml" "$work/crio" "$i-c")")
	rm -rf "$work/store/engine-seals"
	d+=("$(once "$work/new" "$work/config.toml" "$work/crio" "$i-d")")
done
printf 'warm verified run (ms, median of %d): ref %s annotations %.2f | new annotations %.2f | new cri-o cached %.2f | new cri-o helper %.2f\n' \
	"$ROUNDS" "$ref" "$(echo "${a[*]}" | median)" "$(echo "${b[*]}" | median)" "$(echo "${c[*]}" | median)" "$(echo "${d[*]}" | median)"
