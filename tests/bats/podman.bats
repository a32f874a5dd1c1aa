#!/usr/bin/env bats
# podman → conmon → cfs-runtime → runc.
#
# cfs-runtime is meant to be used as `podman --runtime /usr/local/bin/cfs-runtime`
# (or `podman --runtime cfs` with contrib/containers.conf.d/cfs-runtime.conf).
# These tests run podman (Debian 12: podman 4.3.1, conmon 2.1) against
# cfs-runtime on a busybox-static image made with `podman import` (no
# registry is needed) and check what a user sees: output, exit codes, exec,
# stop, kill, rm, the same error text as with runc, and cfs-runtime's own
# refusals as podman prints them.
#
# Signed containers: the image's tree is imported into the store and its
# digest signed with `cfs-runtime sign --format podman`, whose output is
# pasted into `podman run`. The store must hold the image beforehand:
# podman's prepared root filesystem never has the signed digest (the root
# directory's mtime is that of the container's new overlay upper layer, and
# podman adds /etc/hosts, /etc/resolv.conf, /run/.containerenv, ...).
# This host has no fs-verity, so the policy uses enforcement = "userspace";
# the kernel-enforced levels are proven in tests/vm.
#
# Environment: CFS_RUNTIME (default bin/cfs-runtime of this checkout), RUNC
# (default /usr/sbin/runc), BUSYBOX (default /bin/busybox, must be static).
# Needs root and podman (apt-get install podman busybox-static). Installs
# /etc/cfs-runtime/config.toml (podman and conmon scrub the environment, so
# CFS_RUNTIME_CONFIG cannot reach cfs-runtime) and, for one test,
# /etc/containers/containers.conf.d/cfs-runtime.conf; both are restored.

# $output, $lines, $status and $stderr are set by bats' run.
# shellcheck disable=SC2154

load helpers
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
# Large enough to be stored as an object (composefs inlines up to 64 bytes).
HELLO="hello from the signed image, $(printf '%0100d' 0)"
ETC=/etc/cfs-runtime
DROPIN=/etc/containers/containers.conf.d/cfs-runtime.conf

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

# pm_config UNSIGNED [STORE]: the configuration podman's cfs-runtime reads,
# with a policy that trusts the "good" key and lets unsigned containers pass
# (allow) or not (reject).
pm_config() {
	write_policy "$BATS_FILE_TMPDIR/policy.toml" userspace "$1" "$KEYS/good.pub"
	cat >"$ETC/config.toml" <<-EOF
		runtime = "$RUNC"
		store_dir = "${2:-$STORE}"
		state_dir = "$STATE"
		log_file = "$BATS_FILE_TMPDIR/own.log"
		audit_file = "$BATS_FILE_TMPDIR/audit.jsonl"
		policy = "$BATS_FILE_TMPDIR/policy.toml"
	EOF
}

# pm_leftovers: mounts below the state directory, its entries and loop
# devices on the store (prints nothing when cfs-runtime cleaned up).
pm_leftovers() {
	awk -v d="$STATE/" 'index($5, d) == 1 { print "mount " $5 }' /proc/self/mountinfo
	find "$STATE" -mindepth 1 -maxdepth 1 -printf 'state %f\n' 2>/dev/null
	losetup -a | grep -F "$BATS_FILE_TMPDIR" || true
}

