#!/usr/bin/env bash
# Verified create benchmark: `cfs-runtime create` + `delete` against `runc
# create` + `delete` and a bare exec shim, interleaved, medians over ROUNDS,
# for a 10-file and a 100,000-file image already in the store (warm), and a
# cold create (import of the bundle rootfs) reported separately.
#
# At the end: a cold create from the engine's store (issue #18): the
# minbase tree as a sealed OCI image in containers-storage, created through
# a CRI-O bundle with an empty store (the engine helper imports it),
# against `cfs-runtime import oci:DIR` of the same image and runc.
#
# This host has no kernel fs-verity, so the only enforcement level that can
# run here is `userspace`, which by design hashes the image and every object
# at each create: its cost grows with the image. The `require` level's warm
# path (measure ioctl + mount, no tree walk) needs the VM kernel.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
ROUNDS=${ROUNDS:-20}
BIG=${BIG:-100000}
RUNC=${RUNC:-/usr/sbin/runc}
work=$(mktemp -d /tmp/cfs-bench-create.XXXXXX)
chmod 0755 "$work"
trap 'for id in $("$RUNC" list -q | grep ^bench-); do "$RUNC" delete -f "$id"; done >/dev/null 2>&1; rm -rf --one-file-system "$work"' EXIT
make -s build >/dev/null

# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh
build_shim "$work/bare-shim" "$RUNC"
install_runtime bin "$work"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/k.key" 2>/dev/null
openssl pkey -in "$work/k.key" -pubout -out "$work/k.pub"
printf 'enforcement = "userspace"\nunsigned = "reject"\n[[signer]]\nname = "bench"\npublic_key = "%s"\n' "$work/k.pub" >"$work/policy.toml"
printf 'runtime = "%s"\nstore_dir = "%s/store"\nstate_dir = "%s/state"\nlog_file = ""\npolicy = "%s/policy.toml"\naudit_file = "%s/audit.jsonl"\n' "$RUNC" "$work" "$work" "$work" "$work" >"$work/config.toml"
export CFS_RUNTIME_CONFIG=$work/config.toml

make_bundle() { # DIR NFILES
	local dir=$1 n=$2
	mkdir -p "$dir/rootfs"/{bin,proc,sys,dev,tmp,data}
	cp /bin/busybox "$dir/rootfs/bin/busybox"
	python3 - "$dir/rootfs/data" "$n" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n - 1):
    sub = os.path.join(d, "%03d" % (i % 1000))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%06d" % i), "wb") as f:
        f.write((b"%08d" % i) * 16)  # 128 bytes: an object, not inline
PY
	(cd "$dir" && "$RUNC" spec)
	jq '.process.terminal = false | .process.args = ["/bin/busybox", "true"]' "$dir/config.json" >"$dir/c.json"
	mv "$dir/c.json" "$dir/config.json"
	cp "$dir/config.json" "$dir/config.plain.json"
	local digest
	digest=$(bin/cfs-runtime digest "$dir/rootfs")
	bin/cfs-runtime sign --key "$work/k.key" --format json "$digest" >"$dir/ann.json"
	jq --slurpfile a "$dir/ann.json" '.annotations = $a[0]' "$dir/config.json" >"$dir/config.signed.json"
}


