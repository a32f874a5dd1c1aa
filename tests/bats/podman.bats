#!/usr/bin/env bats
# podman → conmon → cfs-runtime → runc.
#
# cfs-runtime is meant to be used as `podman --runtime /usr/local/bin/cfs-runtime`.
# These tests run podman (Debian 12: podman 4.3.1, conmon 2.1) against
# cfs-runtime on a busybox-static image made with `podman import` (no
# registry is needed) and check what a user sees: output, exit codes, exec,
# stop, kill, rm, and the same error text as with runc.
#
# Environment: CFS_RUNTIME (default /usr/local/bin/cfs-runtime), RUNC
# (default /usr/sbin/runc), BUSYBOX (default /bin/busybox, must be static).
# Needs root and podman (apt-get install podman busybox-static).
#
# Self-contained on purpose: it does not load helpers.bash.

bats_require_minimum_version 1.5.0

CFS_RUNTIME=${CFS_RUNTIME:-/usr/local/bin/cfs-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}

# As root, podman asks for container rlimits above this shell's hard limits,
# which needs CAP_SYS_RESOURCE; the root shell on these machines lacks it, so
# podman run fails without explicit limits within the hard limits.
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

# podman with cfs-runtime. Every call passes --runtime, even for commands
# on an existing container (podman keeps the runtime the container was
# created with; the tests check that it is cfs-runtime).
cfs_podman() {
	podman --runtime "$CFS_RUNTIME" "$@"
}

# ctr NAME: a container name unique to this run and test, removed in teardown.
ctr() {
	echo "cfs-bats-podman-$$-${BATS_TEST_NUMBER}-$1"
}

setup_file() {
	if [ "$(id -u)" != 0 ]; then
		skip "podman tests require root"
	fi
	if ! command -v podman >/dev/null; then
		# In CI a missing podman is a broken setup, not a reason to skip.
		if [ -n "${CI:-}" ]; then
			echo "podman not installed (apt-get install podman)" >&2
			return 1
		fi
		skip "podman not installed (apt-get install podman)"
	fi
	if [ ! -x "$CFS_RUNTIME" ]; then
		echo "cfs-runtime binary $CFS_RUNTIME not found: build it or set CFS_RUNTIME" >&2
		return 1
	fi
	if ldd "$BUSYBOX" >/dev/null 2>&1; then
		echo "$BUSYBOX is dynamically linked; install busybox-static" >&2
		return 1
	fi

	# podman and conmon run the runtime with a scrubbed environment, so only
	# /etc/cfs-runtime/config.toml reaches cfs-runtime. Install a test
	# configuration whose policy lets unsigned containers through (these
	# tests are about pass-through), and restore the original afterwards.
	local etc=/etc/cfs-runtime keys=$BATS_FILE_TMPDIR/keys
	mkdir -p "$etc" "$keys"
	if [ -e "$etc/config.toml" ]; then mv "$etc/config.toml" "$BATS_FILE_TMPDIR/config.toml.orig"; fi
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keys/k.key" 2>/dev/null
	openssl pkey -in "$keys/k.key" -pubout -out "$keys/k.pub"
	printf 'unsigned = "allow"\nenforcement = "userspace"\n[[signer]]\nname = "bats"\npublic_key = "%s"\n' "$keys/k.pub" >"$keys/policy.toml"
	printf 'policy = "%s"\nstore_dir = "%s"\nstate_dir = "%s"\n' "$keys/policy.toml" "$BATS_FILE_TMPDIR/store" "$BATS_FILE_TMPDIR/state" >"$etc/config.toml"

	# busybox-static image, imported from a tarball: no registry access.
	local root=$BATS_FILE_TMPDIR/rootfs a
	mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root}
	cp "$BUSYBOX" "$root/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	tar -C "$root" --numeric-owner -cf "$BATS_FILE_TMPDIR/rootfs.tar" .
	export IMAGE=localhost/cfs-runtime-bats/busybox:$$
	podman import --change 'CMD ["/bin/sh"]' "$BATS_FILE_TMPDIR/rootfs.tar" "$IMAGE" >/dev/null

	# podman asks only the runtimes named in containers.conf's
	# runtime_supports_json (by basename: runc, crun, ...) for JSON error logs
	# (conmon adds `--log-format=json --log <userdata>/oci-log` before the
	# subcommand) and then shows the "msg" of the error line; for any other
	# runtime it shows raw stderr (time="..." level=error msg="..."). Users
	# who want runc's error text through cfs-runtime list it there.
	cat >"$BATS_FILE_TMPDIR/containers-json.conf" <<-'EOF'
		[engine]
		runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "cfs-runtime"]
	EOF
}

teardown() {
	local name
	for name in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^cfs-bats-podman-$$-${BATS_TEST_NUMBER}-" || true); do
		podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
	done
}

teardown_file() {
	rm -f /etc/cfs-runtime/config.toml
	if [ -e "$BATS_FILE_TMPDIR/config.toml.orig" ]; then mv "$BATS_FILE_TMPDIR/config.toml.orig" /etc/cfs-runtime/config.toml; fi
	if [ -n "${IMAGE:-}" ]; then
		podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
	fi
}

# state NAME: "status exitcode" of a container.
state() {
	podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1"
}

# wait_state NAME STATUS: up to 10 s for the container to reach STATUS.
wait_state() {
	local _
	for _ in $(seq 100); do
		case $(state "$1") in "$2 "*) return 0 ;; esac
		sleep 0.1
	done
	echo "container $1 did not reach $2: $(state "$1")" >&2
	return 1
}

@test "podman run --rm through cfs-runtime prints hi" {
	run cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" echo hi
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "hi" ]
}

