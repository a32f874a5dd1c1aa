#!/usr/bin/env bats
# The wrapper core: cfs-runtime in pass-through must be indistinguishable
# from calling runc directly.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	export BUNDLE_TMPL="$BATS_FILE_TMPDIR/bundle"
	make_bundle "$BUNDLE_TMPL" true
}

setup() {
	requires_root
	use_config "runtime = \"$RUNC\"" "log_file = \"$BATS_TEST_TMPDIR/own.log\"" "log_level = \"debug\""
	BUNDLE="$BATS_TEST_TMPDIR/bundle"
	cp -a "$BUNDLE_TMPL" "$BUNDLE"
}

teardown() {
	cleanup_containers
}

# both RUNTIME ARGS...: run ARGS with runc and with cfs-runtime; sets
# runc_status/runc_output and cfs_status/cfs_output.
both() {
	run "$RUNC" "$@"
	runc_status=$status runc_output=$output
	run "$CFS_RUNTIME" "$@"
	cfs_status=$status cfs_output=$output
}

# trace_handoff ARGS...: strace of cfs-runtime ARGS up to the exec of the
# runtime (/bin/true): $BATS_TEST_TMPDIR/before; $opened lists the files
# it opened below $BATS_TEST_TMPDIR, $execs the programs it exec'd.
trace_handoff() {
	use_config 'runtime = "/bin/true"' 'log_file = ""'
	run strace -f -qq -o "$BATS_TEST_TMPDIR/trace" -e trace=openat,epoll_create1,eventfd2,execve "$CFS_RUNTIME" "$@"
	[ "$status" -eq 0 ]
	awk '/execve\("\/bin\/true"/ {exit} {print}' "$BATS_TEST_TMPDIR/trace" >"$BATS_TEST_TMPDIR/before"
	run grep -E 'epoll_create1|eventfd2' "$BATS_TEST_TMPDIR/before"
	[ "$status" -eq 1 ]
	opened=$(grep -o 'openat(AT_FDCWD, "'"$BATS_TEST_TMPDIR"'/[^"]*"' "$BATS_TEST_TMPDIR/before" | sed 's|.*"'"$BATS_TEST_TMPDIR"'/||; s|"$||')
	execs=$(grep -o 'execve("[^"]*"' "$BATS_TEST_TMPDIR/before" | sed 's|execve("||; s|"$||')
}

@test "state: the front reads config.toml, starts no poller, then execs the runtime" {
	# What cfs-runtime adds to each runc call is a benchmark target
	# (tests/bench/wrapper.sh); this pins the I/O of the pass-through path:
	# config.toml, read without os.File (whose first use starts Go's
	# network poller), and no other program of cfs-runtime's.
	command -v strace >/dev/null || skip "strace is not installed (tests/install-deps.sh installs it)"
	trace_handoff state "$(cid trace)"
	[ "$opened" = "config.toml" ]
	[ "$execs" = "$CFS_RUNTIME" ]
}

@test "delete: the front execs the runtime itself unless the container has a composefs mount" {
	command -v strace >/dev/null || skip "strace is not installed (tests/install-deps.sh installs it)"
	trace_handoff delete "$(cid trace)"
	[ "$opened" = "config.toml" ]
	[ "$execs" = "$CFS_RUNTIME" ]
	mkdir -p "$BATS_TEST_TMPDIR/state/$(cid trace)" # what create leaves for a signed container
	run strace -f -qq -o "$BATS_TEST_TMPDIR/trace" -e trace=execve "$CFS_RUNTIME" delete "$(cid trace)"
	[ "$status" -eq 0 ]
	grep -q 'execve("'"$(dirname "$CFS_RUNTIME")"'/cfs-runtime-mount"' "$BATS_TEST_TMPDIR/trace"
}

@test "an unsigned run: the front decides it from four files, audits it, and execs only the runtime" {
	# config.toml, the bundle (locked), config.json and the policy; then
	# the audit trail, appended. The signer's key is not read: no
	# signature needs it. cfs-runtime-mount is not exec'd: an unsigned
	# container costs the exec of the front only.
	command -v strace >/dev/null || skip "strace is not installed (tests/install-deps.sh installs it)"
	trace_handoff run --bundle "$BUNDLE" "$(cid trace)"
	[ "$opened" = $'config.toml\nbundle\nbundle/config.json\nkeys/allow.toml\naudit.jsonl' ]
	[ "$execs" = "$CFS_RUNTIME" ]
}