# refusal MESSAGE: what podman prints when cfs-runtime refuses a container
# started with --runtime PATH.
refusal() {
	echo "Error: OCI runtime error: $CFS_RUNTIME: cfs-runtime: $1"
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

	export KEYS=$BATS_FILE_TMPDIR/keys STORE=$BATS_FILE_TMPDIR/store STATE=$BATS_FILE_TMPDIR/state
	# Directories this suite creates are removed again in teardown_file.
	local d
	for d in "$ETC" "${DROPIN%/*}"; do
		[ -d "$d" ] || echo "$d" >>"$BATS_FILE_TMPDIR/made-dirs"
	done
	mkdir -p "$KEYS" "$ETC"
	make_key "$KEYS" good
	make_key "$KEYS" other
	if [ -e "$ETC/config.toml" ]; then mv "$ETC/config.toml" "$BATS_FILE_TMPDIR/config.toml.orig"; fi
	if [ -e "$DROPIN" ]; then mv "$DROPIN" "$BATS_FILE_TMPDIR/dropin.orig"; fi

	# busybox-static image, imported from a tarball: no registry access.
	local root=$BATS_FILE_TMPDIR/rootfs a
	make_rootfs "$root"
	for a in $("$BUSYBOX" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	mkdir "$root/data"
	printf '%s\n' "$HELLO" >"$root/data/hello.txt"
	# No /run, /var/tmp, /etc/hosts, /etc/hostname, /etc/resolv.conf: runc
	# creates the mount points podman needs in cfs-runtime's upper layer,
	# also for --read-only.
	rm -rf "$root/run" "$root/var/tmp" "$root/etc/hosts" "$root/etc/hostname" "$root/etc/resolv.conf"
	tar -C "$root" --numeric-owner -cf "$BATS_FILE_TMPDIR/rootfs.tar" .
	export IMAGE=localhost/cfs-runtime-bats/busybox:$$
	podman import --change 'CMD ["/bin/sh"]' "$BATS_FILE_TMPDIR/rootfs.tar" "$IMAGE" >/dev/null

	# The same tree in cfs-runtime's store, and its signed digest.
	DIGEST=$("$CFS_RUNTIME" import --store "$STORE" "$root")
	export DIGEST

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

setup() {
	requires_root
	# The wrapper tests are about pass-through: unsigned containers pass.
	pm_config allow
}

teardown() {
	local name
	for name in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^cfs-bats-podman-$$-${BATS_TEST_NUMBER}-" || true); do
		podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
	done
	rm -f "$DROPIN"
}

teardown_file() {
	rm -f "$ETC/config.toml" "$DROPIN"
	if [ -e "$BATS_FILE_TMPDIR/config.toml.orig" ]; then mv "$BATS_FILE_TMPDIR/config.toml.orig" "$ETC/config.toml"; fi
	if [ -e "$BATS_FILE_TMPDIR/dropin.orig" ]; then mv "$BATS_FILE_TMPDIR/dropin.orig" "$DROPIN"; fi
	if [ -e "$BATS_FILE_TMPDIR/made-dirs" ]; then
		xargs rmdir <"$BATS_FILE_TMPDIR/made-dirs" 2>/dev/null || true
	fi
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

# --- signed images ------------------------------------------------------------

@test "signed image: podman run \$(cfs-runtime sign --format podman) runs it from the composefs mount" {
	pm_config reject
	# Exactly what a user pastes: the sign output, unquoted, as flags.
	# shellcheck disable=SC2046
	run --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" \
		$("$CFS_RUNTIME" sign --key "$KEYS/good.key" --format podman "$DIGEST") \
		"$IMAGE" sh -c 'cat /data/hello.txt; grep " / / " /proc/self/mountinfo'
	echo "$output$stderr"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "${lines[0]}" = "$HELLO" ]
	# The root is cfs-runtime's overlay over the store, not podman's.
	[[ "${lines[1]}" == *" - overlay composefs rw,lowerdir+=$STATE/"*",datadir+=$STORE/objects,"* ]]
	grep -q "msg=verified .*verdict=.*$DIGEST" "$BATS_FILE_TMPDIR/own.log"
	[ -z "$(pm_leftovers)" ]
}

@test "sealed OCI image pulled into podman: podman run --runtime cfs IMAGE needs no flags" {
	pm_config reject
	# An image of its own (another command, so another image ID): pulling
	# the sealed manifest gives every name of that ID its annotations.
	# podman names an image pulled from oci:DIR after the layout's path,
	# which must be lowercase (BATS_TEST_TMPDIR is not).
	local layout=/tmp/cfs-bats-podman-$$-sealed image=localhost/cfs-runtime-bats/sealed:$$ id digest
	rm -rf "$layout"
	podman import --change 'CMD ["/bin/cat", "/data/hello.txt"]' "$BATS_FILE_TMPDIR/rootfs.tar" "$image" >/dev/null
	id=$(podman image inspect --format '{{.ID}}' "$image")
	run cfs_podman run --rm "${ULIMITS[@]}" "$image"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no composefs digest: no $DIGEST_KEY annotation"* ]]

	podman save -q --format oci-dir -o "$layout" "$image"
	digest=$("$CFS_RUNTIME" import --store "$STORE" "oci:$layout" 2>/dev/null)
	"$CFS_RUNTIME" seal --key "$KEYS/good.key" "oci:$layout" >/dev/null 2>&1
	podman pull -q "oci:$layout" >/dev/null
	run podman image inspect --format '{{.ID}} {{index .Annotations "'"$DIGEST_KEY"'"}}' "localhost$layout:latest" "$image"
	[ "$output" = "$(printf '%s %s\n%s %s' "$id" "$digest" "$id" "$digest")" ]
	run --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" "$image"
	echo "$output$stderr"
	podman rmi -f "$id" >/dev/null 2>&1 || true
	rm -rf "$layout"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	grep -q "msg=verified .*verdict=\"composefs digest sha256:$digest: cosign signature trusted by signer" "$BATS_FILE_TMPDIR/own.log"
	[ -z "$(pm_leftovers)" ]
}

@test "podman run --read-only: the signed composefs root is read-only, its mount points need not be in the image" {
	pm_config reject
	# podman mounts tmpfs on /tmp, /var/tmp and /run, and binds /etc/hosts,
	# /etc/hostname and /etc/resolv.conf: the image has none of those mount
	# points; runc creates them in the upper layer, then remounts / read-only.
	[ ! -e "$BATS_FILE_TMPDIR/rootfs/etc/hostname" ]
	# shellcheck disable=SC2046
	run cfs_podman run --rm --read-only "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") \
		"$IMAGE" sh -c 'exec 2>&1; grep " / / " /proc/self/mountinfo; cat /etc/hostname >/dev/null && touch /data/new'
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == *" / / ro,"*" - overlay composefs "*"lowerdir+=$STATE/"*",datadir+=$STORE/objects,"* ]]
	[ "${lines[1]}" = "touch: /data/new: Read-only file system" ]
	[ -z "$(pm_leftovers)" ]
}

