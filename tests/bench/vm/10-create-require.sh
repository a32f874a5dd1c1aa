# shellcheck shell=sh
# Warm verified create under the `require` level, on the real kernel:
# `cfs-runtime create` + `delete` of a signed 10-file and a 100,000-file
# image already in the store, against `runc create` + `delete` and a bare exec
# shim, interleaved, medians over CFS_BENCH_ROUNDS (20). Prints INFO lines
# "cyclebench NAME MEDIAN MIN MAX" (ms under TCG) for tests/bench/create-vm.sh.
# shellcheck disable=SC1091 # staged by the host hook
. /vm/bench-lib.sh
D=$VM_DATA
ROUNDS=${CFS_BENCH_ROUNDS:-20}
bench_setup /usr/sbin/runc

cp "$D/cfg/small.json" "$D/b-small/config.json"
check first-create cfs-runtime create --bundle "$D/b-small" first
check_contains first-verity-require "verity=require" grep " /run/cfs-runtime/first/merged " /proc/self/mountinfo
check first-delete cfs-runtime delete first

cyc() { # NAME BUNDLE CFG BINARY
	echo "$1=cp $D/cfg/$3.json $D/$2/config.json ;; $4 create --bundle $D/$2 {id} ;; $4 delete {id}"
}
if cyclebench -rounds "$ROUNDS" \
	"$(cyc runc b-runc plain runc)" "$(cyc shim b-shim plain bare-shim)" \
	"$(cyc cfs-small b-small small cfs-runtime)" "$(cyc cfs-big b-big big cfs-runtime)" >"$VM_WORK/bench.out" 2>&1; then
	pass cyclebench
	while read -r line; do info "cyclebench $line"; done <"$VM_WORK/bench.out"
else
	fail cyclebench "$(tail -n 3 "$VM_WORK/bench.out")"
fi
bench_clean
