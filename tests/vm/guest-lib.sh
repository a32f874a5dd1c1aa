# shellcheck shell=sh
# Helpers for guest scenarios (busybox sh). The guest init sources this file
# before each tests/vm/scenarios/NN-name.sh, inside a subshell.
#
# Every check prints one marker line, to the console and to the results
# channel (/dev/ttyS1) that run.sh parses:
#   PASS <scenario>/<check>
#   FAIL <scenario>/<check>: <reason>
# Check names must be unique within a scenario and contain no spaces.
#
# Variables set for a scenario:
#   VM_NAME      scenario name without its number ("kernel-features")
#   VM_DATA      /data/<NN-name>: what the host hook put in $VM_DATA, on the
#                ext4 disk made with `mkfs.ext4 -O verity` (writable)
#   VM_DATA_DEV  that disk's block device (/dev/vda)
#   VM_WORK      an empty scratch directory on tmpfs (also the cwd)

VM_RESULTS=${VM_RESULTS:-/dev/ttyS1}
VM_OUT=${VM_OUT:-/tmp/vm-out.$$}
VM_LOG=${VM_LOG:-/dev/null} # the init counts this scenario's markers here

# _vm_mark LINE: print a marker line. Each write opens and closes the tty so
# that close() waits until the line has left the UART; nothing is lost when
# the guest powers off right after.
_vm_mark() {
	echo "$1"
	echo "$1" >>"$VM_LOG"
	if [ -c "$VM_RESULTS" ]; then echo "$1" >>"$VM_RESULTS"; fi
}

# pass CHECK / fail CHECK REASON: record one result by hand.
pass() {
	_vm_mark "PASS $VM_NAME/$1"
}
fail() {
	# keep the marker one line: newlines in the reason become " | "
	_vm_mark "FAIL $VM_NAME/$1: $(printf '%s' "$2" | tr '\n' '|' | sed 's/|/ | /g')"
}

# info TEXT: a line that run.sh prints on stdout as it is (benchmarks report
# their measurements this way); not a result.
info() {
	_vm_mark "INFO $*"
}

# _vm_run CMD...: run CMD with stdout+stderr captured in $VM_OUT, echoed to
# the console for the log; sets _vm_rc.
_vm_run() {
	"$@" >"$VM_OUT" 2>&1
	_vm_rc=$?
	awk '{print "    | " $0}' "$VM_OUT"
}

# _vm_tail: ": " and the last lines of the captured output, for failure
# reasons (nothing when there was no output).
_vm_tail() {
	if [ -s "$VM_OUT" ]; then
		printf ': %s' "$(tail -n 3 "$VM_OUT" | cut -c1-200)"
	fi
}

# check CHECK CMD...: CMD must exit 0.
check() {
	_c=$1
	shift
	_vm_run "$@"
	if [ "$_vm_rc" -eq 0 ]; then
		pass "$_c"
	else
		fail "$_c" "'$*' exited $_vm_rc$(_vm_tail)"
	fi
}

# check_fails CHECK TEXT CMD...: CMD must exit non-zero and its output must
# contain TEXT (a fixed string; "" accepts any output).
check_fails() {
	_c=$1
	_t=$2
	shift 2
	_vm_run "$@"
	if [ "$_vm_rc" -eq 0 ]; then
		fail "$_c" "'$*' succeeded, expected failure with '$_t'"
	elif [ -n "$_t" ] && ! grep -qF -- "$_t" "$VM_OUT"; then
		fail "$_c" "'$*' exited $_vm_rc without '$_t'$(_vm_tail)"
	else
		pass "$_c"
	fi
}

# check_output CHECK EXPECTED CMD...: CMD must exit 0 and print exactly
# EXPECTED on stdout (stderr is ignored; trailing newlines don't matter).
check_output() {
	_c=$1
	_e=$2
	shift 2
	_got=$("$@" 2>"$VM_OUT.err")
	_vm_rc=$?
	awk '{print "    | " $0}' "$VM_OUT.err"
	if [ "$_vm_rc" -ne 0 ]; then
		fail "$_c" "'$*' exited $_vm_rc: $(tail -n 3 "$VM_OUT.err")"
	elif [ "$_got" != "$_e" ]; then
		fail "$_c" "'$*' printed '$_got', want '$_e'"
	else
		pass "$_c"
	fi
}

# check_contains CHECK TEXT CMD...: CMD must exit 0 and its output must
# contain TEXT (fixed string).
check_contains() {
	_c=$1
	_t=$2
	shift 2
	_vm_run "$@"
	if [ "$_vm_rc" -ne 0 ]; then
		fail "$_c" "'$*' exited $_vm_rc$(_vm_tail)"
	elif ! grep -qF -- "$_t" "$VM_OUT"; then
		fail "$_c" "'$*' output lacks '$_t'$(_vm_tail)"
	else
		pass "$_c"
	fi
}

# require CHECK CMD...: like check, but ends the scenario on failure (for
# setup steps that later checks depend on).
require() {
	check "$@"
	if [ "$_vm_rc" -ne 0 ]; then exit 1; fi
}

# check_gotest CHECK TESTBINARY ARGS...: run a Go test binary (give it
# -test.v) and record each top-level test as its own check (TestName). In
# the VM everything a kernel test needs is there, so a skipped test is a
# failure. A non-zero exit without a failed test (panic, no tests, a missing
# build tag) fails as CHECK.
check_gotest() {
	_c=$1
	shift
	_vm_run "$@"
	_n=0
	_f=0
	# top-level results only: "--- PASS: TestX (0.01s)" at column 0
	while read -r _st _name _rest; do
		[ -n "$_name" ] || continue
		_n=$((_n + 1))
		case $_st in
		PASS:) pass "$_name" ;;
		FAIL:)
			_f=$((_f + 1))
			# the test's own log lines (file.go:N: ...) name the reason
			fail "$_name" "$(awk -v t="$_name" '$0 == "=== RUN   " t {on = 1; next}
				on && /^--- FAIL: / {exit} on && /\.go:[0-9]+: / {sub(/^[ \t]+/, ""); print}' "$VM_OUT" | tail -n 2)"
			;;
		SKIP:)
			_f=$((_f + 1))
			fail "$_name" "skipped in the VM: $(grep -B1 -- "^--- SKIP: $_name " "$VM_OUT" | head -n 1 | sed 's/^[[:space:]]*//')"
			;;
		esac
	done <<-EOT
		$(sed -nE 's/^--- (PASS|FAIL|SKIP): /\1: /p' "$VM_OUT")
	EOT
	if [ "$_n" -eq 0 ]; then
		fail "$_c" "'$*' exited $_vm_rc and ran no test$(_vm_tail)"
	elif [ "$_vm_rc" -ne 0 ] && [ "$_f" -eq 0 ]; then
		fail "$_c" "'$*' exited $_vm_rc$(_vm_tail)"
	fi
}

# runc_bundle DIR ARG...: write DIR/config.json from `runc spec` for the
# root file system DIR/rootfs, without a terminal, running ARG... (plain
# words: no quotes or backslashes). Further edits: sed on the file.
runc_bundle() {
	_b=$1
	shift
	_args=""
	for _a in "$@"; do
		_args="$_args${_args:+, }\"$_a\""
	done
	rm -f "$_b/config.json"
	runc spec --bundle "$_b" || return 1
	# runc spec writes "terminal": true and "args": [ "sh" ] on its own line
	sed -i -e 's/"terminal": true/"terminal": false/' \
		-e "s|^\\([[:space:]]*\\)\"sh\"\$|\\1$_args|" "$_b/config.json"
	grep -qF "$_args" "$_b/config.json"
}
