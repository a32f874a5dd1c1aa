#!/usr/bin/env bats
# crictl → containerd (Debian 12: 1.6) → runc v2 shim → cfs-runtime → runc.
#
# A private containerd (its own config, root, state and socket; started in
# setup_file, stopped in teardown_file) runs the runtime handler "cfs" from
# contrib/containerd/cfs-runtime.toml, with BinaryName pointed at the
# cfs-runtime under test. crictl drives it over the CRI as the kubelet does:
# host-network pods (no CNI), images made with `podman import` and loaded
# with `podman save` + `ctr images import` (no registry), the pause image a
# busybox `sleep`. The host has no fs-verity, so the policy's enforcement is
# userspace, as in create.bats.
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (see helpers.bash). Needs root,
# containerd and ctr (apt-get install containerd), crictl (tests/install-deps.sh
# builds it into ~/go/bin) and podman.

load helpers
bats_require_minimum_version 1.5.0

PATH=$PATH:$HOME/go/bin
DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
# A file large enough to be stored as an object (composefs inlines up to 64
# bytes), so that tampering with the store can be shown.
HELLO="hello from the signed composefs image, $(printf '%0200d' 0)"

# cctl ARGS...: crictl on the private containerd.
cctl() {
	crictl --config "$CTRD/crictl.yaml" "$@"
}

# ctrd_config: containerd's private configuration, the handler appended
# from contrib as an administrator would append it to config.toml. The runc
# root (Root) is private too; restrict_oom_score_adj because this shell lacks
# CAP_SYS_RESOURCE, which lowering the sandbox's oom_score_adj needs.
ctrd_config() {
	cat <<-EOF
		version = 2
		root = "$CTRD/root"
		state = "$CTRD/state"
		[grpc]
		  address = "$CTRD/containerd.sock"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$CTRD/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_IMAGE"
		  restrict_oom_score_adj = true
		  netns_mounts_under_state_dir = true
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "$CTRD/cni/bin"
		    conf_dir = "$CTRD/cni/net.d"
		  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		    runtime_type = "io.containerd.runc.v2"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		      Root = "$CTRD/runc"
	EOF
	sed -e "s|^\( *\)BinaryName = .*|\1BinaryName = \"$CFS_RUNTIME\"\n\1Root = \"$CTRD/runc\"|" \
		"$BATS_TEST_DIRNAME/../../contrib/containerd/cfs-runtime.toml"
}

# cfs_config [STORE]: cfs-runtime's configuration (containerd hands
# CFS_RUNTIME_CONFIG down to the shim and the shim to cfs-runtime).
cfs_config() {
	cat >"$CTRD/cfs.toml" <<-EOF
		runtime = "$RUNC"
		store_dir = "${1:-$STORE}"
		state_dir = "$CTRD/cfs-state"
		log_file = "$CFSLOG"
		log_level = "debug"
		policy = "$POLICY"
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
	if [ "$(id -u)" != 0 ]; then
		skip "containerd tests require root"
	fi
	local tool
	for tool in containerd ctr crictl podman; do
		command -v "$tool" >/dev/null && continue
		# In CI a missing tool is a broken setup, not a reason to skip.
		if [ -n "${CI:-}" ]; then
			echo "$tool not installed (tests/install-deps.sh installs it)" >&2
			return 1
		fi
		skip "$tool not installed (tests/install-deps.sh installs it)"
	done
	if [ ! -x "$CFS_RUNTIME" ]; then
		echo "cfs-runtime binary $CFS_RUNTIME not found: build it or set CFS_RUNTIME" >&2
		return 1
	fi
	if ldd "$BUSYBOX" >/dev/null 2>&1; then
		echo "$BUSYBOX is dynamically linked; install busybox-static" >&2
		return 1
	fi

	export CTRD=$BATS_FILE_TMPDIR/ctrd
	export STORE=$CTRD/store CFSLOG=$CTRD/cfs.log POLICY=$CTRD/keys/policy.toml
	export CGROUP_PARENT=cfs-bats-ctrd-$$
	export APP_IMAGE=localhost/cfs-bats-ctrd-$$/app:1 PAUSE_IMAGE=localhost/cfs-bats-ctrd-$$/pause:1
	mkdir -p "$CTRD"/{keys,cni/bin,cni/net.d,logs}
	# containerd's runc shim always puts its sockets in /run/containerd/s.
	[ -d /run/containerd ] || echo /run/containerd >"$CTRD/made-dirs"
	[ -d /run/containerd/s ] || echo /run/containerd/s >>"$CTRD/made-dirs"

	make_key "$CTRD/keys" good
	make_key "$CTRD/keys" other
	write_policy "$POLICY" userspace reject "$CTRD/keys/good.pub"
	cat >>"$POLICY" <<-'EOF'
		[[allow_unsigned]]
		name = "containerd-sandbox"
		annotations = { "io.kubernetes.cri.container-type" = "sandbox" }
		ignore_digest = true
	EOF
	cfs_config
	ctrd_config >"$CTRD/config.toml"
	grep -qxF "  BinaryName = \"$CFS_RUNTIME\"" "$CTRD/config.toml" || {
		echo "contrib/containerd/cfs-runtime.toml: no BinaryName line to point at $CFS_RUNTIME" >&2
		return 1
	}
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' \
		"$CTRD/containerd.sock" "$CTRD/containerd.sock" >"$CTRD/crictl.yaml"

	CFS_RUNTIME_CONFIG=$CTRD/cfs.toml containerd --config "$CTRD/config.toml" >"$CTRD/containerd.log" 2>&1 3>&- &
	echo $! >"$CTRD/containerd.pid"
	local _
	for _ in $(seq 100); do
		cctl info >/dev/null 2>&1 && break
		sleep 0.1
	done
	cctl info >/dev/null || {
		tail -20 "$CTRD/containerd.log" >&2
		return 1
	}

	local app=$CTRD/app-rootfs pause=$CTRD/pause-rootfs
	make_rootfs "$app"
	mkdir "$app/data"
	printf '%s\n' "$HELLO" >"$app/data/hello.txt"
	make_rootfs "$pause"
	image "$APP_IMAGE" "$app" '["/bin/cat", "/data/hello.txt"]'
	image "$PAUSE_IMAGE" "$pause" '["/bin/sleep", "2147483647"]'

	# The same tree in cfs-runtime's store, and its signature.
	DIGEST=$("$CFS_RUNTIME" import --store "$STORE" "$app")
	export DIGEST
	SIGNED=$("$CFS_RUNTIME" sign --key "$CTRD/keys/good.key" --format json "$DIGEST")
	export SIGNED
}