for size in 10 "$BIG"; do
	b=$work/b$size
	make_bundle "$b" "$size"
	# cold: import of the rootfs on the first create
	cp "$b/config.signed.json" "$b/config.json"
	t0=$EPOCHREALTIME
	bin/cfs-runtime create --bundle "$b" "bench-cold-$size" </dev/null >/dev/null 2>&1
	t1=$EPOCHREALTIME
	bin/cfs-runtime delete "bench-cold-$size"
	cold=$(ms "$t0" "$t1")
	declare -A t=()
	for r in $(seq "$ROUNDS"); do
		for k in 0 1 2; do
			v=$(((r + k) % 3))
			case $v in
			0) cp "$b/config.plain.json" "$b/config.json"; bin=$RUNC ;;
			1) cp "$b/config.plain.json" "$b/config.json"; bin=$work/bare-shim ;;
			2) cp "$b/config.signed.json" "$b/config.json"; bin=$work/cfs-runtime ;;
			esac
			id=bench-$v-$r
			s=$EPOCHREALTIME
			"$bin" create --bundle "$b" "$id" </dev/null >/dev/null 2>&1
			"$bin" delete "$id"
			e=$EPOCHREALTIME
			t[$v]+="$(ms "$s" "$e") "
		done
	done
	m_runc=$(median <<<"${t[0]}") m_shim=$(median <<<"${t[1]}") m_cfs=$(median <<<"${t[2]}")
	printf 'create+delete, %d-file image, enforcement userspace, medians of %d interleaved rounds:\n' "$size" "$ROUNDS"
	printf '  runc %.1f ms, bare shim %.1f ms, cfs-runtime %.1f ms: +%.1f ms over the shim (target <= 10 ms for the warm require path)\n' \
		"$m_runc" "$m_shim" "$m_cfs" "$(echo "$m_cfs - $m_shim" | bc -l)"
	printf '  cold create (import of the rootfs): %.1f ms\n' "$cold"
	eval "cfs_$size=$m_cfs shim_$size=$m_shim"
done
big_over=$(echo "$(eval echo \$cfs_$BIG) - $(eval echo \$shim_$BIG)" | bc -l)
small_over=$(echo "$cfs_10 - $shim_10" | bc -l)
printf 'added cost, %d files vs 10 files: %.1f ms vs %.1f ms (userspace hashes every object; require does not walk the tree)\n' "$BIG" "$big_over" "$small_over"

# Cold create from a 200 MB root filesystem (the debootstrap minbase tree
# that import.sh builds and caches): an empty store, so create imports the
# bundle's rootfs, compares digests, hashes (userspace) and mounts.
BENCH_CACHE=${BENCH_CACHE:-/var/cache/cfs-runtime-bench}
TREE=$BENCH_CACHE/bookworm-minbase
if [ ! -d "$TREE" ]; then
	echo "create bench: $TREE missing: building it with tests/bench/import.sh (RUNS=1)" >&2
	RUNS=1 BENCH_CACHE=$BENCH_CACHE bash tests/bench/import.sh >&2
fi
cb=$work/bcold
mkdir -p "$cb"
(cd "$cb" && "$RUNC" spec)
digest=$(bin/cfs-runtime digest "$TREE")
bin/cfs-runtime sign --key "$work/k.key" --format json "$digest" >"$cb/ann.json"
jq --arg r "$TREE" --slurpfile a "$cb/ann.json" '.root = {path: $r, readonly: true} | .process.terminal = false | .process.args = ["/bin/true"] | .annotations = $a[0]' \
	"$cb/config.json" >"$cb/c.json"
mv "$cb/c.json" "$cb/config.json"
size=$(du -sm --apparent-size "$TREE" | cut -f1)
cold=""
for r in 1 2 3; do
	rm -rf "$work/store" && mkdir "$work/store"
	jq --arg r "$TREE" '.root.path = $r' "$cb/config.json" >"$cb/c.json" && mv "$cb/c.json" "$cb/config.json"
	sync
	s=$EPOCHREALTIME
	bin/cfs-runtime create --bundle "$cb" "bench-cold-big-$r" </dev/null >/dev/null
	e=$EPOCHREALTIME
	bin/cfs-runtime delete "bench-cold-big-$r"
	cold+="$(ms "$s" "$e") "
done
printf 'cold create from a %d MB rootfs (%s: empty store, import + digest check + userspace hashing + mount), median of 3: %.0f ms\n' \
	"$size" "$(basename "$TREE")" "$(median <<<"$cold")"