@test "an unsigned run started by the front is logged as cfs-runtime-mount logs it" {
	export CFS_RUNTIME_MOUNT=/nonexistent/cfs-runtime-mount
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid front)"
	[ "$status" -eq 0 ]
	line=$(grep 'msg="starting unverified container"' "$BATS_TEST_TMPDIR/own.log")
	# slog's text format (strconv.Quote where needed), as logging.Open's logger writes it.
	cat >"$BATS_TEST_TMPDIR/want" <<-'EOF'
		verdict="no composefs digest: allowed unsigned by rule \"unsigned = \\\"allow\\\"\""
	EOF
	[[ "$line" == time=20*" level=WARN msg=\"starting unverified container\" pid="[0-9]*" id=$(cid front) bundle=$BUNDLE $(cat "$BATS_TEST_TMPDIR/want")" ]]
}

# front_declines WHY: the front hands the run to cfs-runtime-mount (here a
# stand-in that says so) instead of starting the container itself.
front_declines() {
	printf '#!/bin/sh\necho "cfs-runtime-mount $*"\nexit 3\n' >"$BATS_TEST_TMPDIR/mount-standin"
	chmod +x "$BATS_TEST_TMPDIR/mount-standin"
	CFS_RUNTIME_MOUNT="$BATS_TEST_TMPDIR/mount-standin" run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid declined)"
	echo "$1: $output"
	[ "$status" -eq 3 ]
	[ "$output" = "cfs-runtime-mount run --bundle $BUNDLE $(cid declined)" ]
}

@test "the front leaves every container it cannot plainly decide to cfs-runtime-mount" {
	keys="$BATS_TEST_TMPDIR/keys"
	# Any annotation that mentions composefs, spelled right or not.
	for key in composefs.merged.erofs.v1.fsverity-sha256-12 composefs.merged.erofs.v1.fsverty-sha256-12 Composefs.Merged.Erofs.V1.Fsverity-sha256-12.sig x.cosign; do
		cp "$BUNDLE_TMPL/config.json" "$BUNDLE/config.json"
		update_config "$BUNDLE" ".annotations[\"$key\"] = \"0\""
		front_declines "annotation $key"
	done
	# A config.json beyond the plain case (an escape in a string): the
	# front links no encoding/json, and leaves it to one that does.
	cp "$BUNDLE_TMPL/config.json" "$BUNDLE/config.json"
	update_config "$BUNDLE" '.annotations.a = "quote\"d"'
	grep -qF 'quote\"d' "$BUNDLE/config.json"
	front_declines "config.json with an escape"
	cp "$BUNDLE_TMPL/config.json" "$BUNDLE/config.json"
	# A policy that refuses unsigned containers: cfs-runtime-mount words it.
	write_policy "$keys/allow.toml" userspace reject "$keys/allow.pub"
	front_declines "unsigned = reject"
	# A rule with a regexp: the front links no regexp engine.
	printf '[[allow_unsigned]]\nname = "re"\nannotations = { "a" = "b.*" }\n' >>"$keys/allow.toml"
	update_config "$BUNDLE" '.annotations.a = "bc"'
	front_declines "regexp rule"
	# A policy outside plain TOML (a multi-line string).
	write_policy "$keys/allow.toml" userspace allow "$keys/allow.pub"
	printf '[[allow_unsigned]]\nname = "t"\n[allow_unsigned.annotations]\n"a" = "b"\n' >>"$keys/allow.toml"
	front_declines "not plain TOML"
	# An insecure policy.
	write_policy "$keys/allow.toml" userspace allow "$keys/allow.pub"
	chmod 0666 "$keys/allow.toml"
	front_declines "policy writable by others"
	chmod 0644 "$keys/allow.toml"
	# A broken configuration.
	echo 'log_level = "loud"' >>"$CFS_RUNTIME_CONFIG"
	front_declines "broken config.toml"
}