@test "exit code of the container process propagates (7)" {
	run cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" sh -c 'exit 7'
	echo "$output"
	[ "$status" -eq 7 ]
	[ "$output" = "" ]
}

@test "stdout, stderr and exit code are the same as with runc" {
	local cmd='echo out; echo err >&2; exit 5'
	run podman --runtime "$RUNC" run --rm "${ULIMITS[@]}" "$IMAGE" sh -c "$cmd"
	local runc_status=$status runc_output=$output
	run cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" sh -c "$cmd"
	echo "runc: $runc_status [$runc_output]"
	echo "cfs:  $status [$output]"
	[ "$runc_status" -eq 5 ]
	[ "$status" -eq "$runc_status" ]
	[ "$output" = "$runc_output" ]
}

@test "the container is run by conmon with cfs-runtime" {
	local name
	name=$(ctr run)
	run cfs_podman run -d --name "$name" "${ULIMITS[@]}" "$IMAGE" sleep 1000
	[ "$status" -eq 0 ]
	run podman inspect --format '{{.OCIRuntime}}' "$name"
	[ "$output" = "$CFS_RUNTIME" ]
	# conmon does create and exec with the runtime given by -r.
	local conmon_pid
	conmon_pid=$(podman inspect --format '{{.State.ConmonPid}}' "$name")
	run bash -c "tr '\\0' '\\n' </proc/$conmon_pid/cmdline | grep -A1 -x -- -r"
	echo "$output"
	[ "${lines[1]}" = "$CFS_RUNTIME" ]
}

@test "podman exec into a running container" {
	local name
	name=$(ctr exec)
	cfs_podman run -d --name "$name" --hostname cfsexec "${ULIMITS[@]}" "$IMAGE" sleep 1000
	# shellcheck disable=SC2016 # expanded in the container
	run cfs_podman exec "$name" sh -c 'echo "in $(hostname)"; cat /proc/1/cmdline | tr "\0" " "; echo; exit 3'
	echo "$output"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "in cfsexec" ]
	[ "${lines[1]}" = "sleep 1000 " ]
	# exec with a tty-less stdin pipe
	run bash -c "echo piped | podman --runtime '$CFS_RUNTIME' exec -i '$name' cat"
	[ "$status" -eq 0 ]
	[ "$output" = "piped" ]
	# exec of a missing executable: 127, as with runc
	run -127 cfs_podman exec "$name" /nonexistent
	echo "$output"
}

@test "podman stop delivers SIGTERM through cfs-runtime" {
	local name
	name=$(ctr stop)
	# PID 1 ignores signals without a handler: trap TERM and exit 42, so the
	# exit code proves the signal arrived (a SIGKILL fallback would give 137).
	cfs_podman run -d --name "$name" "${ULIMITS[@]}" "$IMAGE" \
		sh -c 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'
	wait_state "$name" running
	run cfs_podman stop -t 10 "$name"
	echo "$output"
	[ "$status" -eq 0 ]
	run state "$name"
	[ "$output" = "exited 42" ]
}

@test "podman kill sends the requested signal" {
	local name
	name=$(ctr kill)
	cfs_podman run -d --name "$name" "${ULIMITS[@]}" "$IMAGE" \
		sh -c 'trap "exit 10" USR1; while :; do sleep 0.1; done'
	wait_state "$name" running
	run cfs_podman kill --signal USR1 "$name"
	[ "$status" -eq 0 ]
	wait_state "$name" exited
	run state "$name"
	[ "$output" = "exited 10" ]

	# default signal is SIGKILL: 128+9
	local name2
	name2=$(ctr kill2)
	cfs_podman run -d --name "$name2" "${ULIMITS[@]}" "$IMAGE" sleep 1000
	wait_state "$name2" running
	run cfs_podman kill "$name2"
	[ "$status" -eq 0 ]
	wait_state "$name2" exited
	run state "$name2"
	[ "$output" = "exited 137" ]
}

@test "podman rm removes stopped and (with -f) running containers" {
	local name
	name=$(ctr rm)
	cfs_podman run --name "$name" "${ULIMITS[@]}" "$IMAGE" true
	run cfs_podman rm "$name"
	[ "$status" -eq 0 ]
	run podman container exists "$name"
	[ "$status" -eq 1 ]

	cfs_podman run -d --name "$name" "${ULIMITS[@]}" "$IMAGE" sleep 1000
	wait_state "$name" running
	local pid id
	pid=$(podman inspect --format '{{.State.Pid}}' "$name")
	id=$(podman inspect --format '{{.Id}}' "$name")
	[ "$pid" -gt 0 ]
	run cfs_podman rm -f -t 0 "$name"
	[ "$status" -eq 0 ]
	run podman container exists "$name"
	[ "$status" -eq 1 ]
	# the container's process is gone, not left running outside podman
	if [ -e "/proc/$pid" ] && grep -qx sleep "/proc/$pid/comm"; then
		echo "container process $pid still running" >&2
		false
	fi
	# and runc keeps no state for it
	run "$RUNC" list -q
	echo "$output"
	[[ "$output" != *"$id"* ]]
}

@test "a missing executable gives runc's exit code and error text (JSON log)" {
	export CONTAINERS_CONF=$BATS_FILE_TMPDIR/containers-json.conf
	run -127 podman --runtime "$RUNC" run --rm "${ULIMITS[@]}" "$IMAGE" /nonexistent
	local runc_output=${output//$RUNC/RUNTIME}
	run -127 cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" /nonexistent
	local cfs_output=${output//$CFS_RUNTIME/RUNTIME}
	echo "runc: [$runc_output]"
	echo "cfs:  [$cfs_output]"
	[ "$cfs_output" = "$runc_output" ]
	[[ "$cfs_output" == *'exec: "/nonexistent": stat /nonexistent: no such file or directory'* ]]
}
