#!/usr/bin/env bash
# OCI runtime conformance comparison: run opencontainers/runtime-tools v0.9.0
# validation programs with the reference runtime (runc) and with cfs-runtime,
# and require identical per-program results.
#
# A pass-through wrapper must be indistinguishable from the runtime it wraps,
# so the assertion is "same results as runc", not "all tests pass": several
# programs fail with runc itself on this host (cgroup v1 without blkio
# leaf weights or hugetlb, no SELinux/AppArmor, ...).
#
# Usage: tests/conformance/run.sh [CFS_RUNTIME_BINARY]
#   CFS_RUNTIME_BINARY   default: $CFS_RUNTIME, else /usr/local/bin/cfs-runtime
# Environment:
#   REFERENCE_RUNTIME        default /usr/sbin/runc
#   CFS_CONFORMANCE_CACHE    build cache, default /var/cache/cfs-runtime-conformance
#   CFS_CONFORMANCE_TIMEOUT  seconds per program and runtime, default 120
#   CFS_CONFORMANCE_OUT      keep TAP/stderr of every run here (default: temp dir, kept)
#   CFS_CONFORMANCE_TESTS    space-separated program names to run (default: all)
#   CFS_CONFORMANCE_RETRIES  extra paired runs of a program whose results differ, default 2
#                            (some programs race with their container; retries are reported)
#
# Needs: go (module proxy access on a cold cache), runc, busybox-static, tar,
# timeout; root. Prints a table and ends with "N passed, N failed", where a
# test is one validation program whose results matched (passed) or differed
# (failed). Exit status 0 only when every program matched.
set -euo pipefail

RT_MODULE=github.com/opencontainers/runtime-tools
RT_VERSION=v0.9.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cfs=${1:-${CFS_RUNTIME:-/usr/local/bin/cfs-runtime}}
ref=${REFERENCE_RUNTIME:-/usr/sbin/runc}
cache=${CFS_CONFORMANCE_CACHE:-/var/cache/cfs-runtime-conformance}
timeout_s=${CFS_CONFORMANCE_TIMEOUT:-120}
busybox=${BUSYBOX:-/bin/busybox}

