# shellcheck shell=sh
# What cfs-runtime costs in a warm verified create + delete under the
# `require` level (image in the store), on the real kernel, with the runtime
# replaced by a stand-in that does nothing but runc's bookkeeping (state
# file, poststop hooks): cyclecost over CFS_BENCH_ROUNDS (200) interleaved
# rounds of the bare shim and of today's and the reference cfs-runtime on
# the 10-file and the 100,000-file image, and of today's at the
# `userspace` level on a 9-file image without busybox ("cal": what
# create-cost.sh also runs on the host, for the speed ratio). Prints INFO
# lines "ref COMMIT", "cyclecost ..." (cyclecost's output, ms under TCG)
# and "calibrate MS" for tests/bench/create-cost.sh.
# shellcheck disable=SC1091 # staged by the host hook
. /vm/bench-lib.sh
D=$VM_DATA
L=/usr/local/lib/cfs-bench
R=/run/cfs-bench-noop # the stand-in's --root
ROUNDS=${CFS_BENCH_ROUNDS:-200}
bench_setup $L/runc
info "ref $(cat "$D/ref")"

# both binaries mount the image with verity=require through the stand-in,
# and its delete (the poststop hook) leaves nothing
for v in today ref; do
	cp "$D/cfg/small.json" "$D/b-$v-small/config.json"
	check "$v-create" $L/$v/cfs-runtime --root $R create --bundle "$D/b-$v-small" "first-$v"
	check_contains "$v-verity-require" "verity=require" grep " /run/cfs-runtime/first-$v/merged " /proc/self/mountinfo
	check "$v-delete" $L/$v/cfs-runtime --root $R delete "first-$v"
	check_fails "$v-gone" "" ls -d "/run/cfs-runtime/first-$v"
done

variant() { # NAME BINARY IMAGE [ARG]: mounted when merged/bin/busybox (tiny: etc) exists
	if [ -n "${4:-}" ]; then
		echo "$1=$2,$D/b-$1,$D/cfg/$3.json,/run/cfs-runtime/{id}/merged/etc,$4"
	else
		echo "$1=$2,$D/b-$1,$D/cfg/$3.json,/run/cfs-runtime/{id}/merged/bin/busybox"
	fi
}
shim="shim=$L/bare-shim,$D/b-shim,$D/cfg/plain.json"
today_small=$(variant today-small $L/today/cfs-runtime small)
today_big=$(variant today-big $L/today/cfs-runtime big)
cyclecost() { $L/cyclecost -root $R -gone '/run/cfs-runtime/{id}' "$@"; }
if cyclecost -rounds "$ROUNDS" -base shim "$shim" "$today_small" "$today_big" \
	"$(variant ref-small $L/ref/cfs-runtime small)" "$(variant ref-big $L/ref/cfs-runtime big)" \
	"$(variant cal $L/today/cfs-runtime tiny --cfs-config=/etc/cfs-runtime/bench-userspace.toml)" \
	>"$VM_WORK/cost.out" 2>&1; then
	pass cyclecost
	while read -r line; do info "cyclecost $line"; done <"$VM_WORK/cost.out"
else
	fail cyclecost "$(tail -n 3 "$VM_WORK/cost.out")"
fi
info "$($L/cyclecost -calibrate)"

# CFS_BENCH_PROFILE: one cycle of the shim and of today's binary on each
# image, traced with ftrace (tracesum's events; trace-NAME.txt in $VM_DATA,
# its summary as "profile NAME ..." lines, and cyclecost's figures of that
# cycle as "profile NAME cyclecost ..."), and one under strace
# (strace-today-small.txt).
if [ -n "${CFS_BENCH_PROFILE:-}" ]; then
	T=/sys/kernel/tracing
	mount -t tracefs nodev $T
	echo 0 >$T/tracing_on
	echo 32768 >$T/buffer_size_kb
	echo 1 >$T/options/record-tgid
	echo 'p:pfin handle_mm_fault' >$T/kprobe_events
	echo 'r:pfout handle_mm_fault' >>$T/kprobe_events
	for e in sched/sched_switch sched/sched_process_fork sched/sched_process_exec sched/sched_process_exit \
		raw_syscalls/sys_enter raw_syscalls/sys_exit kprobes/pfin kprobes/pfout; do
		echo 1 >$T/events/$e/enable
	done
	for spec in "$shim" "$today_small" "$today_big"; do
		v=${spec%%=*}
		: >$T/trace
		echo 1 >$T/tracing_on
		cyclecost -rounds 1 -warmup 0 "$spec" >"$VM_WORK/p.out" 2>&1
		echo 0 >$T/tracing_on
		cat $T/trace >"$D/trace-$v.txt"
		check "profile-$v" sh -c "$L/tracesum -marks <'$D/trace-$v.txt' >'$VM_WORK/p.sum'"
		while IFS= read -r line; do info "profile $v $line"; done <"$VM_WORK/p.sum"
		while read -r line; do info "profile $v cyclecost $line"; done <"$VM_WORK/p.out"
	done
	echo 0 >$T/events/enable
	echo >$T/kprobe_events
	umount $T
	check profile-strace strace -f -tt -T -o "$D/strace-today-small.txt" \
		$L/cyclecost -root $R -gone '/run/cfs-runtime/{id}' -rounds 1 -warmup 0 "$today_small"
fi
bench_clean
check_output no-runtime-state-left "" ls -A $R