@test "the front starts an unsigned container that a literal rule allows" {
	keys="$BATS_TEST_TMPDIR/keys"
	write_policy "$keys/allow.toml" userspace reject "$keys/allow.pub"
	printf '[[allow_unsigned]]\nname = "sandbox"\nannotations = { "io.kubernetes.cri.container-type" = "sandbox" }\n' >>"$keys/allow.toml"
	update_config "$BUNDLE" '.annotations["io.kubernetes.cri.container-type"] = "sandbox"'
	CFS_RUNTIME_MOUNT=/nonexistent/cfs-runtime-mount run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid sandbox)"
	[ "$status" -eq 0 ]
	grep -q 'verdict="no composefs digest: allowed unsigned by rule \\"sandbox\\""' "$BATS_TEST_TMPDIR/own.log"
}

@test "run passes the exit code through: sh -c 'exit 7' exits 7" {
	set_args "$BUNDLE" sh -c 'exit 7'
	cd "$BUNDLE"
	run "$RUNC" run "$(cid direct)"
	[ "$status" -eq 7 ]
	run "$CFS_RUNTIME" run "$(cid wrapped)"
	[ "$status" -eq 7 ]
	[ "$output" = "" ]
}

@test "run prints the same output as runc" {
	set_args "$BUNDLE" sh -c 'echo out; echo err >&2; echo $$'
	# runc copies a non-tty container's stdout and stderr through separate
	# pipes, so compare them separately.
	run --separate-stderr "$RUNC" run --bundle "$BUNDLE" "$(cid a)"
	[ "$status" -eq 0 ]
	direct_out=$output direct_err=$stderr
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid b)"
	[ "$status" -eq 0 ]
	[ "$output" = "$direct_out" ]
	[ "$stderr" = "$direct_err" ]
	[ "$output" = $'out\n1' ]
	[ "$stderr" = err ]
}

@test "create, start, state, kill, delete lifecycle" {
	set_args "$BUNDLE" sleep 100
	id=$(cid life)
	# The container inherits stdio: keep bats' output pipe out of it.
	"$CFS_RUNTIME" create --bundle "$BUNDLE" "$id" </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	run "$CFS_RUNTIME" state "$id"
	[ "$status" -eq 0 ]
	[ "$(jq -r .status <<<"$output")" = created ]
	[ "$(jq -r .bundle <<<"$output")" = "$BUNDLE" ]
	"$CFS_RUNTIME" start "$id" </dev/null >/dev/null 2>&1
	[ "$("$RUNC" state "$id" | jq -r .status)" = running ]
	run "$CFS_RUNTIME" kill "$id" KILL
	[ "$status" -eq 0 ]
	for _ in $(seq 50); do
		[ "$("$RUNC" state "$id" | jq -r .status)" = stopped ] && break
		sleep 0.1
	done
	[ "$("$CFS_RUNTIME" state "$id" | jq -r .status)" = stopped ]
	run "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 0 ]
	both state "$id"
	[ "$cfs_status" -eq "$runc_status" ]
	[ "$cfs_status" -eq 1 ]
	[[ "$cfs_output" == *'container does not exist'* ]]
}

@test "list, ps, pause and resume pass through" {
	set_args "$BUNDLE" sleep 100
	id=$(cid ps)
	"$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>&1
	run "$CFS_RUNTIME" list -q
	[ "$status" -eq 0 ]
	[[ "$output" == *"$id"* ]]
	run "$CFS_RUNTIME" ps "$id"
	[ "$status" -eq 0 ]
	[[ "$output" == *"sleep 100"* ]]
	run "$CFS_RUNTIME" pause "$id"
	[ "$status" -eq 0 ]
	[ "$("$RUNC" state "$id" | jq -r .status)" = paused ]
	"$CFS_RUNTIME" resume "$id" </dev/null >/dev/null 2>&1
	[ "$status" -eq 0 ]
	run "$CFS_RUNTIME" exec "$id" sh -c 'echo from-exec; exit 3'
	[ "$status" -eq 3 ]
	[ "$output" = from-exec ]
	run "$CFS_RUNTIME" delete -f "$id"
	[ "$status" -eq 0 ]
}

