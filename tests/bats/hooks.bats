#!/usr/bin/env bats
# OCI hook mode: `cfs-runtime hook createRuntime` run by runc as a
# createRuntime hook (hooks.createRuntime in config.json) and by podman
# (--hooks-dir with contrib/oci-hooks.d/cfs-runtime.json). The runtime
# reports a failed hook and does not start the container.
#
# The host kernel has no fs-verity, so every signed container is refused
# here, each at the step that decides it: a plain rootfs, a plain overlay,
# a composefs overlay without verity=require, and one with verity=require
# whose image the kernel cannot measure. The passing case (an image that
# measures as the signed digest) is tests/vm/scenarios/75-hooks.sh.

load helpers
bats_require_minimum_version 1.5.0

# As in podman.bats: podman run as root needs explicit limits here.
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
RUNC_ROOT=$BATS_TMPDIR/runc-root
NOT_COMPOSEFS="root filesystem is not a verifiable composefs mount"

setup_file() {
	if [ "$(id -u)" != 0 ]; then
		skip "hook tests require root"
	fi
	local keys=$BATS_FILE_TMPDIR/keys
	mkdir -p "$keys"
	make_key "$keys" good
	write_policy "$keys/reject.toml" require reject "$keys/good.pub"
	write_policy "$keys/allow.toml" require allow "$keys/good.pub"
	local p
	for p in reject allow; do
		printf 'policy = "%s"\nlog_file = "%s"\naudit_file = "%s.audit"\n' "$keys/$p.toml" "$BATS_FILE_TMPDIR/$p.log" "$BATS_FILE_TMPDIR/$p" >"$BATS_FILE_TMPDIR/$p.config.toml"
	done
	# a digest of nothing in particular, signed by the trusted key
	"$CFS_RUNTIME" sign --key "$keys/good.key" --format json "sha256:$(printf '%064d' 7)" >"$BATS_FILE_TMPDIR/signed.json"

	# podman --hooks-dir: the shipped JSON, its hook path pointed at the
	# binary under test and its configuration at the reject policy; a
	# busybox-static image made with podman import (no registry)
	command -v podman >/dev/null || return 0
	export HOOKS_DIR=$BATS_FILE_TMPDIR/hooks.d
	mkdir -p "$HOOKS_DIR"
	jq --arg p "$CFS_RUNTIME" --arg c "CFS_RUNTIME_CONFIG=$BATS_FILE_TMPDIR/reject.config.toml" \
		'.hook.path = $p | .hook.env = [$c]' \
		"$BATS_TEST_DIRNAME/../../contrib/oci-hooks.d/cfs-runtime.json" >"$HOOKS_DIR/cfs-runtime.json"
	make_rootfs "$BATS_FILE_TMPDIR/image-rootfs"
	tar -C "$BATS_FILE_TMPDIR/image-rootfs" --numeric-owner -cf "$BATS_FILE_TMPDIR/image.tar" .
	export IMAGE=localhost/cfs-bats-hooks/busybox:$$
	podman import -q --change 'CMD ["/bin/sh"]' "$BATS_FILE_TMPDIR/image.tar" "$IMAGE" >/dev/null
}

teardown() {
	cleanup_containers
	# deepest first: the overlays before the EROFS under them
	local mp
	awk -v d="$BATS_TEST_TMPDIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r mp; do umount "$mp" || umount -l "$mp"; done
	if [ -n "${PODMAN_CTR:-}" ]; then
		podman rm -f -t 0 "$PODMAN_CTR" >/dev/null 2>&1 || true
	fi
}

teardown_file() {
	if [ -n "${IMAGE:-}" ]; then
		podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
	fi
}

# hook_bundle DIR POLICY [ANNOTATIONS-FILE]: a bundle running
# `echo started` whose config.json has the hook (with this file's
# reject|allow configuration) and, if given, the annotations.
hook_bundle() {
	make_bundle "$1" echo started
	local ann='{}'
	[ -n "${3:-}" ] && ann=$(cat "$3")
	update_config "$1" "$(printf '.hooks.createRuntime = [{"path": "%s", "args": ["cfs-runtime", "hook", "createRuntime"], "env": ["CFS_RUNTIME_CONFIG=%s"]}] | .annotations = %s' \
		"$CFS_RUNTIME" "$BATS_FILE_TMPDIR/$2.config.toml" "$ann")"
}

# run_runc BUNDLE ID: runc itself (not cfs-runtime) runs the container.
run_runc() {
	run "$RUNC" --root "$RUNC_ROOT" run --bundle "$1" "$2"
	echo "runc exit $status: $output"
}

