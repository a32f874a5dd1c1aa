#!/usr/bin/env bash
# What cfs-runtime adds to a warm verified create + delete (enforcement
# `require`, the image already in the store), measured so that the figure
# can decide (issue #21): in the VM (tests/vm, the kernel with fs-verity),
# with the runtime replaced by a stand-in (tests/bench/tools/nooprt, named
# runc: it keeps runc's state file and runs the poststop hooks, nothing
# else), so that runc's cost and noise drop out, and against the bare exec
# shim measured the same way in the same rounds.
#
# tests/bench/tools/cyclecost runs the cycles as a child subreaper and
# takes from wait4 the CPU time (user + sys) of every process of a cycle:
# cfs-runtime's create, its exit watcher, its delete and the poststop hook
# (`cfs-runtime cleanup`), and the stand-in's runs, which the shim's
# cycles have too. Wall time is cfs-runtime's own part: from its fork to
# the runtime's start, for create and delete, plus the poststop hook as the
# runtime ran it. Both are taken round by round as the difference from the
# shim's cycle in the same round, over ROUNDS (200) rounds: the median and
# quartiles of that difference are printed, for today's binary and the
# one of $BENCH_REF (default HEAD~1), the 10-file and the 100,000-file
# image, interleaved.
#
# Host speed: the guest (qemu TCG, one CPU) runs process starts and kernel
# work about 10x slower than the host but plain integer code about as fast,
# so no single program's ratio converts everything. The ratio used is that
# of the closest work both can run: today's cfs-runtime creating and
# deleting a signed 9-file image (no busybox) at the `userspace` level
# (the host has no fs-verity), its CPU time added over the shim, on the
# host (HOST_ROUNDS rounds before and after the VM) and in the guest
# (interleaved with the others, "cal"). It differs from the measured path
# only in hashing a few hundred bytes instead of the measure ioctl and in
# overlayfs's verity=require. The shim cycle's and an integer loop's
# ratios are printed for comparison.
#
# On one guest CPU the exit watcher's start runs while create hands off,
# so create's wall time in the guest includes most of the watcher's CPU
# time; on a host with more CPUs it runs beside it.
#
# CFS_BENCH_PROFILE=1 adds a profile of one cycle (20-create-cost.sh);
# with CFS_VM_KEEP=1 the traces stay on the kept data disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
ROUNDS=${ROUNDS:-200}
HOST_ROUNDS=${HOST_ROUNDS:-400}
work=$(mktemp -d /tmp/cfs-bench-cost.XXXXXX)
# the state and the stand-in's root on tmpfs, as in the guest
run=$(mktemp -d /dev/shm/cfs-bench-cost.XXXXXX)
chmod 0755 "$work"
trap 'rm -rf --one-file-system "$work" "$run"' EXIT
# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh
# shellcheck source=tests/bench/vm/lib.host.sh
. tests/bench/vm/lib.host.sh