@test "unsigned image, unsigned = reject: podman shows cfs-runtime's refusal" {
	pm_config reject
	run -126 --separate-stderr cfs_podman run --rm --name "$(ctr unsigned)" "${ULIMITS[@]}" "$IMAGE" cat /data/hello.txt
	echo "$stderr"
	[ "$output" = "" ]
	[ "$stderr" = "$(refusal "no composefs digest: no $DIGEST_KEY annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $BATS_FILE_TMPDIR/policy.toml matches this container")" ]
	run podman container exists "$(ctr unsigned)"
	[ "$status" -eq 1 ]
	[ -z "$(pm_leftovers)" ]
}

@test "signed by an untrusted key: podman shows cfs-runtime's refusal" {
	pm_config reject
	# shellcheck disable=SC2046
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" \
		$("$CFS_RUNTIME" sign --key "$KEYS/other.key" "$DIGEST") "$IMAGE" cat /data/hello.txt
	echo "$stderr"
	[ "$output" = "" ]
	[ "$stderr" = "$(refusal "composefs digest sha256:$DIGEST: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest")" ]
	[ -z "$(pm_leftovers)" ]
}

@test "signature of another digest: podman shows cfs-runtime's refusal" {
	pm_config reject
	local sig
	sig=$("$CFS_RUNTIME" sign --key "$KEYS/good.key" --format annotations "$(printf '%064d' 1)" | sed -n "s/^$DIGEST_KEY.cosign=//p")
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" \
		--annotation "$DIGEST_KEY=$DIGEST" --annotation "$DIGEST_KEY.cosign=$sig" "$IMAGE" cat /data/hello.txt
	echo "$stderr"
	[ "$output" = "" ]
	[ "$stderr" = "$(refusal "composefs digest sha256:$DIGEST: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest")" ]
	[ -z "$(pm_leftovers)" ]
}

