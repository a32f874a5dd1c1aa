#!/usr/bin/env bash
# Benchmark of `cfs-runtime import docker://` (issue 17), run by `make bench`.
#
# Input: the `debootstrap --variant=minbase bookworm` tree import.sh caches
# in $BENCH_CACHE (default /var/cache/cfs-runtime-bench; import.sh, which
# make bench runs first, builds it), made once into an OCI image of four
# gzip layers with umoci (the tree without /usr and /var; /usr/lib; the
# rest of /usr; /var), cached as $BENCH_CACHE/bookworm-minbase-oci. Each run
# pushes nothing: the image is pushed once to a local registry (Debian's
# docker-registry on 127.0.0.1, tests/bats/registry.bash) and then, RUNS
# times each, with the page cache warm:
#   pull      `cfs-runtime import docker://...` into an empty store: every
#             layer streamed from the registry into the store (no layer is
#             written to disk first)
#   pair      `skopeo copy docker://... oci:DIR` then `cfs-runtime import
#             oci:DIR` into an empty store: what one does without registry
#             support
#   re-pull   the same `import docker://` into the store that has it: the
#             manifest and config fetched, every layer applied from its
#             record
#   manifest  one GET of the manifest with curl: the round trip a re-pull
#             cannot avoid
# and prints the medians against the issue's goals: pull <= 0.8 x pair,
# re-pull <= 50 ms + the manifest round trip.
#
# With BENCH_REF set to a commit (e.g. main), each run also times that
# commit's tools binary, interleaved with today's: its pull and its import
# of the same oci: copy (the pair's skopeo copy is shared). A change's
# effect is then measured in the same run, under the same load: on a shared
# machine, two runs minutes apart differ by more than most changes do.
#
# Environment: RUNS (default 3), BENCH_CACHE, GO, BENCH_REF, BENCH_STRICT=1
# to exit 1 when a goal is missed (noisy on a shared machine, so off by
# default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-3}
CACHE=${BENCH_CACHE:-/var/cache/cfs-runtime-bench}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
TREE=$CACHE/bookworm-minbase
LAYOUT=$CACHE/bookworm-minbase-oci
GOAL_RATIO=0.8
GOAL_REPULL_MS=50

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

for tool in skopeo umoci curl jq /usr/bin/docker-registry /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "pull bench: $tool is required (tests/install-deps.sh)" >&2; exit 1; }
done
[ -d "$TREE" ] || { echo "pull bench: no $TREE: run tests/bench/import.sh first (it builds the tree)" >&2; exit 1; }

# The layout is built under a temporary name and renamed (an interrupted
# build never counts as cached), under the cache lock import.sh uses.
build_layout() {
	exec 9>"$CACHE/.lock"
	flock 9
	if [ -d "$LAYOUT" ]; then
		return
	fi
	local tmp=$LAYOUT.tmp stage
	rm -rf "$tmp"
	stage=$(mktemp -d "$CACHE/stage.XXXXXX")
	echo "pull bench: making $LAYOUT with umoci (once)" >&2
	umoci init --layout "$tmp"
	umoci new --image "$tmp:minbase"
	# Layer 1: everything but /usr and /var (hardlinked, not copied).
	cp -al "$TREE" "$stage/root"
	rm -rf "$stage/root/usr" "$stage/root/var"
	umoci insert --image "$tmp:minbase" "$stage/root" /
	# Layers 2-4: /usr/lib, the rest of /usr, /var.
	mkdir -p "$stage/usr"
	cp -al "$TREE/usr" "$stage/usr/usr"
	rm -rf "$stage/usr/usr/lib"
	umoci insert --image "$tmp:minbase" "$TREE/usr/lib" /usr/lib
	umoci insert --image "$tmp:minbase" "$stage/usr/usr" /usr
	umoci insert --image "$tmp:minbase" "$TREE/var" /var
	rm -rf "$stage"
	umoci gc --layout "$tmp"
	mv "$tmp" "$LAYOUT"
}
build_layout
exec 9>&-

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/pull-bench.XXXXXX")
cleanup() {
	registry_stop
	rm -rf "$WORK"
}
trap cleanup EXIT
build_tool "$WORK/cfs-runtime" ./cmd/cfs-runtime-tools # the tools, as cfs-runtime runs them
CFS=$WORK/cfs-runtime
REF_CFS=
if [ -n "${BENCH_REF:-}" ]; then
	ref_commit=$(git -C "$ROOT" rev-parse --short "$BENCH_REF")
	git -C "$ROOT" worktree add -q --detach "$WORK/ref-src" "$ref_commit"
	(cd "$WORK/ref-src" && build_tool "$WORK/cfs-runtime-ref" ./cmd/cfs-runtime-tools)
	git -C "$ROOT" worktree remove --force "$WORK/ref-src"
	REF_CFS=$WORK/cfs-runtime-ref