die() {
	echo "conformance: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (containers are created with runc)"
command -v go >/dev/null || die "go not found in PATH"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
[ -x "$ref" ] || die "reference runtime $ref not found (apt-get install runc)"
case $cfs in /*) ;; *) cfs=$(pwd)/$cfs ;; esac
[ -x "$cfs" ] || die "cfs-runtime binary $cfs not found or not executable (pass it as \$1 or CFS_RUNTIME)"
file_type=$(LC_ALL=C od -An -c -N4 "$busybox" 2>/dev/null | tr -d ' ') || true
[ "$file_type" = '177ELF' ] || die "$busybox is not an ELF binary (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; the rootfs needs busybox-static (apt-get install busybox-static)"
fi

# ---------------------------------------------------------------------------
# Build (cached): key = pinned go.mod/go.sum + Go version + this script's
# build recipe version, so a change to any of them rebuilds.
build_recipe=2
key=$( (
	echo "$RT_MODULE@$RT_VERSION recipe=$build_recipe"
	go env GOVERSION GOARCH
	cat "$here/runtime-tools.mod" "$here/runtime-tools.sum"
) | sha256sum | cut -c1-16)
bindir=$cache/$RT_VERSION-$key/bin

build() {
	local gomod=$cache/gomod
	local tmp
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	# Module cache inside the conformance cache: keeps the project's own
	# GOMODCACHE untouched and makes "empty cache" mean a cold build;
	# -modcacherw lets rm -rf remove it.
	export GOMODCACHE=$gomod GOFLAGS="-modcacherw -mod=readonly" GOTOOLCHAIN=local GOWORK=off
	echo "conformance: building $RT_MODULE@$RT_VERSION validation programs into $bindir" >&2
	local dir
	dir=$(cd "$tmp" && GOFLAGS=-modcacherw go mod download -json "$RT_MODULE@$RT_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		die "go mod download $RT_MODULE@$RT_VERSION gave no source directory"
	fi
	cp -r "$dir" "$tmp/src"
	chmod -R u+w "$tmp/src"
	rm -rf "$tmp/src/vendor"
	cp "$here/runtime-tools.mod" "$tmp/src/go.mod"
	cp "$here/runtime-tools.sum" "$tmp/src/go.sum"
	mkdir -p "$tmp/bin"
	(
		cd "$tmp/src"
		# -s -w: the 58 programs take ~390 MB of cache with DWARF, ~265 MB without.
		# (errexit is off on the left of ||: chain with &&)
		nice go build -trimpath -ldflags='-s -w' -o "$tmp/bin/" ./validation/... &&
			# runtimetest runs inside the containers: static, like upstream's Makefile.
			CGO_ENABLED=0 nice go build -trimpath -ldflags='-s -w' -o "$tmp/bin/runtimetest" ./cmd/runtimetest
	) || {
		rm -rf "$tmp"
		die "building $RT_MODULE@$RT_VERSION failed"
	}
	# Program list = every package main directory under validation/ (util is
	# the shared library). Recorded so a missing binary is an error, not a skip.
	local d
	for d in "$tmp"/src/validation/*/; do
		d=${d%/}
		d=${d##*/}
		if [ "$d" != util ] && compgen -G "$tmp/src/validation/$d/*.go" >/dev/null; then
			echo "$d"
		fi
	done >"$tmp/bin/PROGRAMS"
	# Programs built from older pins or another Go version are not used again.
	rm -rf "$cache/$RT_VERSION"-*
	mkdir -p "$(dirname "$bindir")"
	mv "$tmp/bin" "$bindir"
	rm -rf "$tmp"
}

if [ ! -s "$bindir/PROGRAMS" ] || [ ! -x "$bindir/runtimetest" ]; then
	build
else
	echo "conformance: using cached programs in $bindir" >&2
fi

mapfile -t programs < <(if [ -n "${CFS_CONFORMANCE_TESTS:-}" ]; then
	# shellcheck disable=SC2086 # a space-separated list
	printf '%s\n' $CFS_CONFORMANCE_TESTS
else
	cat "$bindir/PROGRAMS"
fi)
[ ${#programs[@]} -gt 0 ] || die "no validation programs to run"

# ---------------------------------------------------------------------------
# Working directory: the programs read ./rootfs-amd64.tar.gz and copy
# ./runtimetest into each bundle (validation/util/test.go).
out=${CFS_CONFORMANCE_OUT:-$(mktemp -d /tmp/cfs-conformance.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/cfs-conformance-work.XXXXXX)
# cfs-runtime's configuration for this run: the conformance tests are about
# pass-through, so the policy lets unsigned containers through.
mkdir -p "$work/cfs"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/cfs/k.key" 2>/dev/null
openssl pkey -in "$work/cfs/k.key" -pubout -out "$work/cfs/k.pub"
printf 'unsigned = "allow"\nenforcement = "userspace"\n[[signer]]\nname = "conformance"\npublic_key = "%s"\n' "$work/cfs/k.pub" >"$work/cfs/policy.toml"
printf 'runtime = "%s"\npolicy = "%s"\nstore_dir = "%s"\nstate_dir = "%s"\nlog_file = ""\naudit_file = "%s"\n' "${RUNC:-/usr/sbin/runc}" "$work/cfs/policy.toml" "$work/cfs/store" "$work/cfs/state" "$work/cfs/audit.jsonl" >"$work/cfs/config.toml"
export CFS_RUNTIME_CONFIG=$work/cfs/config.toml
# mktemp makes 0700 directories; containers with user namespaces
# (linux_uid_mappings) must be able to reach their bundle below it.
chmod 0755 "$work"
# unmount_under DIR: lazily unmount everything mounted at or below DIR,
# deepest first. Programs that remove the mount namespace (linux_ns_itype and
# others) make runc mount proc, sysfs, /dev and the bundle itself in the
# host's namespace, and they stay there when the program's cleanup fails.
# Never rm -rf across those: rm would walk the host's /proc and /sys.
unmount_under() {
	local m
	# (mountinfo escapes blanks in paths as \040; ours have none)
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do
			if umount -l "$m"; then
				echo "  (unmounted leftover mount $m)"
			else
				echo "  (could not unmount leftover mount $m)"
			fi
		done
}
cleanup() {
	unmount_under "$work" >/dev/null
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

make_rootfs() {
	local r=$work/rootfs a
	mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp}
	cp "$busybox" "$r/bin/busybox"
	for a in $("$busybox" --list); do
		[ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
	tar -C "$r" --numeric-owner --owner=0 --group=0 -czf "$work/rootfs-amd64.tar.gz" .
	rm -rf "$r"
}
make_rootfs
cp "$bindir/runtimetest" "$work/runtimetest"

# Containers a program leaves behind (they do when a step fails) would make
# the next program's results depend on this one: remove those whose bundle is
# in our scratch TMPDIR, through the reference runtime.
reap() {
	local scratch=$1 id
	for id in $("$ref" list -q 2>/dev/null); do
		if "$ref" state "$id" 2>/dev/null | grep -q "\"bundle\": \"$scratch/"; then
			"$ref" kill "$id" KILL >/dev/null 2>&1 || true
			"$ref" delete -f "$id" >/dev/null 2>&1 || true
			echo "  (removed leftover container $id)" >>"$scratch.reaped"
		fi
	done
}

# summarize TAP: the per-program result compared between runtimes. Test
# point numbers are dropped from the failure list: several programs emit
# their checks in Go map order, so numbering varies from run to run.
summarize() {
	local tap=$1 rc=$2 plan ok notok skip status
	plan=$(grep -m1 -E '^1\.\.[0-9]+' "$tap" || true)
	ok=$(grep -cE '^ok [0-9]+' "$tap" || true)
	notok=$(grep -cE '^not ok [0-9]+' "$tap" || true)
	skip=$(grep -ciE '^(not )?ok [0-9]+[^#]*# skip' "$tap" || true)
	status=exit=$rc
	# timeout(1): 124 after TERM, 137 when the -k KILL was needed
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		status=timeout
	fi
	echo "$status plan=${plan:-none} ok=$ok notok=$notok skip=$skip"
	# which assertions failed, by description
	{ grep -E '^not ok [0-9]+' "$tap" || true; } | sed -E 's/^not ok [0-9]+/not ok/; s/[[:space:]]*$//' | sort
}

# normalize: drop what differs from run to run (ids, times, pids, paths).
normalize() {
	sed -E \
		-e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g' \
		-e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)?/TIME/g' \
		-e 's#/tmp/cfs-conformance-work\.[A-Za-z0-9]+/(ref|cfs)/[A-Za-z0-9]+#SCRATCH#g' \
		-e 's/(ocitest|oci-pid)[0-9]+/\1/g' \
		-e 's/(nsexec-[0-9])\[[0-9]+\]/\1[PID]/g' \
		-e 's/^(not )?ok [0-9]+/\1ok/' \
		"$1"
}

# diagnostics: what the runtime said (error and stderr fields of the TAP
# YAML, plus the program's own stderr), order-independent. Compared for
# information only: a wrapper that changes runc's messages shows up here
# even when the pass/fail counts agree.
diagnostics() { # PREFIX
	{
		grep -hE '^[[:space:]]+"(error|stderr)":' "$1.tap" || true
		grep -vE '^  \(|^exit status' "$1.stderr" || true
	} | normalize /dev/stdin | sed -E 's/^[[:space:]]+//' | sort
}

run_one() { # which runtime program
	local which=$1 rt=$2 prog=$3 scratch rc start end
	mkdir -p "$work/$which"
	scratch=$(mktemp -d "$work/$which/XXXXXX")
	chmod 0755 "$work/$which" "$scratch"
	start=$(date +%s%N)
	rc=0
	(cd "$work" && TMPDIR=$scratch RUNTIME=$rt timeout -k 5 "$timeout_s" "$bindir/$prog" \
		>"$out/$prog.$which.tap" 2>"$out/$prog.$which.stderr" </dev/null) || rc=$?
	end=$(date +%s%N)
	reap "$scratch"
	[ -f "$scratch.reaped" ] && cat "$scratch.reaped" >>"$out/$prog.$which.stderr"
	unmount_under "$scratch" >>"$out/$prog.$which.stderr"
	rm -rf --one-file-system "$scratch" "$scratch.reaped"
	[ -x "$bindir/$prog" ] || echo "missing program $bindir/$prog" >>"$out/$prog.$which.stderr"
	summarize "$out/$prog.$which.tap" "$rc" >"$out/$prog.$which.result"
	echo $(((end - start) / 1000000)) >"$out/$prog.$which.ms"
}

echo "conformance: reference $ref, candidate $cfs, logs in $out" >&2
"$ref" --version | head -1 >&2
passed=0
failed=0
failed_names=()
retried_names=()
note_names=()
retries=${CFS_CONFORMANCE_RETRIES:-2}
printf '%-34s %-44s %-10s %s\n' PROGRAM "RESULT (runc)" "MATCH" "cfs-runtime if different"
t0=$(date +%s)
for prog in "${programs[@]}"; do
	# Interleave per program so host drift affects both runtimes alike. A
	# mismatch is retried as a pair: some programs race with their own
	# container (pidfile kills a container running `true`) and give
	# different results from one runc run to the next. Retries are reported.
	attempt=0
	while :; do
		attempt=$((attempt + 1))
		run_one ref "$ref" "$prog"
		run_one cfs "$cfs" "$prog"
		for w in ref cfs; do
			for f in result tap stderr; do
				cp "$out/$prog.$w.$f" "$out/$prog.$w.$f.$attempt"
			done
		done
		if cmp -s "$out/$prog.ref.result" "$out/$prog.cfs.result" || [ "$attempt" -gt "$retries" ]; then
			break
		fi
	done
	r_ref=$(head -1 "$out/$prog.ref.result")
	r_cfs=$(head -1 "$out/$prog.cfs.result")
	if cmp -s "$out/$prog.ref.result" "$out/$prog.cfs.result"; then
		passed=$((passed + 1))
		match=same
		if [ "$attempt" -gt 1 ]; then
			match="same@try$attempt"
			retried_names+=("$prog")
		fi
		printf '%-34s %-44s %-10s\n' "$prog" "$r_ref" "$match"
		if ! cmp -s <(diagnostics "$out/$prog.ref") <(diagnostics "$out/$prog.cfs"); then
			note_names+=("$prog")
		fi
	else
		failed=$((failed + 1))
		failed_names+=("$prog")
		printf '%-34s %-44s %-10s %s\n' "$prog" "$r_ref" DIFFERS "$r_cfs"
	fi
done
t1=$(date +%s)

for prog in "${failed_names[@]}"; do
	echo
	echo "--- $prog: result differs (runc vs cfs-runtime) in every attempt; last one:"
	diff "$out/$prog.ref.result" "$out/$prog.cfs.result" | sed 's/^/  /' || true
	echo "  what the runtimes said (normalized error/stderr diff, first 20 lines):"
	diff <(diagnostics "$out/$prog.ref") <(diagnostics "$out/$prog.cfs") | head -20 | sed 's/^/  /' || true
done
if [ ${#retried_names[@]} -gt 0 ]; then
	echo
	echo "note: matched only on a retry (results vary from run to run): ${retried_names[*]}"
	for prog in "${retried_names[@]}"; do
		for f in "$out/$prog".*.result.[0-9]*; do
			echo "  ${f##*/}: $(head -1 "$f")"
		done
		# If runc gave one answer every time and cfs-runtime did not, the
		# variation may be cfs-runtime's (added latency, a lost signal): say so.
		if [ "$(md5sum "$out/$prog".ref.result.[0-9]* | cut -d' ' -f1 | sort -u | wc -l)" = 1 ]; then
			echo "  WARNING: $prog varied only with cfs-runtime in these attempts; see $out/$prog.{ref,cfs}.tap.N"
		fi
	done
fi
if [ ${#note_names[@]} -gt 0 ]; then
	echo
	echo "note (informational): same results, but error/stderr text differs after normalization (timing-dependent in some programs) in: ${note_names[*]}"
	for prog in "${note_names[@]}"; do
		diff <(diagnostics "$out/$prog.ref") <(diagnostics "$out/$prog.cfs") | head -6 | sed "s/^/  $prog: /" || true
	done
fi
echo
echo "conformance: ${#programs[@]} programs x 2 runtimes in $((t1 - t0)) s; logs in $out"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
