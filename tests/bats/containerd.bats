#!/usr/bin/env bats
# crictl → containerd (Debian 12: 1.6) → runc v2 shim → cfs-runtime → runc.
#
# A private containerd (its own root, state, socket, runc root; started in
# setup_file, stopped in teardown_file) runs with Debian 12's stock
# config.toml (contrib/testdata) importing the drop-in
# contrib/containerd/cfs-runtime.toml, as docs/kubernetes.md installs it. Only
# the node-specific values are changed: BinaryName points at the
# cfs-runtime under test, private runc roots and CNI directories,
# restrict_oom_score_adj uncommented (this shell lacks CAP_SYS_RESOURCE).
# crictl drives it over the CRI as the kubelet does, with
# contrib/containerd/crictl.yaml, and the pods and containers are
# contrib/containerd/pod.json and ctr.json: host network (no CNI), images
# made with `podman import` and loaded with `podman save` + `ctr images
# import` (no registry), the pause image a busybox `sleep` imported and
# tagged as the drop-in's sandbox_image, as on an offline node. The host has
# no fs-verity, so the policy's enforcement is userspace, as in create.bats.
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (see helpers.bash). Needs root,
# containerd and ctr (apt-get install containerd), crictl (tests/install-deps.sh
# builds it into ~/go/bin) and podman.

load helpers
load containerd
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
# A file large enough to be stored as an object (composefs inlines up to 64
# bytes), so that tampering with the store can be shown.
HELLO="hello from the signed composefs image, $(printf '%0200d' 0)"

# cfs_config [STORE]: cfs-runtime's configuration (containerd hands
# CFS_RUNTIME_CONFIG down to the shim and the shim to cfs-runtime).
cfs_config() {
	cat >"$CTRD/cfs.toml" <<-EOF
		runtime = "$RUNC"
		store_dir = "${1:-$STORE}"
		state_dir = "$CTRD/cfs-state"
		log_file = "$CFSLOG"
		audit_file = "$BATS_FILE_TMPDIR/audit.jsonl"
		log_level = "debug"
		policy = "$POLICY"
		containerd_address = "$CTRD/containerd.sock"
	EOF
}