fi

# shellcheck source=tests/bats/registry.bash
REGISTRY_ROOT=$WORK . "$ROOT/tests/bats/registry.bash"
skip() { echo "pull bench: $*" >&2; exit 1; }
registry_start
registry_push "oci:$LAYOUT:minbase" minbase:v1
REF=docker://$REGISTRY/minbase:v1

timed() {
	local out=$1
	shift
	/usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >"$out"
	awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$WORK/time"
}
col() { printf '%s\n' "${@:2}" | awk -v c="$1" '{ print $c }' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "ok" : "MISSED" }'; }

layers=$(skopeo inspect --raw --tls-verify=false "$REF" | jq '.layers | length')
blob_bytes=$(skopeo inspect --raw --tls-verify=false "$REF" | jq '[.layers[].size] | add')
inflate=Go
if [ "${CFS_RUNTIME_IGZIP:-}" != none ] && igzip=${CFS_RUNTIME_IGZIP:-$(command -v igzip)}; then
	inflate="igzip ($igzip; a reference older than igzip's use inflates in Go)"
fi
echo "pull bench: $TREE as $layers gzip layers, $((blob_bytes / 1000000)) MB compressed; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs; gzip inflated by $inflate"

# Warm up: the registry's storage and the tree in the page cache.
want=$("$CFS" import --store "$WORK/warm" "oci:$LAYOUT:minbase" 2>/dev/null)
rm -rf "$WORK/warm"

# pull_into BIN STORE: time BIN's `import docker://` into STORE (checked).
pull_into() {
	timed "$WORK/out" "$1" import --store "$2" --tls-verify=false "$REF" 2>/dev/null
	[ "$(cat "$WORK/out")" = "$want" ] || { echo "pull bench: import docker:// printed $(cat "$WORK/out"), import oci: $want" >&2; exit 1; }
}
# pair_import BIN STORE LAYOUT COPY-TIME: time BIN's `import oci:LAYOUT`
# into STORE (checked), plus the copy's time: the pair.
pair_import() {
	local m
	m=$(timed "$WORK/out" "$1" import --store "$2" "oci:$3:minbase" 2>/dev/null)
	[ "$(cat "$WORK/out")" = "$want" ] || { echo "pull bench: the pair printed $(cat "$WORK/out"), want $want" >&2; exit 1; }
	awk -v a="$4" -v b="$m" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f %.3f\n", x[1] + y[1], x[2] + y[2] }'
}