@test "signed digest not in the store: podman's root filesystem is not what was signed" {
	local store=$BATS_TEST_TMPDIR/store
	pm_config reject "$store"
	# shellcheck disable=SC2046
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" true
	echo "$stderr"
	[ "$output" = "" ]
	[[ "$stderr" == "$(refusal "composefs digest mismatch: bundle root filesystem /var/lib/containers/storage/overlay/")"*"/merged has composefs digest "*", but the signed digest is $DIGEST, which is not in the store "*": import the signed tree (cfs-runtime import --store "*" TREE) or the sealed image (cfs-runtime import oci:DIR) first" ]]
	[ ! -e "$store/images/$DIGEST" ]
	[ -z "$(pm_leftovers)" ]
}

@test "tampered object in the store: refused before the container starts, naming the file" {
	local store=$BATS_TEST_TMPDIR/store obj bad
	pm_config reject "$store"
	[ "$("$CFS_RUNTIME" import --store "$store" "$BATS_FILE_TMPDIR/rootfs")" = "$DIGEST" ]
	obj=$(fsverity digest --compact "$BATS_FILE_TMPDIR/rootfs/data/hello.txt")
	printf 'J' | dd of="$store/objects/${obj:0:2}/${obj:2}" bs=1 seek=0 conv=notrunc status=none
	bad=$(fsverity digest --compact "$store/objects/${obj:0:2}/${obj:2}")
	# shellcheck disable=SC2046
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" cat /data/hello.txt
	echo "$stderr"
	[ "$output" = "" ]
	[ "$stderr" = "$(refusal "composefs digest $DIGEST: object $obj (used by /data/hello.txt): digest mismatch: content hashes to $bad")" ]
	[ -z "$(pm_leftovers)" ]
}

# --- refusals podman must not misread -----------------------------------------
#
# podman maps a runtime error containing "no such file or directory" to "OCI
# runtime attempted to invoke a command that was not found" (exit status
# 127) and one containing "permission denied" or "operation not permitted"
# to "OCI permission denied". cfs-runtime's own refusals must reach the user
# as what they are: podman's "OCI runtime error" (126) with cfs-runtime's
# wording.

@test "a policy key file that does not exist: podman shows cfs-runtime's refusal, not a missing command" {
	pm_config reject
	local missing=$BATS_TEST_TMPDIR/keys/good.pub
	write_policy "$BATS_FILE_TMPDIR/policy.toml" userspace reject "$missing"
	# shellcheck disable=SC2046
	run --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" true
	echo "exit $status: $stderr"
	[ "$status" -eq 126 ]
	[ "$output" = "" ]
	[ "$stderr" = "$(refusal "invalid trust policy: $BATS_FILE_TMPDIR/policy.toml:5: key signer[0].public_key: key file $missing does not exist ($BATS_TEST_TMPDIR/keys does not exist)")" ]
	[ -z "$(pm_leftovers)" ]

	# the same with the key's directory there
	mkdir -p "$BATS_TEST_TMPDIR/keys"
	# shellcheck disable=SC2046
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" true
	[ "$stderr" = "$(refusal "invalid trust policy: $BATS_FILE_TMPDIR/policy.toml:5: key signer[0].public_key: key file $missing does not exist")" ]
}