# refused_by_hook ID MESSAGE: runc failed with the hook's one line and the
# container neither started nor remains.
refused_by_hook() {
	[ "$status" -ne 0 ]
	[[ "$output" == *"error running hook #0: error running hook: exit status 1, stdout: , stderr: cfs-runtime: container $1: $2\\n\""* ]]
	[[ "$output" != *started* ]]
	run "$RUNC" --root "$RUNC_ROOT" state "$1"
	[ "$status" -ne 0 ]
}

# composefs_mount DIR [OPTIONS]: DIR/image.cfs of a busybox tree, mounted
# at DIR/lower (mount(8): a loop device), and the composefs overlay of it
# with the objects in DIR/objects at DIR/merged, read-only, with OPTIONS.
composefs_mount() {
	local d=$1 opts=${2:-}
	make_rootfs "$d/tree"
	mkdir -p "$d/lower" "$d/merged"
	"$CFS_RUNTIME" mkimage --digest-store "$d/objects" "$d/tree" "$d/image.cfs"
	mount -t erofs -o ro "$d/image.cfs" "$d/lower"
	mount -t overlay composefs -o "ro,metacopy=on,redirect_dir=on${opts:+,$opts},lowerdir=$d/lower::$d/objects" "$d/merged"
}

@test "runc: a signed container on a plain rootfs is refused by the hook" {
	local b=$BATS_TEST_TMPDIR/b id
	id=$(cid plain)
	hook_bundle "$b" reject "$BATS_FILE_TMPDIR/signed.json"
	run_runc "$b" "$id"
	refused_by_hook "$id" "$NOT_COMPOSEFS: $b/rootfs is not a mount point (hook mode needs a composefs overlay mounted there with verity=require)"
	# also in the log of the configuration the hook was given
	grep -F "msg=\"hook createRuntime: refused\"" "$BATS_FILE_TMPDIR/reject.log" | grep -qF "container $id: $NOT_COMPOSEFS"
}

@test "runc: a signed container on a plain overlay is refused by the hook" {
	local b=$BATS_TEST_TMPDIR/b t=$BATS_TEST_TMPDIR id
	id=$(cid overlay)
	hook_bundle "$b" reject "$BATS_FILE_TMPDIR/signed.json"
	mkdir -p "$t/layer2" "$t/up" "$t/work" "$t/merged"
	mount -t overlay overlay -o "lowerdir=$t/layer2:$b/rootfs,upperdir=$t/up,workdir=$t/work" "$t/merged"
	update_config "$b" ".root.path = \"$t/merged\""
	run_runc "$b" "$id"
	refused_by_hook "$id" "$NOT_COMPOSEFS: $t/merged is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)"
	[ ! -e "$t/up/started" ]
}

@test "runc: a composefs overlay mounted without verity=require is refused by the hook" {
	local b=$BATS_TEST_TMPDIR/b t=$BATS_TEST_TMPDIR id
	id=$(cid noverity)
	composefs_mount "$t"
	"$CFS_RUNTIME" sign --key "$BATS_FILE_TMPDIR/keys/good.key" --format json "$t/image.cfs" >"$t/ann.json"
	hook_bundle "$b" reject "$t/ann.json"
	update_config "$b" ".root.path = \"$t/merged\" | .root.readonly = true"
	run_runc "$b" "$id"
	refused_by_hook "$id" "$NOT_COMPOSEFS: $t/merged is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)"
}

@test "runc: a composefs overlay with verity=require is refused when the kernel cannot measure its image" {
	local b=$BATS_TEST_TMPDIR/b t=$BATS_TEST_TMPDIR id digest
	id=$(cid measure)
	composefs_mount "$t" verity=require
	digest=$("$CFS_RUNTIME" verity digest "$t/image.cfs" | cut -d' ' -f1)
	"$CFS_RUNTIME" sign --key "$BATS_FILE_TMPDIR/keys/good.key" --format json "$t/image.cfs" >"$t/ann.json"
	hook_bundle "$b" reject "$t/ann.json"
	update_config "$b" ".root.path = \"$t/merged\" | .root.readonly = true"
	run_runc "$b" "$id"
	# (this host's kernel has no fs-verity; a kernel with it says
	# "fs-verity not enabled" for this image, which has none)
	refused_by_hook "$id" "composefs digest $digest: EROFS image $t/image.cfs (lower layer of $t/merged): kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY (hook mode checks only what the kernel measures)"
}

@test "runc: an unsigned container passes the hook under unsigned = \"allow\" and is refused under reject" {
	local b=$BATS_TEST_TMPDIR/b id
	id=$(cid allow)
	hook_bundle "$b" allow
	run_runc "$b" "$id"
	[ "$status" -eq 0 ]
	[ "$output" = started ]
	grep -F "msg=\"hook createRuntime: starting unverified container\"" "$BATS_FILE_TMPDIR/allow.log" | grep -qF "id=$id bundle=$b "

	id=$(cid reject)
	b=$BATS_TEST_TMPDIR/b2
	hook_bundle "$b" reject
	run_runc "$b" "$id"
	refused_by_hook "$id" "no composefs digest: no composefs.merged.erofs.v1.fsverity-sha256-12 annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $BATS_FILE_TMPDIR/keys/reject.toml matches this container"
}

