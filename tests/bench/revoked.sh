#!/usr/bin/env bash
# Benchmark of the revocation list's cost on create (issue 20), run by
# `make bench`: attest's BenchmarkRevokedLookup, a 10,000-line list that
# has not changed since the last create (ownership check, stat, mapping the
# index from the state directory, a digest and a key lookup), against the
# target of 0.1 ms per create. BENCH_STRICT=1 exits 1 when it is missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
TARGET_NS=100000

cd "$ROOT"
out=$("$GO" test ./attest/ -run '^$' -bench '^BenchmarkRevokedLookup$' -benchtime 2s -count 3)
ns=$(awk '/^BenchmarkRevokedLookup/ { print $3 }' <<<"$out" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
awk -v ns="$ns" -v t=$((TARGET_NS / 1000)) 'BEGIN { printf "revocation list, 10,000 lines, unchanged: %.1f us per create (median of 3; target <= %d us)\n", ns / 1000, t }'
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "${ns%.*}" -gt "$TARGET_NS" ]; then
	echo "revoked bench: target missed" >&2
	exit 1
fi
