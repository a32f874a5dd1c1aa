#!/bin/bash
# Tests the harness itself: scenarios in tests/vm/selftest fail in every way
# run.sh must catch (failed checks, bad exits, no checks, a failing host
# hook, skipped Go tests, a timeout, a mount left on /data, a kernel panic).
# Two VM boots; compares run.sh's stdout with selftest/expect-*.txt.
set -euo pipefail
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$VM_DIR/selftest
ok=0
bad=0
# selftest NAME SCENARIO...: run.sh must exit 1 and print expect-NAME.txt
selftest() {
	local name=$1 out rc=0
	shift
	out=$(mktemp)
	CFS_VM_SCENARIOS=$S CFS_VM_SCENARIO_TIMEOUT=5 "$VM_DIR/run.sh" "$@" >"$out" 2>"$out.err" || rc=$?
	# timestamps in a kernel message vary
	sed -i -E 's/^(FAIL vm: kernel: )\[ *[0-9.]+\] /\1/' "$out"
	if [ "$rc" = 1 ] && diff -u "$S/expect-$name.txt" "$out"; then
		echo "PASS selftest/$name"
		ok=$((ok + 1))
		# run.sh keeps the logs of a failed run: these failures were wanted
		kept=$(sed -n 's/^vm: logs kept in //p' "$out.err")
		[ -z "$kept" ] || rm -rf "$kept"
		rm -f "$out" "$out.err"
	else
		echo "FAIL selftest/$name: run.sh exited $rc (want 1) or printed otherwise (diff above); stderr: $out.err"
		bad=$((bad + 1))
	fi
}
selftest a 01 02 03 04 05 06 07 08
selftest b 09 10
echo "$ok passed, $bad failed"
[ "$bad" = 0 ]