# Cold create from the engine's store: the same tree as a sealed OCI image
# (one gzip layer), in a private containers-storage, named by a CRI-O
# bundle (io.kubernetes.cri-o.ImageName/ImageRef, no composefs
# annotations); an empty store each round, so create runs
# cfs-runtime-engine, which rebuilds the layer from tar-split and the
# unpacked files and imports it. Against, in the same rounds: `cfs-runtime
# import oci:DIR` of the same image into an empty store, and runc create +
# delete of the tree. Goal: cold create <= 1.3x the import.
lay=$work/minbase-oci
umoci init --layout "$lay"
umoci new --image "$lay:1"
umoci unpack --image "$lay:1" "$work/mb" >/dev/null
cp -a "$TREE/." "$work/mb/rootfs/"
umoci repack --image "$lay:1" "$work/mb"
rm -rf --one-file-system "$work/mb"
seal=$(bin/cfs-runtime seal --key "$work/k.key" --format json "oci:$lay:1" 2>/dev/null)
cs=$work/cs
skopeo copy -q "oci:$lay:1" "containers-storage:[overlay@$cs/storage+$cs/run]localhost/minbase:1"
imgid=$(podman --root "$cs/storage" --runroot "$cs/run" --storage-driver overlay image inspect --format '{{.Id}}' localhost/minbase:1)
sed "s|^store_dir = .*|store_dir = \"$work/estore\"|" "$work/config.toml" >"$work/engine.toml"
echo "containers_storage = \"$cs/storage\"" >>"$work/engine.toml"
eb=$work/bengine
mkdir -p "$eb/rootfs"
(cd "$eb" && "$RUNC" spec)
jq --arg r "$imgid" '.root = {path: "rootfs", readonly: true} | .process.terminal = false | .process.args = ["/bin/true"]
	| .annotations = {"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": "localhost/minbase:1", "io.kubernetes.cri-o.ImageRef": $r}' \
	"$eb/config.json" >"$eb/config.engine.json"
jq --arg t "$TREE" '.root = {path: $t, readonly: true} | .process.terminal = false | .process.args = ["/bin/true"]' \
	"$eb/config.json" >"$eb/config.runc.json"
t_imp="" t_cold="" t_runc=""
for r in 1 2 3; do
	rm -rf "$work/istore" && sync
	s=$EPOCHREALTIME
	bin/cfs-runtime import --store "$work/istore" "oci:$lay:1" >/dev/null 2>&1
	e=$EPOCHREALTIME
	t_imp+="$(ms "$s" "$e") "

	rm -rf "$work/estore" && mkdir "$work/estore" && sync
	cp "$eb/config.engine.json" "$eb/config.json"
	s=$EPOCHREALTIME
	CFS_RUNTIME_CONFIG=$work/engine.toml bin/cfs-runtime create --bundle "$eb" "bench-engine-$r" </dev/null >/dev/null
	CFS_RUNTIME_CONFIG=$work/engine.toml bin/cfs-runtime delete "bench-engine-$r"
	e=$EPOCHREALTIME
	t_cold+="$(ms "$s" "$e") "
	[ -f "$work/estore/images/$(jq -r '.["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$seal")" ]

	cp "$eb/config.runc.json" "$eb/config.json"
	s=$EPOCHREALTIME
	"$RUNC" create --bundle "$eb" "bench-runc-$r" </dev/null >/dev/null 2>&1
	"$RUNC" delete "bench-runc-$r"
	e=$EPOCHREALTIME
	t_runc+="$(ms "$s" "$e") "
done
podman --root "$cs/storage" --runroot "$cs/run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
m_imp=$(median <<<"$t_imp") m_cold=$(median <<<"$t_cold") m_runc=$(median <<<"$t_runc")
printf 'cold create from the engine'"'"'s store (containers-storage, %d MB minbase, CRI-O bundle, empty store), median of 3:\n' "$size"
printf '  cfs-runtime create+delete %.0f ms, cfs-runtime import oci:DIR %.0f ms (ratio %.2f, goal <= 1.3), runc create+delete %.0f ms\n' \
	"$m_cold" "$m_imp" "$(echo "$m_cold / $m_imp" | bc -l)" "$m_runc"
