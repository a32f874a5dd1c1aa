# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced from the repository root).

# build_tool OUT PACKAGE [LDFLAGS]: a benchmark tool built like cfs-runtime
# (static, stripped) and installed like it (see install_bin).
build_tool() {
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${3:-}" -o "$1.linked" "$2"
	install_bin "$1.linked" "$1"
	rm -f "$1.linked"
}

# build_shim OUT [RUNTIME]: the bare exec shim (tests/bench/tools/bareshim),
# exec'ing RUNTIME (default runc).
build_shim() { build_tool "$1" ./tests/bench/tools/bareshim "-X main.runtime=${2:-/usr/sbin/runc}"; }

# build_noop OUT: the runtime stand-in (tests/bench/tools/nooprt). Name OUT
# runc: cfs-runtime reads runc's state file to know whether the runtime
# has a container.
build_noop() { build_tool "$1" ./tests/bench/tools/nooprt; }

# install_bin SRC DST: copy a binary the way make install (and a package
# manager) does. Every binary a benchmark execs goes through this: the Go
# linker writes its output through mmap, and exec'ing that file costs
# measurably more than exec'ing a copy written with write(2) (0.2 ms more
# for the shim, 0.4 ms for the runtime binary on the development VM), so
# timing binaries straight from the linker measures how they were written,
# not what they cost installed.
install_bin() { install -m 0755 "$1" "$2"; }

# install_runtime BINDIR DIR: cfs-runtime and cfs-runtime-mount, which it
# execs for create, run and delete, from BINDIR into DIR (side by side, as
# make install lays them out).
install_runtime() {
	install_bin "$1/cfs-runtime" "$2/cfs-runtime"
	install_bin "$1/cfs-runtime-mount" "$2/cfs-runtime-mount"
}

# median: the median of the numbers on stdin (separated by blanks or lines).
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ms START END: milliseconds between two $EPOCHREALTIME values.
ms() { echo "($2 - $1) * 1000" | bc -l; }

# build_ref DIR: the binaries of commit $BENCH_REF (default HEAD~1: the
# previous commit) in DIR/bin, so that a benchmark measures today's binary
# and the reference in the same run, on the same machine. Prints the
# commit. A worktree in DIR/src, removed again.
build_ref() {
	local ref=${BENCH_REF:-HEAD~1} commit
	commit=$(git rev-parse --short "$ref")
	git worktree add -q --detach "$1/src" "$commit"
	(cd "$1/src" && make -s build >/dev/null)
	mkdir -p "$1/bin"
	install_bin "$1/src/bin/cfs-runtime" "$1/bin/cfs-runtime"
	# before the front split, cfs-runtime did create itself
	if [ -x "$1/src/bin/cfs-runtime-mount" ]; then
		install_bin "$1/src/bin/cfs-runtime-mount" "$1/bin/cfs-runtime-mount"
	fi
	if [ -x "$1/src/bin/cfs-runtime-engine" ]; then
		install_bin "$1/src/bin/cfs-runtime-engine" "$1/bin/cfs-runtime-engine"
	fi
	git worktree remove --force "$1/src"
	echo "$commit"
}