@test "relative --pid-file is resolved against the caller's directory" {
	set_args "$BUNDLE" sleep 100
	id=$(cid pid)
	cd "$BATS_TEST_TMPDIR"
	"$CFS_RUNTIME" create --bundle bundle --pid-file rel.pid "$id" </dev/null >/dev/null 2>&1
	[ -s "$BATS_TEST_TMPDIR/rel.pid" ]
	[ "$(cat rel.pid)" = "$("$RUNC" state "$id" | jq -r .pid)" ]
	"$RUNC" delete -f "$id"
}

@test "--console-socket hands the pty to the caller" {
	update_config "$BUNDLE" '.process.terminal = true | .process.args = ["sh", "-c", "test -t 0 && echo on-a-tty"]'
	sock="$BATS_TEST_TMPDIR/console.sock"
	"$TOOLS_BIN/recvtty" "$sock" >"$BATS_TEST_TMPDIR/tty.out" &
	rpid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.05; done
	id=$(cid tty)
	"$CFS_RUNTIME" create --bundle "$BUNDLE" --console-socket "$sock" "$id" </dev/null >/dev/null 2>&1
	"$CFS_RUNTIME" start "$id"
	wait "$rpid"
	grep -q on-a-tty "$BATS_TEST_TMPDIR/tty.out"
	"$RUNC" delete -f "$id"
}

@test "--preserve-fds passes extra fds into the container" {
	set_args "$BUNDLE" sh -c 'cat <&3'
	echo preserved-content >"$BATS_TEST_TMPDIR/fd3"
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" --preserve-fds 1 "$(cid fds)" 3<"$BATS_TEST_TMPDIR/fd3"
	[ "$status" -eq 0 ]
	[ "$output" = preserved-content ]
}

@test "a failing create leaves the same JSON error line as runc" {
	set_args "$BUNDLE" /no/such/binary
	run "$RUNC" --log "$BATS_TEST_TMPDIR/runc.log" --log-format json create --bundle "$BUNDLE" "$(cid fa)"
	runc_status=$status
	run "$CFS_RUNTIME" --log "$BATS_TEST_TMPDIR/cfs.log" --log-format json create --bundle "$BUNDLE" "$(cid fb)"
	[ "$status" -eq "$runc_status" ]
	[ "$status" -ne 0 ]
	# Same messages, level by level (times and ids differ).
	strip() { jq -c 'del(.time) | .msg |= gsub("cfs-bats-[^ ]*"; "ID")' "$1"; }
	diff <(strip "$BATS_TEST_TMPDIR/runc.log") <(strip "$BATS_TEST_TMPDIR/cfs.log")
	grep -q 'no such file or directory' "$BATS_TEST_TMPDIR/cfs.log"
}

@test "cfs-runtime's own failure (missing bundle) leaves exactly one JSON line" {
	log="$BATS_TEST_TMPDIR/log.json"
	run --separate-stderr "$CFS_RUNTIME" --root "$BATS_TMPDIR/runc-root" --log "$log" --log-format json create --bundle /nonexistent/bundle "$(cid own)"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: bundle not found: /nonexistent/bundle does not exist" ]
	[ "$(wc -l <"$log")" -eq 1 ]
	[ "$(jq -r .level "$log")" = error ]
	[ "$(jq -r .msg "$log")" = "$stderr" ]
	jq -e '.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|[+-][0-9:]{5})$")' "$log"
	[ "$(jq -r 'keys | join(",")' "$log")" = "level,msg,time" ]
}

@test "crun-style --log=file: prefix and text format" {
	log="$BATS_TEST_TMPDIR/log.txt"
	run --separate-stderr "$CFS_RUNTIME" --log=file:"$log" run --bundle /nonexistent "$(cid txt)"
	[ "$status" -eq 1 ]
	[ "$(wc -l <"$log")" -eq 1 ]
	grep -E '^time="[^"]+" level=error msg="cfs-runtime: bundle not found: /nonexistent does not exist"$' "$log"
}

@test "invalid config.json is reported with its offset" {
	printf '{\n  "ociVersion": "1.0.2",\n  "root": {"path": 5}\n}\n' >"$BUNDLE/config.json"
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" "$(cid badjson)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid bundle config: $BUNDLE/config.json: invalid JSON at offset 47 (line 3, column 21): json: cannot unmarshal number into Go struct field Root.root.path of type string" ]
}