# podman_setup: podman tests need podman (in CI a missing podman fails).
podman_setup() {
	if [ -z "${IMAGE:-}" ]; then
		if [ -n "${CI:-}" ]; then
			echo "podman not installed (apt-get install podman)" >&2
			return 1
		fi
		skip "podman not installed (apt-get install podman)"
	fi
	PODMAN_CTR=cfs-bats-hooks-$$-$BATS_TEST_NUMBER
}

hook_podman() {
	podman --hooks-dir "$HOOKS_DIR" --runtime "$RUNC" "$@"
}

@test "podman --hooks-dir: the digest annotation on a plain podman rootfs is refused with the hook's message" {
	podman_setup
	local anns
	# shellcheck disable=SC2207 # --annotation K=V words, no spaces in them
	anns=($(jq -r 'to_entries[] | "--annotation=\(.key)=\(.value)"' "$BATS_FILE_TMPDIR/signed.json"))
	run hook_podman run --name "$PODMAN_CTR" "${ULIMITS[@]}" "${anns[@]}" "$IMAGE" echo started
	echo "podman exit $status: $output"
	[ "$status" -ne 0 ]
	[[ "$output" != *started* ]]
	local id root
	id=$(podman inspect --format '{{.Id}}' "$PODMAN_CTR")
	# podman's storage on this host is overlayfs (its merged directory is
	# gone from inspect once the start failed: derive it from the upper)
	[ "$(podman inspect --format '{{.GraphDriver.Name}}' "$PODMAN_CTR")" = overlay ]
	root=$(dirname "$(podman inspect --format '{{.GraphDriver.Data.UpperDir}}' "$PODMAN_CTR")")/merged
	echo "container $id, root $root"
	[[ "$output" == *"error running hook #0: error running hook: exit status 1, stdout: , stderr: cfs-runtime: container $id: $NOT_COMPOSEFS: $root is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)" ]]
	run podman inspect --format '{{.State.Status}}' "$PODMAN_CTR"
	[ "$output" != running ]
}

@test "podman --hooks-dir: a policy key file that does not exist reaches podman as the hook's refusal, not as a missing command" {
	podman_setup
	# podman reads "no such file or directory" in the runtime's error (runc
	# quotes the hook's stderr) as a missing command: exit status 127
	local hooks=$BATS_TEST_TMPDIR/hooks.d missing=$BATS_TEST_TMPDIR/gone.pub anns id
	mkdir -p "$hooks"
	write_policy "$BATS_TEST_TMPDIR/policy.toml" require reject "$missing"
	printf 'policy = "%s"\n' "$BATS_TEST_TMPDIR/policy.toml" >"$BATS_TEST_TMPDIR/config.toml"
	jq --arg c "CFS_RUNTIME_CONFIG=$BATS_TEST_TMPDIR/config.toml" '.hook.env = [$c]' "$HOOKS_DIR/cfs-runtime.json" >"$hooks/cfs-runtime.json"
	# shellcheck disable=SC2207 # --annotation K=V words, no spaces in them
	anns=($(jq -r 'to_entries[] | "--annotation=\(.key)=\(.value)"' "$BATS_FILE_TMPDIR/signed.json"))
	run podman --hooks-dir "$hooks" --runtime "$RUNC" run --name "$PODMAN_CTR" "${ULIMITS[@]}" "${anns[@]}" "$IMAGE" echo started
	echo "podman exit $status: $output"
	[ "$status" -eq 126 ]
	id=$(podman inspect --format '{{.Id}}' "$PODMAN_CTR")
	[[ "$output" == *"error running hook #0: error running hook: exit status 1, stdout: , stderr: cfs-runtime: container $id: invalid trust policy: $BATS_TEST_TMPDIR/policy.toml:5: key signer[0].public_key: key file $missing does not exist" ]]
	[[ "$output" == "Error: OCI runtime error: "* ]]
}

@test "podman --hooks-dir: without the digest annotation the hook does not run" {
	podman_setup
	local log=$BATS_FILE_TMPDIR/reject.log before
	touch "$log"
	before=$(wc -l <"$log")
	# under the reject policy the hook would refuse an unsigned container
	run hook_podman run --rm --name "$PODMAN_CTR" "${ULIMITS[@]}" --annotation io.example.other=1 "$IMAGE" echo started
	echo "podman exit $status: $output"
	[ "$status" -eq 0 ]
	[ "$output" = started ]
	# and it logs every decision: nothing new
	[ "$(wc -l <"$log")" -eq "$before" ]
}
