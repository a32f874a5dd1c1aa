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
#                     from containers-storage (a private one)
#   ref/containerd    the binaries of $BENCH_REF, a bundle as containerd's
#                     CRI makes it (io.kubernetes.cri.image-name, no
#                     composefs annotations) for a container of which a
#                     private containerd 1.6 has a record: the reference
#                     runs cfs-runtime-engine at every create
#   new/containerd    today's binaries, the same bundle: cfs-runtime-mount
#                     reads containerd's records itself (internal/ctrdapi)
#                     and the seal from the cache keyed by the manifest's
#                     digest (no helper after the first create)
#
# Prints the median wall time of each over ROUNDS (30) rounds. Needs root,
# runc, podman, umoci, skopeo, containerd and ctr.
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

# A private containerd (no CRI plugin) holding the image and a container
# record of it, as the CRI plugin makes one before it calls the runtime.
mkdir -p "$work/ctrd"
printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
	"$work/ctrd/root" "$work/ctrd/state" "$work/ctrd/sock" >"$work/ctrd/config.toml"
containerd --config "$work/ctrd/config.toml" >"$work/ctrd/log" 2>&1 &
ctrd_pid=$!
stop_ctrd() {
	kill "$ctrd_pid" 2>/dev/null || true
	wait "$ctrd_pid" 2>/dev/null || true
	cleanup
}
trap stop_ctrd EXIT
cctr() { ctr --address "$work/ctrd/sock" --namespace k8s.io "$@"; }
for _ in $(seq 100); do
	cctr version >/dev/null 2>&1 && break
	sleep 0.1
done
skopeo copy -q "oci:$lay:1" "oci-archive:$work/bench.tar:localhost/bench:1"
cctr images import --no-unpack "$work/bench.tar" >/dev/null
cctr images ls -q | grep -qx localhost/bench:1
ctrid=cfs-bench-ctrd-$$
cctr containers create --snapshotter native localhost/bench:1 "$ctrid" >/dev/null 2>&1 ||
	cctr containers create localhost/bench:1 "$ctrid" >/dev/null

cat >"$work/config.toml" <<EOF
runtime = "$RUNC"
policy = "$work/policy.toml"
store_dir = "$work/store"
state_dir = "$work/state"
log_file = ""
containers_storage = "$work/storage"
containerd_address = "$work/ctrd/sock"
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
bundle "$work/ctrd-bundle" '{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.image-name": "localhost/bench:1"}'

once() { # BIN CONFIG BUNDLE ID (ID "=NAME": the container NAME)
	local t0 t1 name=cfs-bench-engine-$$-$4
	[ "${4#=}" = "$4" ] || name=${4#=}
	t0=$EPOCHREALTIME
	CFS_RUNTIME_CONFIG=$2 "$1/cfs-runtime" run --bundle "$3" "$name" >/dev/null
	t1=$EPOCHREALTIME
	ms "$t0" "$t1"
}
a=() b=() c=() d=() e=() f=()
for i in $(seq "$ROUNDS"); do
	e+=("$(once "$work/ref/bin" "$work/ref.toml" "$work/ctrd-bundle" "=$ctrid")")
	f+=("$(once "$work/new" "$work/config.toml" "$work/ctrd-bundle" "=$ctrid")")
	a+=("$(once "$work/ref/bin" "$work/ref.toml" "$work/ann" "$i-a")")
	b+=("$(once "$work/new" "$work/config.toml" "$work/ann" "$i-b")")
	c+=("$(once "$work/new" "$work/config.toml" "$work/crio" "$i-c")")
	rm -f "$work/store/engine-seals/cri-o-"*
	d+=("$(once "$work/new" "$work/config.toml" "$work/crio" "$i-d")")
done
printf 'warm verified run (ms, median of %d): ref %s annotations %.2f | new annotations %.2f | new cri-o cached %.2f | new cri-o helper %.2f | ref containerd %.2f | new containerd %.2f\n' \
	"$ROUNDS" "$ref" "$(echo "${a[*]}" | median)" "$(echo "${b[*]}" | median)" "$(echo "${c[*]}" | median)" "$(echo "${d[*]}" | median)" "$(echo "${e[*]}" | median)" "$(echo "${f[*]}" | median)"