@test "nothing on stderr or in the runtime log on success" {
	log="$BATS_TEST_TMPDIR/log.json"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json run --bundle "$BUNDLE" "$(cid quiet)"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$output" = "" ]
	# runc writes nothing either for a clean run; cfs-runtime's own lines go
	# to its own log.
	if grep -q cfs-runtime "$log" 2>/dev/null; then false; fi
	grep -q 'level=WARN msg="starting unverified container"' "$BATS_TEST_TMPDIR/own.log"
}

@test "an unwritable own log file is not fatal" {
	use_config "runtime = \"$RUNC\"" 'log_file = "/proc/no/such/dir/cfs.log"'
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid nolog)"
	[ "$status" -eq 0 ]
}

@test "unknown subcommands and flags pass through with runc's result" {
	both no-such-subcommand --with-flag
	[ "$cfs_status" -eq "$runc_status" ]
	[ "$cfs_output" = "$runc_output" ]
	both --root "$BATS_TMPDIR/runc-root" state --bogus-flag x
	[ "$cfs_status" -eq "$runc_status" ]
	[ "$cfs_output" = "$runc_output" ]
	# create without an id: refused before the hand-off, like every line
	# cfs-runtime cannot read with certainty (runc would refuse it too).
	both create
	[ "$cfs_status" -eq 1 ]
	[ "$runc_status" -eq 1 ]
	[ "$cfs_output" = "cfs-runtime: refusing the command line: runc would refuse it: \"create\" requires exactly 1 argument, the container id (got 0: [])" ]
}

@test "features passes through" {
	both features
	[ "$cfs_status" -eq "$runc_status" ]
	[ "$cfs_output" = "$runc_output" ]
}

@test "--version prints cfs-runtime's line, then the runtime's" {
	run "$CFS_RUNTIME" --version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "cfs-runtime version "* ]]
	[ "${lines[1]}" = "$("$RUNC" --version | head -1)" ]
}

@test "the same PID execs the runtime (LISTEN_PID style)" {
	# A fake runtime that prints its own PID: cfs-runtime must exec it in
	# place, so $$ seen by the runtime is the PID the caller started.
	fake="$BATS_TEST_TMPDIR/fake-runtime"
	printf '#!/bin/sh\necho "$$ $*"\n' >"$fake"
	chmod +x "$fake"
	use_config "runtime = \"$fake\""
	"$CFS_RUNTIME" --root /r state x >"$BATS_TEST_TMPDIR/out" &
	pid=$!
	wait "$pid"
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "$pid --root /r state x" ]
}

@test "cfs-runtime's own options are not handed to the runtime" {
	fake="$BATS_TEST_TMPDIR/fake-runtime"
	printf '#!/bin/sh\necho "$*"\n' >"$fake"
	chmod +x "$fake"
	printf 'runtime = "%s"\n' "$fake" >"$BATS_TEST_TMPDIR/other.toml"
	use_config 'runtime = "/nonexistent"'
	run "$CFS_RUNTIME" --cfs-config "$BATS_TEST_TMPDIR/other.toml" --root /r kill x KILL
	[ "$status" -eq 0 ]
	[ "$output" = "--root /r kill x KILL" ]
}

@test "runtime configured as cfs-runtime itself is refused" {
	use_config "runtime = \"$CFS_RUNTIME\""
	run --separate-stderr "$CFS_RUNTIME" state x
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: runtime is cfs-runtime itself: configured runtime $CFS_RUNTIME; set runtime in the configuration to the real runc or crun" ]
}

@test "a runtime that links to cfs-runtime is refused, not exec'd forever" {
	# The front execs a runtime configured by path without stat'ing it
	# first: the process it becomes, exec'd by that path, refuses.
	ln -s "$CFS_RUNTIME" "$BATS_TEST_TMPDIR/runc"
	use_config "runtime = \"$BATS_TEST_TMPDIR/runc\""
	run --separate-stderr timeout 10 "$CFS_RUNTIME" state x
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: runtime is cfs-runtime itself: configured runtime $BATS_TEST_TMPDIR/runc; set runtime in the configuration to the real runc or crun" ]
	run --separate-stderr timeout 10 "$CFS_RUNTIME" --version
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: runtime is cfs-runtime itself: configured runtime $BATS_TEST_TMPDIR/runc; set runtime in the configuration to the real runc or crun" ]
}

