#!/usr/bin/env bash
# Benchmark of `cfs-runtime fsck` (issue 8), run by `make bench`.
#
# Imports the `debootstrap --variant=minbase bookworm` tree that import.sh
# and digest.sh use (cached in $BENCH_CACHE) into a fresh store, then, with
# the page cache warm, times RUNS runs of
#   cfs-runtime fsck --userspace IMAGE
# (every object hashed in userspace, as on a host without fs-verity) and,
# before each, the reference: Go's crypto/sha256 over 64 MiB in memory on
# one core (GOMAXPROCS=1), measured in the same run so that machine load
# weighs on both. It prints the median fsck throughput (bytes of the image
# and its objects per second of wall clock) against (CPUs x the sha256
# rate); the target of issue 8 is a ratio of at least 0.80. (fs-verity's
# Merkle tree adds about 1/128 to the bytes hashed, and files are hashed in
# whole 4 KiB blocks; the verity package hashes two blocks at a time, of
# one file or of several small ones, about 2 GB/s per core here. The rest
# is the kernel's: opening, reading and closing every object costs about
# as much CPU as hashing them, which bounds the ratio near 0.6 on a 2-CPU
# VM.) The CPU ratio (throughput per CPU
# second against one core's rate) is printed too: a busy shared machine
# distorts it less.
#
# Environment: RUNS (default 5), BENCH_CACHE (default
# /var/cache/cfs-runtime-bench), TREE (a ready tree instead of the cached
# one), GO, BENCH_STRICT=1 to exit 1 when the target is missed (noisy on a
# shared machine, so off by default).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-5}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
BENCH_CACHE=${BENCH_CACHE:-/var/cache/cfs-runtime-bench}
TARGET=0.80

[ -x /usr/bin/time ] || { echo "fsck bench: GNU time (/usr/bin/time) is required" >&2; exit 1; }
command -v jq >/dev/null || { echo "fsck bench: jq is required" >&2; exit 1; }

# The tree: import.sh builds and caches it (debootstrap, once, under a lock).
TREE=${TREE:-$BENCH_CACHE/bookworm-minbase}
if [ ! -d "$TREE" ]; then
	echo "fsck bench: $TREE missing: building it with tests/bench/import.sh (RUNS=1)" >&2
	RUNS=1 BENCH_CACHE=$BENCH_CACHE bash "$ROOT/tests/bench/import.sh" >&2
fi
[ -d "$TREE" ] || { echo "fsck bench: $TREE is not a directory" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fsck-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(cd "$ROOT" && "$GO" build -o "$WORK/cfs-runtime" ./cmd/cfs-runtime-tools) # the tools, as cfs-runtime runs them
CFS=$WORK/cfs-runtime

# The reference: crypto/sha256 on one core, in bytes per second.
mkdir "$WORK/sha"
cat >"$WORK/sha/go.mod" <<'EOF'
module shabench

go 1.22
EOF
cat >"$WORK/sha/main.go" <<'EOF'
package main

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"time"
)

func main() {
	runtime.GOMAXPROCS(1)
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	sha256.Sum256(buf) // warm up
	best := 0.0
	for range 3 {
		start := time.Now()
		sha256.Sum256(buf)
		if r := float64(len(buf)) / time.Since(start).Seconds(); r > best {
			best = r
		}
	}
	fmt.Printf("%.0f\n", best)
}
EOF
(cd "$WORK/sha" && "$GO" build -o "$WORK/sharate" .)

store=$WORK/store
image=$("$CFS" import --store "$store" "$TREE")
# Warm the page cache and learn the size: the image and its objects.
"$CFS" fsck --store "$store" --userspace --json "$image" >"$WORK/report.json"
[ "$(jq -r '.images[0].status' "$WORK/report.json")" = clean ] || { echo "fsck bench: the fresh import is not clean" >&2; exit 1; }
objects=$(jq '.images[0].objects' "$WORK/report.json")
bytes=$(($(jq '.images[0].bytes' "$WORK/report.json") + $(stat -L -c %s "$store/images/$image")))
ncpu=$(nproc)
echo "fsck bench: image $image: $objects objects, $((bytes / 1000000)) MB; $ncpu CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs"

# Each timed sample is 3 checks in a row (GNU time counts hundredths of a
# second; one check takes about a tenth).
walls=() cpus=() refs=()
for _ in $(seq "$RUNS"); do
	refs+=("$("$WORK/sharate")")
	/usr/bin/time -f '%e %U %S' -o "$WORK/time" sh -c 'for i in 1 2 3; do "$@" >/dev/null || exit 1; done' sh \
		"$CFS" fsck --store "$store" --userspace "$image"
	walls+=("$(awk '{ printf "%.4f", $1 / 3 }' "$WORK/time")")
	cpus+=("$(awk '{ printf "%.4f", ($2 + $3) / 3 }' "$WORK/time")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
wall=$(median "${walls[@]}") cpu=$(median "${cpus[@]}") ref=$(median "${refs[@]}")

awk -v b="$bytes" -v w="$wall" -v c="$cpu" -v r="$ref" -v n="$ncpu" -v t="$TARGET" 'BEGIN {
	tput = b / w; ratio = tput / (n * r)
	printf "fsck bench: crypto/sha256 on one core: %.0f MB/s (median of %d)\n", r / 1e6, '"$RUNS"'
	printf "fsck bench: fsck --userspace median %.3f s wall, %.3f s CPU: %.0f MB/s; %.0f MB/s per CPU second\n", w, c, tput / 1e6, b / c / 1e6
	printf "fsck bench: throughput / (%d CPUs x sha256 rate) = %.2f (target >= %.2f): %s\n", n, ratio, t, (ratio >= t) ? "target met" : "MISSED target"
	printf "fsck bench: CPU ratio (per CPU second / one core'\''s sha256 rate) = %.2f\n", (b / c) / r
	exit (ratio >= t) ? 0 : 3
}' || {
	[ "${BENCH_STRICT:-0}" = 1 ] && exit 1
	true
}
echo "fsck bench: runs (wall s): ${walls[*]}"