setup() {
	requires_root
	cfs_config
	# Each test's pod: host network (no CNI here), its own cgroup parent.
	jq -n --arg name "pod-$BATS_TEST_NUMBER" --arg cg "/$CGROUP_PARENT" --arg logs "$CTRD/logs/$BATS_TEST_NUMBER" '{
		metadata: {name: $name, namespace: "cfs-bats", uid: ("uid-" + $name), attempt: 0},
		log_directory: $logs,
		linux: {cgroup_parent: $cg, security_context: {namespace_options: {network: 2}}}
	}' >"$BATS_TEST_TMPDIR/pod.json"
}

teardown() {
	cctl rmp --all --force >/dev/null 2>&1 || true
}

teardown_file() {
	[ -n "${CTRD:-}" ] || return 0
	if [ -S "$CTRD/containerd.sock" ]; then
		cctl rmp --all --force >/dev/null 2>&1 || true
	fi
	# Shims of containers that could not be removed.
	local f pid m d
	for f in "$CTRD"/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
		[ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
	if [ -e "$CTRD/containerd.pid" ]; then
		pid=$(cat "$CTRD/containerd.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	for m in $(awk -v d="$CTRD" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" || true
	done
	for d in /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null || true
	done
	if [ -e "$CTRD/made-dirs" ]; then
		tac "$CTRD/made-dirs" | xargs rmdir 2>/dev/null || true
	fi
}

# ctr_json NAME ANNOTATIONS-JSON [ARGS-JSON]: a CRI container configuration
# for the app image.
ctr_json() {
	jq -n --arg name "$1" --arg img "$APP_IMAGE" --argjson a "$2" --argjson args "${3:-null}" '{
		metadata: {name: $name}, image: {image: $img}, log_path: ($name + ".log"), annotations: $a
	} + (if $args then {args: $args} else {} end)' >"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}

# start_pod: run this test's pod on handler cfs; sets POD.
start_pod() {
	POD=$(cctl runp --runtime cfs "$BATS_TEST_TMPDIR/pod.json")
	[ -n "$POD" ]
}

# wait_exited CTR: up to 10 s for the container to exit.
wait_exited() {
	local _
	for _ in $(seq 100); do
		[ "$(cctl inspect -o json "$1" | jq -r .status.state)" = CONTAINER_EXITED ] && return 0
		sleep 0.1
	done
	echo "container $1 did not exit: $(cctl inspect -o json "$1" | jq -c .status)" >&2
	return 1
}

# refused NAME ANNOTATIONS-JSON MESSAGE: creating works, starting fails with
# cfs-runtime's MESSAGE, and the container's status (what `kubectl describe
# pod` shows) carries it.
refused() {
	start_pod
	local ctr
	ctr=$(cctl create "$POD" "$(ctr_json "$1" "$2")" "$BATS_TEST_TMPDIR/pod.json")
	run cctl start "$ctr"
	echo "$output"
	[ "$status" -eq 1 ]
	# crictl prints the gRPC error inside a quoted string.
	[[ "$output" == *"OCI runtime create failed: cfs-runtime: ${3//\"/\\\"}: unknown"* ]]
	run cctl inspect -o json "$ctr"
	[ "$status" -eq 0 ]
	[ "$(jq -r .status.state <<<"$output")" = CONTAINER_EXITED ]
	[ "$(jq -r .status.reason <<<"$output")" = StartError ]
	[ "$(jq -r .status.message <<<"$output")" = "failed to create containerd task: failed to create shim task: OCI runtime create failed: cfs-runtime: $3: unknown" ]
	# The pod itself is fine: its sandbox keeps running.
	[ "$(cctl inspectp -o json "$POD" | jq -r .status.state)" = SANDBOX_READY ]
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
