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
bats_require_minimum_version 1.5.0

PATH=$PATH:$HOME/go/bin
DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
# A file large enough to be stored as an object (composefs inlines up to 64
# bytes), so that tampering with the store can be shown.
HELLO="hello from the signed composefs image, $(printf '%0200d' 0)"

CONTRIB=$BATS_TEST_DIRNAME/../../contrib
SANDBOX_IMAGE=registry.k8s.io/pause:3.6

# cctl ARGS...: crictl with contrib's crictl.yaml, on the private containerd.
cctl() {
	crictl --config "$CONTRIB/containerd/crictl.yaml" \
		--runtime-endpoint "unix://$CTRD/containerd.sock" --image-endpoint "unix://$CTRD/containerd.sock" "$@"
}

# edit FILE SED-SCRIPT N: apply a sed substitution that must change exactly N
# lines (so that a changed contrib file fails here instead of silently
# testing something else).
edit() {
	local n
	n=$(sed -n "$2;T;=" "$1" | wc -l)
	if [ "$n" != "$3" ]; then
		echo "$1: '$2' changes $n lines, want $3" >&2
		return 1
	fi
	sed -i "$2" "$1"
}

# ctrd_config: Debian's stock config.toml with the paths of a private
# containerd and the imports line docs/kubernetes.md adds; the drop-in from
# contrib with this node's values.
ctrd_config() {
	local main=$CTRD/config.toml dropin=$CTRD/conf.d/cfs-runtime.toml
	mkdir -p "$CTRD/conf.d"
	cp "$CONTRIB/testdata/debian12-containerd-config.toml" "$main"
	edit "$main" 's|^version = 2$|&\nimports = ["'"$CTRD"'/conf.d/*.toml"]\nroot = "'"$CTRD"'/root"\nstate = "'"$CTRD"'/state"|' 1
	edit "$main" 's|^\( *path = \)"/var/lib/containerd/opt"$|\1"'"$CTRD"'/opt"|' 1
	printf '[grpc]\n  address = "%s"\n' "$CTRD/containerd.sock" >>"$main"
	cp "$CONTRIB/containerd/cfs-runtime.toml" "$dropin"
	edit "$dropin" 's|^\( *\)BinaryName = "/usr/local/bin/cfs-runtime"$|\1BinaryName = "'"$CFS_RUNTIME"'"|' 1
	edit "$dropin" 's|^\( *\)# restrict_oom_score_adj = true$|\1restrict_oom_score_adj = true|' 1
	edit "$dropin" 's|^\( *bin_dir = \)"/usr/lib/cni"$|\1"'"$CTRD"'/cni/bin"|' 1
	edit "$dropin" 's|^\( *conf_dir = \)"/etc/cni/net.d"$|\1"'"$CTRD"'/cni/net.d"|' 1
	edit "$dropin" 's|^\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.[a-z]*\.options\]$|&\n  Root = "'"$CTRD"'/runc"|' 2
	grep -qxF "sandbox_image = \"$SANDBOX_IMAGE\"" <(sed 's/^ *//' "$dropin") || {
		echo "$dropin: sandbox_image is not $SANDBOX_IMAGE" >&2
		return 1
	}
}

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
	ctrd_config

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
	# Each test's pod: contrib's pod.json (host network, no CNI) with its own
	# name, log directory and cgroup parent.
	jq --arg name "pod-$BATS_TEST_NUMBER" --arg cg "/$CGROUP_PARENT" --arg logs "$CTRD/logs/$BATS_TEST_NUMBER" '
		.metadata.name = $name | .metadata.namespace = "cfs-bats" | .metadata.uid = ("uid-" + $name) |
		.log_directory = $logs | .linux.cgroup_parent = $cg
	' "$CONTRIB/containerd/pod.json" >"$BATS_TEST_TMPDIR/pod.json"
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

# ctr_json NAME ANNOTATIONS-JSON [ARGS-JSON]: contrib's ctr.json for the app
# image, with its name, annotations and arguments.
ctr_json() {
	jq --arg name "$1" --arg img "$APP_IMAGE" --argjson a "$2" --argjson args "${3:-null}" '
		.metadata.name = $name | .image.image = $img | .log_path = ($name + ".log") | .annotations = $a
		| if $args then .args = $args else . end
	' "$CONTRIB/containerd/ctr.json" >"$BATS_TEST_TMPDIR/$1.json"
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
