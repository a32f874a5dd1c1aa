#!/usr/bin/env bash
# Runs the named suites (unit, integration, vm, conformance) and prints one
# closing line "N passed, N failed" over all of them. Exit status is non-zero
# if anything failed.
set -u
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
export CFS_RUNTIME=${CFS_RUNTIME:-$PWD/bin/cfs-runtime}
passed=0 failed=0
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

count() { # suite passed failed
	echo "== $1: $2 passed, $3 failed"
	passed=$((passed + $2)) failed=$((failed + $3))
}

run_unit() {
	# The attest tests prove that signatures made by the real cosign verify.
	CFS_TEST_COSIGN=${CFS_TEST_COSIGN:-$(tests/tools/fetch-cosign.sh)} || {
		count "unit (cosign download)" 0 1
		return
	}
	export CFS_TEST_COSIGN
	# One result per test (subtests included) from go test -json.
	go test -json -count=1 ./... >"$results/unit.json" 2>"$results/unit.err"
	local rc=$?
	jq -r 'select(.Action=="output") | .Output' "$results/unit.json" | grep -E '^(--- FAIL|FAIL|ok|panic:)' || true
	local p f
	p=$(jq -r 'select(.Test != null and .Action=="pass") | .Test' "$results/unit.json" | wc -l)
	f=$(jq -r 'select(.Test != null and .Action=="fail") | .Test' "$results/unit.json" | wc -l)
	# A build failure has no per-test lines: count it as a failure.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		cat "$results/unit.err"
		f=1
	fi
	count unit "$p" "$f"
}

run_integration() {
	bats --tap tests/bats/*.bats | tee "$results/bats.tap"
	count integration "$(grep -c '^ok ' "$results/bats.tap")" "$(grep -c '^not ok ' "$results/bats.tap")"
	local planned
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$results/bats.tap" | head -1)
	local ran=$(($(grep -c '^ok ' "$results/bats.tap") + $(grep -c '^not ok ' "$results/bats.tap")))
	if [ -n "$planned" ] && [ "$ran" -lt "$planned" ]; then
		count "integration (not run)" 0 $((planned - ran))
	fi
}

run_suite_script() { # name script args...
	local name=$1
	shift
	if [ ! -x "$1" ]; then
		echo "== $name: $1 missing"
		count "$name" 0 1
		return
	fi
	"$@" 2>&1 | tee "$results/$name.log"
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$results/$name.log" | tail -1)
	if [ -z "$line" ]; then
		count "$name" 0 1
		return
	fi
	count "$name" "$(cut -d' ' -f1 <<<"$line")" "$(cut -d' ' -f3 <<<"$line")"
}

for suite in "$@"; do
	case $suite in
	unit) run_unit ;;
	integration) run_integration ;;
	vm) run_suite_script vm tests/vm/run.sh ;;
	conformance) run_suite_script conformance tests/conformance/run.sh "$CFS_RUNTIME" ;;
	*) echo "unknown suite $suite" >&2; exit 2 ;;
	esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