@test "a runtime that is not executable is named" {
	printf '#!/bin/sh\n' >"$BATS_TEST_TMPDIR/runc"
	chmod 0644 "$BATS_TEST_TMPDIR/runc"
	use_config "runtime = \"$BATS_TEST_TMPDIR/runc\""
	run --separate-stderr "$CFS_RUNTIME" kill x KILL
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: no OCI runtime found: configured runtime $BATS_TEST_TMPDIR/runc is not an executable file" ]
}

@test "a missing runtime is named" {
	use_config 'runtime = "/opt/none/runc"'
	run --separate-stderr "$CFS_RUNTIME" state x
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: no OCI runtime found: configured runtime /opt/none/runc does not exist" ]
}

@test "an invalid config.toml names file, line and key" {
	use_config 'runtime = "/usr/sbin/runc"' 'state_dir = "relative"'
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid badconf)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid configuration: $CFS_RUNTIME_CONFIG:2: key state_dir: \"relative\" is not an absolute path" ]
	use_config 'runtime = "/usr/sbin/runc"' 'colour = "blue"'
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" "$(cid badconf)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid configuration: $CFS_RUNTIME_CONFIG:2: key colour: unknown key" ]
	[ -z "$("$RUNC" list -q | grep -x "$(cid badconf)")" ]
}

@test "a broken config.toml still hands every other command to the runtime, with a warning" {
	use_config "runtime = \"$RUNC\"" 'log_levl = "debug"'
	run --separate-stderr "$CFS_RUNTIME" --root "$BATS_TEST_TMPDIR/root" state nosuch
	[ "$status" -eq 1 ] # runc's answer
	[ "${stderr_lines[0]}" = "cfs-runtime: warning: invalid configuration: $CFS_RUNTIME_CONFIG:2: key log_levl: unknown key (handing \"state\" to $RUNC anyway; create and run are refused until it is fixed)" ]
	[[ "${stderr_lines[1]}" == *"container does not exist"* ]]
	# delete of a container without composefs state (what an engine runs
	# after a create refused for this configuration): no warning repeating
	# the refusal
	run --separate-stderr "$CFS_RUNTIME" --root "$BATS_TEST_TMPDIR/root" delete --force nosuch
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	# not TOML at all: the default runtime search
	use_config 'runtime = '
	run --separate-stderr "$CFS_RUNTIME" --root "$BATS_TEST_TMPDIR/root" list -q
	[ "$status" -eq 0 ]
	[[ "$stderr" == "cfs-runtime: warning: invalid configuration: $CFS_RUNTIME_CONFIG"*"(handing \"list\" to /usr/"*"bin/runc anyway; create and run are refused until it is fixed)" ]]
}

# --- the command line as the runtime reads it --------------------------------

# reject_unsigned: a policy that refuses unsigned containers.
reject_unsigned() {
	local keys="$BATS_TEST_TMPDIR/keys"
	mkdir -p "$keys"
	make_key "$keys" k
	write_policy "$keys/reject.toml" userspace reject "$keys/k.pub"
	use_config "runtime = \"$RUNC\"" "policy = \"$keys/reject.toml\""
}

@test "flags after the container id are read as runc reads them: an unsigned bundle is refused" {
	reject_unsigned
	local id
	id=$(cid late)
	# runc reads `run ID ID --bundle` as bundle ID (relative), container ID
	cp -a "$BUNDLE" "$BATS_TEST_TMPDIR/$id"
	for argv in "run $id --bundle $BUNDLE" "run $id -b $BUNDLE" "run --bundle $BUNDLE $id --" \
		"create --bundle $BUNDLE $id --pid-file $BATS_TEST_TMPDIR/pid" "run $id -bundle=$BUNDLE" "run $id $id --bundle"; do
		# shellcheck disable=SC2086
		(cd "$BATS_TEST_TMPDIR" && run --separate-stderr "$CFS_RUNTIME" --root "$BATS_TEST_TMPDIR/root" $argv
		echo "$argv: $status $stderr"
		[ "$status" -eq 1 ]
		[[ "$stderr" == "cfs-runtime: no composefs digest: "*" no [[allow_unsigned]] rule of $BATS_TEST_TMPDIR/keys/reject.toml matches this container" ]])
		[ -z "$("$RUNC" --root "$BATS_TEST_TMPDIR/root" list -q)" ]
	done
}