# the host side of the speed ratio: the shim and today's binary at the
# userspace level, through the same stand-in
make -s build >/dev/null
install_runtime bin "$work"
build_noop "$work/runc"
build_shim "$work/bare-shim" "$work/runc"
go build -o "$work/cyclecost" ./tests/bench/tools/cyclecost
bench_tree "$work/tiny" 10 bare
bench_images bin/cfs-runtime "$work" "$work/tiny" tiny >/dev/null
printf 'enforcement = "userspace"\nunsigned = "reject"\n[[signer]]\nname = "bench"\npublic_key = "%s"\n' "$work/keys/bench.pub" >"$work/policy.toml"
printf 'runtime = "%s"\nstore_dir = "%s/store"\nstate_dir = "%s/state"\nlog_file = ""\npolicy = "%s/policy.toml"\naudit_file = "%s/audit.jsonl"\n' "$work/runc" "$work" "$run" "$work" "$run" >"$work/config.toml"
mkdir -p "$work/b-shim" "$work/b-cal/rootfs" "$run/root"
host_cal() { # "SHIM_CPU CAL_ADDED_CPU CAL_ADDED_WALL": medians of HOST_ROUNDS rounds
	"$work/cyclecost" -rounds "$HOST_ROUNDS" -root "$run/root" -base shim -gone "$run/state/{id}" \
		"shim=$work/bare-shim,$work/b-shim,$work/cfg/plain.json" \
		"cal=$work/cfs-runtime,$work/b-cal,$work/cfg/tiny.json,$run/state/{id}/merged/etc,--cfs-config=$work/config.toml" |
		awk '$1 == "shim" && $2 == "cpu" {s = $3} $1 == "added" && $2 == "cal" && $3 == "cpu" {c = $4}
			$1 == "added" && $2 == "cal" && $3 == "wall" {w = $4} END {print s, c, w}'
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
read -r h_shim1 h_cal1 h_calw1 < <(host_cal)
h_loop=$("$work/cyclecost" -calibrate | cut -d' ' -f2)

echo "booting the VM (tests/vm/run.sh create-cost from tests/bench/vm; a few minutes under TCG)"
CFS_BENCH_ROUNDS=$ROUNDS CFS_VM_SCENARIOS=tests/bench/vm CFS_VM_TIMEOUT=${CFS_VM_TIMEOUT:-3600} \
	CFS_VM_SCENARIO_TIMEOUT=3300 tests/vm/run.sh create-cost >"$work/vm.out" 2>"$work/vm.err" || {
	cat "$work/vm.out"
	tail -n 20 "$work/vm.err"
	echo "the VM benchmark failed" >&2
	exit 1
}
read -r h_shim2 h_cal2 h_calw2 < <(host_cal)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

g() { sed -n "s/^cyclecost $1 \(.*\)/\1/p" "$work/vm.out"; } # g "[added] NAME METRIC": median q1 q3 ...
ref=$(sed -n 's/^ref //p' "$work/vm.out")
g_loop=$(sed -n 's/^calibrate //p' "$work/vm.out")
read -r g_shim _ < <(g "shim cpu")
read -r g_cal _ < <(g "added cal cpu")
if [ -z "$g_shim" ] || [ -z "$g_cal" ] || [ -z "$g_loop" ]; then
	cat "$work/vm.out"
	echo "no measurements from the guest" >&2
	exit 1
fi
scale=$(echo "($h_cal1 + $h_cal2) / 2 / $g_cal" | bc -l)

x() { echo "$*" | bc -l; }
f() { printf '%.1f' "$(x "$1")"; }
am() { local m _r; read -r m _r < <(g "added $1 $2"); x "$m * $scale"; } # am NAME METRIC: median added, host ms
# added NAME METRIC: "median (q1 .. q3)" of the added time at host speed
added() {
	local m q1 q3
	read -r m q1 q3 < <(g "added $1 $2")
	printf '%5s (%s .. %s)' "$(f "$m * $scale")" "$(f "$q1 * $scale")" "$(f "$q3 * $scale")"
}
verdict() { x "$1" | sed 's/1/met/;s/0/NOT met/'; }

echo "warm verified create + delete (require, image in the store), runtime replaced by a stand-in; $ROUNDS interleaved rounds; ref = $ref"
echo "  load average (1, 5, 15 min): before $load_before, after $load_after"
printf '  speed, guest (TCG) / host: %.1fx (cfs-runtime userspace, 9 files, CPU added over the shim: host %.2f / %.2f ms before / after, guest %.1f ms;\n' \
	"$(x "1 / $scale")" "$h_cal1" "$h_cal2" "$g_cal"
printf '    its wall time on the host: %.2f / %.2f ms, in the guest at host speed %.2f ms)\n' "$h_calw1" "$h_calw2" "$(am cal wall)"
printf '    for comparison: shim cycle CPU %.1fx (host %.2f / %.2f ms, guest %.1f ms), integer loop %.1fx\n' \
	"$(x "$g_shim * 2 / ($h_shim1 + $h_shim2)")" "$h_shim1" "$h_shim2" "$g_shim" "$(x "$g_loop / $h_loop")"
printf '  guest medians, ms of CPU per cycle:'
for v in shim today-small today-big ref-small ref-big cal; do
	read -r m _ < <(g "$v cpu")
	printf ' %s %.1f' "$v" "$m"
done
echo
echo "  added over the bare shim at host speed, ms per create + delete: median (quartiles) of $ROUNDS rounds"
printf '    %-20s %-22s %-26s %s\n' "" "CPU, all processes" "wall, cfs-runtime's part" "processes left behind"
for v in today-small today-big ref-small ref-big; do
	case $v in *-small) img="10 files" ;; *) img="100,000 files" ;; esac
	read -r others _ < <(g "$v others")
	others=${others%.000}
	printf '    %-20s %-22s %-26s %s\n' "${v%-*} $img" "$(added "$v" cpu)" "$(added "$v" wall)" "$others"
done
for v in today-small today-big; do
	echo "  where today's goes, ${v#*-} image (median added, host ms): create $(f "$(am "$v" create_cpu)") CPU / $(f "$(am "$v" create_wall)") wall;" \
		"exit watcher $(f "$(am "$v" other_cpu)") CPU; delete $(f "$(am "$v" delete_cpu)") CPU / $(f "$(am "$v" delete_wall)") wall;" \
		"poststop hook $(f "$(am "$v" hook_cpu)") CPU / $(f "$(am "$v" hook_wall)") wall"
done
for v in today ref; do
	small=$(am "$v-small" wall) big=$(am "$v-big" wall)
	printf '  %-5s <= 10 ms at host speed (issue #21): wall %s, CPU %s; 100,000 files / 10 files, wall %.2f (within 10%%): %s\n' "$v" \
		"$(verdict "$small <= 10 && $big <= 10")" "$(verdict "$(am "$v-small" cpu) <= 10 && $(am "$v-big" cpu) <= 10")" \
		"$(x "$big / $small")" "$(verdict "$big / $small <= 1.1 && $big / $small >= 0.9")"
done
if [ -n "${CFS_BENCH_PROFILE:-}" ]; then
	printf 'profile (tests/bench/tools/tracesum; guest ms under tracing, x %.4f for host speed):\n' "$scale"
	sed -n 's/^profile /  /p' "$work/vm.out"
	grep '^vm: kept' "$work/vm.err" || true
fi