# image REF ROOTFS CMD-JSON: a podman-imported image of ROOTFS, moved into
# the private containerd and removed from podman's storage.
image() {
	local f=$CTRD/${2##*/}
	tar -C "$2" --numeric-owner -cf "$f.tar" .
	podman import --change "CMD $3" "$f.tar" "$1" >/dev/null
	podman save -q -o "$f.img" "$1"
	podman rmi "$1" >/dev/null
	ctr --address "$CTRD/containerd.sock" -n k8s.io images import "$f.img" >/dev/null
}

setup_file() {
	ctrd_requires podman
	if ldd "$BUSYBOX" >/dev/null 2>&1; then
		echo "$BUSYBOX is dynamically linked; install busybox-static" >&2
		return 1
	fi

	export CTRD=$BATS_FILE_TMPDIR/ctrd
	export STORE=$CTRD/store CFSLOG=$CTRD/cfs.log POLICY=$CTRD/keys/policy.toml
	export CGROUP_PARENT=cfs-bats-ctrd-$$
	export APP_IMAGE=localhost/cfs-bats-ctrd-$$/app:1 PAUSE_IMAGE=localhost/cfs-bats-ctrd-$$/pause:1
	mkdir -p "$CTRD/keys"

	make_key "$CTRD/keys" good
	make_key "$CTRD/keys" other
	ctrd_policy "$POLICY" "$CTRD/keys/good.pub"
	cfs_config
	ctrd_start

	local app=$CTRD/app-rootfs pause=$CTRD/pause-rootfs
	make_rootfs "$app"
	mkdir "$app/data"
	printf '%s\n' "$HELLO" >"$app/data/hello.txt"
	make_rootfs "$pause"
	image "$APP_IMAGE" "$app" '["/bin/cat", "/data/hello.txt"]'
	image "$PAUSE_IMAGE" "$pause" '["/bin/sleep", "2147483647"]'
	# An offline node's pause image: imported, then named as sandbox_image.
	ctr --address "$CTRD/containerd.sock" -n k8s.io images tag "$PAUSE_IMAGE" "$SANDBOX_IMAGE" >/dev/null

	# The same tree in cfs-runtime's store, and its signature.
	DIGEST=$("$CFS_RUNTIME" import --store "$STORE" "$app")
	export DIGEST
	SIGNED=$("$CFS_RUNTIME" sign --key "$CTRD/keys/good.key" --format json "$DIGEST")
	export SIGNED
}

setup() {
	requires_root
	cfs_config
	ctrd_pod_json
}

teardown() {
	cctl rmp --all --force >/dev/null 2>&1 || true
}

teardown_file() {
	ctrd_stop
}

# ctr_json NAME ANNOTATIONS-JSON [ARGS-JSON]: contrib's ctr.json for the app
# image, with its name, annotations and arguments.
ctr_json() {
	jq --arg name "$1" --arg img "$APP_IMAGE" --argjson a "$2" --argjson args "${3:-null}" '
		.metadata.name = $name | .image.image = $img | .log_path = ($name + ".log") | .annotations = $a
		| if $args then .args = $args else . end
	' "$CONTRIB/containerd/ctr.json" >"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}

# refused NAME ANNOTATIONS-JSON MESSAGE: creating works, starting fails with
# cfs-runtime's MESSAGE, and the container's status (what `kubectl describe
# pod` shows) carries it.
refused() {
	start_pod
	local ctr
	ctr=$(cctl create "$POD" "$(ctr_json "$1" "$2")" "$BATS_TEST_TMPDIR/pod.json")
	assert_refused "$ctr" "$3"
}

@test "containerd: the sandbox passes by rule, a signed container runs from its composefs image, removal leaves nothing" {
	start_pod
	grep -q "msg=\"starting unverified container\" .*id=$POD .*allowed unsigned by rule \\\\\"containerd-sandbox\\\\\"" "$CFSLOG"

	ctr=$(cctl create "$POD" "$(ctr_json app "$SIGNED" '["/bin/sh", "-c", "cat /data/hello.txt; grep \" / / \" /proc/self/mountinfo"]')" "$BATS_TEST_TMPDIR/pod.json")
	cctl start "$ctr"
	wait_exited "$ctr"
	[ "$(cctl inspect -o json "$ctr" | jq -r .status.exitCode)" = 0 ]
	run cctl logs "$ctr"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$HELLO" ]
	# The root is cfs-runtime's composefs overlay, not containerd's snapshot.
	[[ "${lines[1]}" == *" / / "*" - overlay composefs "* ]]
	grep -q "msg=verified .*id=$ctr .*composefs digest sha256:$DIGEST: cosign signature trusted by signer \\\\\"test\\\\\"" "$CFSLOG"
	grep -q "msg=mounted .*id=$ctr " "$CFSLOG"
	# containerd named the image, which has no seal: verified by the
	# container's annotations.
	grep -q "msg=\"engine image\" pid=[0-9]* id=$ctr image=\"containerd image $APP_IMAGE\" manifest=sha256:[0-9a-f]* config=sha256:[0-9a-f]* sealed=false" "$CFSLOG"

	cctl stopp "$POD" >/dev/null
	cctl rmp "$POD" >/dev/null
	[ -z "$(ls -A "$CTRD/cfs-state")" ]
	[ -z "$(awk -v d="$CTRD/cfs-state" 'index($5, d "/") == 1' /proc/self/mountinfo)" ]
	[ -z "$("$RUNC" --root "$CTRD/runc/k8s.io" list -q)" ]
}

@test "containerd: signed through pod annotations (as the kubelet passes them): the sandbox ignores them, the container is verified" {
	jq --argjson a "$SIGNED" '.annotations = $a' "$BATS_TEST_TMPDIR/pod.json" >"$BATS_TEST_TMPDIR/pod.json.new"
	mv "$BATS_TEST_TMPDIR/pod.json.new" "$BATS_TEST_TMPDIR/pod.json"
	start_pod
	grep -q "msg=\"starting unverified container\" .*id=$POD .*composefs annotations ignored: allowed unverified by rule \\\\\"containerd-sandbox\\\\\" (ignore_digest)" "$CFSLOG"
	ctr=$(cctl create "$POD" "$(ctr_json app '{}')" "$BATS_TEST_TMPDIR/pod.json")
	cctl start "$ctr"
	wait_exited "$ctr"
	[ "$(cctl inspect -o json "$ctr" | jq -r .status.exitCode)" = 0 ]
	[ "$(cctl logs "$ctr")" = "$HELLO" ]
	grep -q "msg=verified .*id=$ctr .*composefs digest sha256:$DIGEST" "$CFSLOG"
}

@test "containerd: a read-only root (readOnlyRootFilesystem) runs although the image lacks /etc/hostname and /etc/resolv.conf" {
	[ ! -e "$CTRD/app-rootfs/etc/hostname" ] && [ ! -e "$CTRD/app-rootfs/etc/resolv.conf" ]
	start_pod
	# one stream (exec 2>&1): the shim copies stdout and stderr separately, so
	# the order of lines from two streams in the log is not fixed
	json=$(ctr_json ro "$SIGNED" '["/bin/sh", "-c", "exec 2>&1; cat /data/hello.txt; echo x >/data/new"]')
	jq '.linux.security_context.readonly_rootfs = true' "$json" >"$json.new" && mv "$json.new" "$json"
	ctr=$(cctl create "$POD" "$json" "$BATS_TEST_TMPDIR/pod.json")
	cctl start "$ctr"
	wait_exited "$ctr"
	[ "$(cctl inspect -o json "$ctr" | jq -r .status.exitCode)" = 1 ]
	run cctl logs "$ctr"
	[ "${lines[0]}" = "$HELLO" ]
	[ "${lines[1]}" = "/bin/sh: can't create /data/new: Read-only file system" ]
}

@test "containerd: a container signed by another key is refused with cfs-runtime's reason" {
	refused other "$("$CFS_RUNTIME" sign --key "$CTRD/keys/other.key" --format json "$DIGEST")" \
		"composefs digest sha256:$DIGEST: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest"
}

@test "containerd: an unsigned container is refused, also when it claims to be a sandbox" {
	# Not on the allow-list, so containerd drops the annotation (and it sets
	# container-type itself after the pass-through ones anyway).
	refused unsigned '{"io.kubernetes.cri.container-type": "sandbox"}' \
		"no composefs digest: no $DIGEST_KEY annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $POLICY matches this container"
}

@test "containerd: an object of the signed image tampered in the store is refused, naming it" {
	local store=$BATS_TEST_TMPDIR/store
	cp -a "$STORE" "$store"
	cfs_config "$store"
	local d obj bad
	d=$(fsverity digest --compact "$CTRD/app-rootfs/data/hello.txt")
	obj=$store/objects/${d:0:2}/${d:2}
	printf 'J' | dd of="$obj" bs=1 seek=0 conv=notrunc status=none
	bad=$(fsverity digest --compact "$obj")
	refused tampered "$SIGNED" \
		"composefs digest $DIGEST: object $d (used by /data/hello.txt): digest mismatch: content hashes to $bad"
}
