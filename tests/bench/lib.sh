# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced from the repository root).

# build_shim OUT [RUNTIME]: the bare exec shim (tests/bench/tools/bareshim),
# built like cfs-runtime (static, stripped), exec'ing RUNTIME (default runc).
build_shim() {
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.runtime=${2:-/usr/sbin/runc}" -o "$1" ./tests/bench/tools/bareshim
}

# median: the median of the numbers on stdin (separated by blanks or lines).
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ms START END: milliseconds between two $EPOCHREALTIME values.
ms() { echo "($2 - $1) * 1000" | bc -l; }