@test "a policy file that does not exist: podman shows cfs-runtime's refusal" {
	pm_config reject
	sed -i "s|^policy = .*|policy = \"$BATS_TEST_TMPDIR/none.toml\"|" "$ETC/config.toml"
	run -126 --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" true
	echo "$stderr"
	[ "$stderr" = "$(refusal "no trust policy: $BATS_TEST_TMPDIR/none.toml does not exist; every container is refused until it does (see policy.toml.example, check it with \`cfs-runtime policy check\`)")" ]
}

@test "a configured runtime that does not exist: podman shows cfs-runtime's refusal, not a missing command" {
	pm_config allow
	sed -i 's|^runtime = .*|runtime = "/nonexistent/runc"|' "$ETC/config.toml"
	run --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" "$IMAGE" true
	echo "exit $status: $stderr"
	[ "$status" -eq 126 ]
	[ "$output" = "" ]
	# podman's cleanup (runtime delete) fails the same way first; the last
	# line is the refusal
	[ "${stderr##*$'\n'}" = "$(refusal "no OCI runtime found: configured runtime /nonexistent/runc does not exist")" ]
	run -1 grep -iE 'not found|permission denied' <<<"$stderr"
}

@test "a state directory that cannot be created (EPERM): podman shows cfs-runtime's refusal, not its own permission error" {
	local state=$BATS_TEST_TMPDIR/state
	mkdir -p "$state"
	pm_config reject
	sed -i "s|^state_dir = .*|state_dir = \"$state\"|" "$ETC/config.toml"
	# immutable: mkdir in it fails with EPERM, also for root
	chattr +i "$state"
	# shellcheck disable=SC2046
	run --separate-stderr cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" true
	chattr -i "$state"
	echo "exit $status: $stderr"
	[ "$status" -eq 126 ]
	[[ "$stderr" == "$(refusal "mount composefs image $STORE/images/$DIGEST: state directory $state/")"*": mkdir refused by the kernel (EPERM)" ]]
	[ -z "$(find "$state" -mindepth 1)" ]
}

@test "podman exec, stop, start, kill and rm on a signed container" {
	pm_config reject
	local name flags
	name=$(ctr signed)
	flags=$("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST")
	# shellcheck disable=SC2086
	cfs_podman run -d --name "$name" "${ULIMITS[@]}" $flags "$IMAGE" \
		sh -c 'trap "exit 42" TERM; trap "exit 10" USR1; while :; do sleep 0.1; done'
	wait_state "$name" running
	[ "$(pm_leftovers | grep -c '^mount ')" -eq 2 ] # the state tmpfs and the overlay

	run cfs_podman exec "$name" sh -c 'cat /data/hello.txt; grep -c " / / .* - overlay composefs " /proc/self/mountinfo; exit 3'
	echo "$output"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "$HELLO" ]
	[ "${lines[1]}" = 1 ]

	# stop: SIGTERM reaches the trap; the container is deleted by the
	# runtime and its mounts go with it.
	run cfs_podman stop -t 10 "$name"
	[ "$status" -eq 0 ]
	[ "$(state "$name")" = "exited 42" ]
	[ -z "$(pm_leftovers)" ]

	# start again: verified and mounted again.
	run cfs_podman start "$name"
	[ "$status" -eq 0 ]
	wait_state "$name" running
	run cfs_podman exec "$name" cat /data/hello.txt
	[ "$output" = "$HELLO" ]

	run cfs_podman kill --signal USR1 "$name"
	[ "$status" -eq 0 ]
	wait_state "$name" exited
	[ "$(state "$name")" = "exited 10" ]

	run cfs_podman rm "$name"
	[ "$status" -eq 0 ]
	run podman container exists "$name"
	[ "$status" -eq 1 ]
	[ -z "$(pm_leftovers)" ]

	# rm -f of a running signed container
	# shellcheck disable=SC2086
	cfs_podman run -d --name "$name" "${ULIMITS[@]}" $flags "$IMAGE" sleep 1000
	wait_state "$name" running
	run cfs_podman rm -f -t 0 "$name"
	[ "$status" -eq 0 ]
	[ -z "$(pm_leftovers)" ]
}

@test "podman run --rm of a signed container leaves no mount and no state behind" {
	pm_config reject
	local _
	for _ in 1 2 3; do
		# shellcheck disable=SC2046
		run cfs_podman run --rm "${ULIMITS[@]}" $("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST") "$IMAGE" cat /data/hello.txt
		[ "$status" -eq 0 ]
		[ "$output" = "$HELLO" ]
		run pm_leftovers
		echo "$output"
		[ "$output" = "" ]
	done
}

# --- contrib/containers.conf.d ------------------------------------------------

@test "contrib/containers.conf.d/cfs-runtime.conf: podman run --runtime cfs, JSON error logs" {
	local conf=$BATS_TEST_DIRNAME/../../contrib/containers.conf.d/cfs-runtime.conf
	# What the file must say (podman 4.3's containers.conf(5) keys).
	grep -qx '\[engine.runtimes\]' "$conf"
	grep -qx 'cfs = \["/usr/local/bin/cfs-runtime"\]' "$conf"
	grep -qE '^runtime_supports_json = \[.*"cfs".*\]$' "$conf"
	grep -qE '^runtime_supports_json = \[.*"cfs-runtime".*\]$' "$conf"
	# A drop-in replaces podman's default list: it must keep runc and crun.
	grep -qE '^runtime_supports_json = \["crun", "runc", .*\]$' "$conf"

	# Installed as shipped, with only the binary's path changed.
	mkdir -p "${DROPIN%/*}"
	sed "s|\"/usr/local/bin/cfs-runtime\"|\"$CFS_RUNTIME\"|" "$conf" >"$DROPIN"
	pm_config reject
	local name flags
	name=$(ctr conf)
	flags=$("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST")
	# shellcheck disable=SC2086
	run podman run --runtime cfs -d --name "$name" "${ULIMITS[@]}" $flags "$IMAGE" sleep 1000
	[ "$status" -eq 0 ]
	[ "$(podman inspect --format '{{.OCIRuntime}}' "$name")" = cfs ]
	# runtime_supports_json took effect: conmon asks for JSON error logs.
	local conmon_pid
	conmon_pid=$(podman inspect --format '{{.State.ConmonPid}}' "$name")
	run bash -c "tr '\\0' '\\n' </proc/$conmon_pid/cmdline | grep -A1 -x -- --runtime-arg"
	echo "$output"
	[ "${lines[1]}" = "--log-format=json" ]
	run podman exec "$name" cat /data/hello.txt
	[ "$output" = "$HELLO" ]
	run podman rm -f -t 0 "$name"
	[ "$status" -eq 0 ]

	# podman shows the "msg" of cfs-runtime's JSON log line.
	run -126 --separate-stderr podman run --runtime cfs --rm "${ULIMITS[@]}" "$IMAGE" true
	echo "$stderr"
	[ "$stderr" = "Error: OCI runtime error: cfs: cfs-runtime: no composefs digest: no $DIGEST_KEY annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $BATS_FILE_TMPDIR/policy.toml matches this container" ]
	[ -z "$(pm_leftovers)" ]
}

# --- a broken configuration ---------------------------------------------------

@test "a config.toml broken while a signed container runs: exec, stop and rm still work and leave nothing" {
	pm_config reject
	local name flags
	name=$(ctr broken)
	flags=$("$CFS_RUNTIME" sign --key "$KEYS/good.key" "$DIGEST")
	# shellcheck disable=SC2086
	cfs_podman run -d --name "$name" "${ULIMITS[@]}" $flags "$IMAGE" sleep 1000
	wait_state "$name" running
	echo 'log_levl = "debug"' >>"$ETC/config.toml"

	run cfs_podman exec "$name" cat /data/hello.txt
	echo "$output"
	[ "$status" -eq 0 ]
	# the container's output, and cfs-runtime's warning (the order of the
	# two streams is not fixed)
	[[ "$output" == *"$HELLO"* ]]
	[[ "$output" == *"cfs-runtime: warning: invalid configuration: $ETC/config.toml:7: key log_levl: unknown key (handing \"exec\" to $RUNC anyway; create and run are refused until it is fixed)"* ]]
	run cfs_podman stop -t 0 "$name"
	[ "$status" -eq 0 ]
	run cfs_podman rm -f -t 0 "$name"
	[ "$status" -eq 0 ]
	run podman container exists "$name"
	[ "$status" -eq 1 ]
	[ -z "$(pm_leftovers)" ]
	# create and run are still refused
	# shellcheck disable=SC2086
	run cfs_podman run --rm "${ULIMITS[@]}" $flags "$IMAGE" true
	[ "$status" -ne 0 ]
	[[ "$output" == *"cfs-runtime: invalid configuration: $ETC/config.toml:"*": key log_levl: unknown key"* ]]
}