@test "a command line runc would refuse is refused before the hand-off" {
	reject_unsigned
	run --separate-stderr "$CFS_RUNTIME" run -d "$(cid bad)" --bundle "$BUNDLE"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: refusing the command line: runc would refuse it: \"run\" requires exactly 1 argument, the container id (got 3: [\"$(cid bad)\" \"--bundle\" \"$BUNDLE\"])" ]
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" -b "$BUNDLE" "$(cid bad)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: refusing the command line: runc would refuse it: cannot use two forms of the same flag: b bundle" ]
	run --separate-stderr "$CFS_RUNTIME" --bogus create --bundle "$BUNDLE" "$(cid bad)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: refusing the command line: runc would refuse it: flag provided but not defined: -bogus" ]
}

@test "restore is refused: a checkpoint is not a verified root filesystem" {
	run --separate-stderr "$CFS_RUNTIME" restore --bundle "$BUNDLE" "$(cid restore)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: restore: cfs-runtime does not restore checkpoints: the checkpoint image is not a verified root filesystem; create the container anew" ]
}

@test "crun's rules for crun: --config is read relative to the caller's directory" {
	# A stand-in named crun that prints what it was given.
	mkdir "$BATS_TEST_TMPDIR/fake"
	printf '#!/bin/sh\necho "$*"\n' >"$BATS_TEST_TMPDIR/fake/crun"
	chmod +x "$BATS_TEST_TMPDIR/fake/crun"
	use_config "runtime = \"$BATS_TEST_TMPDIR/fake/crun\""
	mkdir "$BATS_TEST_TMPDIR/caller"
	echo '{"broken' >"$BATS_TEST_TMPDIR/caller/other.json"
	cp "$BUNDLE/config.json" "$BUNDLE/other.json"
	cd "$BATS_TEST_TMPDIR/caller"
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" -f other.json "$(cid crun)"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: invalid bundle config: $BATS_TEST_TMPDIR/caller/other.json: "* ]]
	# abbreviations and clusters, as getopt_long reads them
	run --separate-stderr "$CFS_RUNTIME" create --bun "$BUNDLE" "$(cid crun)"
	[ "$status" -eq 0 ]
	[ "$output" = "create --bun $BUNDLE $(cid crun)" ]
	# crun stops at the first argument: a later --bundle is an extra one
	run --separate-stderr "$CFS_RUNTIME" create "$(cid crun)" --bundle "$BUNDLE"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: refusing the command line: crun would refuse it: "* ]]
}

@test "another runtime: a command line runc and crun read differently is refused" {
	mkdir "$BATS_TEST_TMPDIR/fake"
	printf '#!/bin/sh\necho "$*"\n' >"$BATS_TEST_TMPDIR/fake/myruntime"
	chmod +x "$BATS_TEST_TMPDIR/fake/myruntime"
	use_config "runtime = \"$BATS_TEST_TMPDIR/fake/myruntime\""
	run --separate-stderr "$CFS_RUNTIME" create "$(cid other)" --bundle "$BUNDLE"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: refusing the command line: "* ]]
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" "$(cid other)"
	[ "$status" -eq 0 ]
	[ "$output" = "create --bundle $BUNDLE $(cid other)" ]
}

@test "create without a trust policy is refused and names the missing file" {
	use_config "runtime = \"$RUNC\"" "policy = \"$BATS_TEST_TMPDIR/no-policy.toml\""
	log="$BATS_TEST_TMPDIR/log.json"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json run --bundle "$BUNDLE" "$(cid nopolicy)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: no trust policy: $BATS_TEST_TMPDIR/no-policy.toml does not exist; every container is refused until it does (see policy.toml.example, check it with \`cfs-runtime policy check\`)" ]
	[ "$(jq -r .msg "$log")" = "$stderr" ]
	# other subcommands do not need the policy
	run "$CFS_RUNTIME" state "$(cid nopolicy)"
	[ "$status" -eq 1 ]
	[[ "$output" == *"container does not exist"* ]]
}