pull_t=() pair_t=() copy_t=() repull_t=() manifest_t=() ref_pull_t=() ref_pair_t=()
for i in $(seq "$RUNS"); do
	# With a reference, which binary goes first alternates from run to run.
	bins=(today)
	if [ -n "$REF_CFS" ]; then
		bins=(today ref)
		[ $((i % 2)) = 1 ] || bins=(ref today)
	fi
	for b in "${bins[@]}"; do
		sync
		case $b in
		today) pull_t+=("$(pull_into "$CFS" "$WORK/pull-$i")") ;;
		ref) ref_pull_t+=("$(pull_into "$REF_CFS" "$WORK/ref-pull-$i")") ;;
		esac
	done
	sync
	c=$(timed /dev/null skopeo copy -q --src-tls-verify=false "$REF" "oci:$WORK/oci-$i:minbase")
	copy_t+=("$c")
	for b in "${bins[@]}"; do
		case $b in
		today) pair_t+=("$(pair_import "$CFS" "$WORK/pair-$i" "$WORK/oci-$i" "$c")") ;;
		ref) ref_pair_t+=("$(pair_import "$REF_CFS" "$WORK/ref-pair-$i" "$WORK/oci-$i" "$c")") ;;
		esac
	done
	repull_t+=("$(timed /dev/null "$CFS" import --store "$WORK/pull-$i" --tls-verify=false "$REF" 2>/dev/null)")
	for _ in 1 2 3; do
		manifest_t+=("$(curl -s -o /dev/null -w '%{time_total}\n' \
			-H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/minbase/manifests/v1")")
	done
done

p=$(col 1 "${pull_t[@]}") pc=$(col 2 "${pull_t[@]}")
pr=$(col 1 "${pair_t[@]}") prc=$(col 2 "${pair_t[@]}")
cp_=$(col 1 "${copy_t[@]}")
rp=$(col 1 "${repull_t[@]}") rpc=$(col 2 "${repull_t[@]}")
mf=$(printf '%s\n' "${manifest_t[@]}" | median)
rp_ms=$(awk -v v="$rp" 'BEGIN { printf "%.0f", v * 1000 }')
mf_ms=$(awk -v v="$mf" 'BEGIN { printf "%.1f", v * 1000 }')
goal_ms=$(awk -v m="$mf_ms" -v g="$GOAL_REPULL_MS" 'BEGIN { printf "%.1f", g + m }')
r=$(ratio "$p" "$pr")
printf '%-28s %8s %8s\n' "median seconds" wall cpu
printf '%-28s %8s %8s   pull/pair: %s wall, %s cpu; goal <= %s: %s\n' "pull+import (docker://)" "$p" "$pc" "$r" "$(ratio "$pc" "$prc")" "$GOAL_RATIO" "$(verdict "$r" "$GOAL_RATIO")"
printf '%-28s %8s %8s   (skopeo copy alone: %s s)\n' "skopeo copy + import oci:" "$pr" "$prc" "$cp_"
printf '%-28s %8s %8s   %s ms; goal <= %s ms + manifest %s ms = %s ms: %s\n' "re-pull (same manifest)" "$rp" "$rpc" "$rp_ms" "$GOAL_REPULL_MS" "$mf_ms" "$goal_ms" "$(verdict "$rp_ms" "$goal_ms")"
echo "runs (wall cpu): pull ${pull_t[*]// /\/} | pair ${pair_t[*]// /\/} | re-pull ${repull_t[*]// /\/}"
if [ -n "$REF_CFS" ]; then
	q=$(col 1 "${ref_pull_t[@]}") qc=$(col 2 "${ref_pull_t[@]}")
	qr=$(col 1 "${ref_pair_t[@]}") qrc=$(col 2 "${ref_pair_t[@]}")
	echo "the same runs with $BENCH_REF ($ref_commit):"
	printf '%-28s %8s %8s   pull/pair: %s wall, %s cpu\n' "pull+import (docker://)" "$q" "$qc" "$(ratio "$q" "$qr")" "$(ratio "$qc" "$qrc")"
	printf '%-28s %8s %8s\n' "skopeo copy + import oci:" "$qr" "$qrc"
	echo "runs of $BENCH_REF (wall cpu): pull ${ref_pull_t[*]// /\/} | pair ${ref_pair_t[*]// /\/}"
fi

if [ "${BENCH_STRICT:-0}" = 1 ]; then
	[ "$(verdict "$r" "$GOAL_RATIO")" = ok ] && [ "$(verdict "$rp_ms" "$goal_ms")" = ok ] || exit 1
fi
