#!/usr/bin/env bash
# A private containerd (Debian 12: 1.6; its own root, state, socket, runc
# root) with Debian 12's stock config.toml (contrib/testdata) importing the
# drop-in contrib/containerd/cfs-runtime.toml, as docs/kubernetes.md
# installs it, driven by crictl over the CRI as the kubelet drives it, with
# contrib/containerd/crictl.yaml and pod.json. Only the node-specific
# values are changed: BinaryName points at the cfs-runtime under test,
# private runc roots and CNI directories, restrict_oom_score_adj
# uncommented (this shell lacks CAP_SYS_RESOURCE). Shared by
# containerd.bats, engine-containerd.bats and policy-engines.bats.
#
#   ctrd_start          (setup_file) needs CTRD, CFS_RUNTIME and the
#                       cfs-runtime configuration in $CTRD/cfs.toml; with
#                       CTRD_REGISTRY set (127.0.0.1:PORT), containerd pulls
#                       from that plain-HTTP registry (hosts.toml under
#                       config_path)
#   ctrd_stop           (teardown_file)
#   ctrd_pod_json       (setup) writes $BATS_TEST_TMPDIR/pod.json
#   ctrd_policy FILE PUBKEY
#                       a userspace policy trusting PUBKEY that lets the
#                       pod sandbox through unverified
#   cctl ARGS...        crictl on the private containerd
#   start_pod           runs the test's pod on handler cfs; sets POD
#   wait_exited CTR     up to 10 s for the container to exit
#   assert_refused CTR MESSAGE
#                       starting CTR fails with cfs-runtime's MESSAGE, its
#                       status carries it, its pod ($POD) keeps running
#
# Needs root, containerd and ctr (apt-get install containerd), crictl
# (tests/install-deps.sh builds it into ~/go/bin).

PATH=$PATH:$HOME/go/bin
CONTRIB=$BATS_TEST_DIRNAME/../../contrib
# the drop-in's sandbox_image: tests import or pull a pause image and tag it
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

# ctrd_requires TOOL...: skip (or fail in CI) without these tools.
ctrd_requires() {
	if [ "$(id -u)" != 0 ]; then
		skip "containerd tests require root"
	fi
	local tool
	for tool in containerd ctr crictl "$@"; do
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
	printf '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s"\n' "$CTRD/certs.d" >>"$main"
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

ctrd_start() {
	mkdir -p "$CTRD"/{keys,cni/bin,cni/net.d,logs,certs.d}
	# containerd's runc shim always puts its sockets in /run/containerd/s.
	[ -d /run/containerd ] || echo /run/containerd >"$CTRD/made-dirs"
	[ -d /run/containerd/s ] || echo /run/containerd/s >>"$CTRD/made-dirs"
	if [ -n "${CTRD_REGISTRY:-}" ]; then
		mkdir -p "$CTRD/certs.d/$CTRD_REGISTRY"
		cat >"$CTRD/certs.d/$CTRD_REGISTRY/hosts.toml" <<-EOF
			server = "http://$CTRD_REGISTRY"
			[host."http://$CTRD_REGISTRY"]
			  capabilities = ["pull", "resolve"]
		EOF
	fi
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
}

ctrd_stop() {
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

# ctrd_pod_json: each test's pod: contrib's pod.json (host network, no
# CNI) with its own name, log directory and cgroup parent.
ctrd_pod_json() {
	jq --arg name "pod-$BATS_TEST_NUMBER" --arg cg "/$CGROUP_PARENT" --arg logs "$CTRD/logs/$BATS_TEST_NUMBER" '
		.metadata.name = $name | .metadata.namespace = "cfs-bats" | .metadata.uid = ("uid-" + $name) |
		.log_directory = $logs | .linux.cgroup_parent = $cg
	' "$CONTRIB/containerd/pod.json" >"$BATS_TEST_TMPDIR/pod.json"
}

start_pod() {
	POD=$(cctl runp --runtime cfs "$BATS_TEST_TMPDIR/pod.json")
	[ -n "$POD" ]
}

wait_exited() {
	local _
	for _ in $(seq 100); do
		[ "$(cctl inspect -o json "$1" | jq -r .status.state)" = CONTAINER_EXITED ] && return 0
		sleep 0.1
	done
	echo "container $1 did not exit: $(cctl inspect -o json "$1" | jq -c .status)" >&2
	return 1
}

assert_refused() {
	run cctl start "$1"
	echo "$output"
	[ "$status" -eq 1 ]
	# crictl prints the gRPC error inside a quoted string.
	[[ "$output" == *"OCI runtime create failed: cfs-runtime: ${2//\"/\\\"}: unknown"* ]]
	run cctl inspect -o json "$1"
	[ "$status" -eq 0 ]
	[ "$(jq -r .status.state <<<"$output")" = CONTAINER_EXITED ]
	[ "$(jq -r .status.reason <<<"$output")" = StartError ]
	[ "$(jq -r .status.message <<<"$output")" = "failed to create containerd task: failed to create shim task: OCI runtime create failed: cfs-runtime: $2: unknown" ]
	# The pod itself is fine: its sandbox keeps running.
	[ "$(cctl inspectp -o json "$POD" | jq -r .status.state)" = SANDBOX_READY ]
}

ctrd_policy() {
	write_policy "$1" userspace reject "$2"
	cat >>"$1" <<-'EOF'
		[[allow_unsigned]]
		name = "containerd-sandbox"
		annotations = { "io.kubernetes.cri.container-type" = "sandbox" }
		ignore_digest = true
	EOF
}
