#!/usr/bin/env bash
# A private containerd (Debian 12: 1.6) driven by crictl over the CRI, as
# the kubelet drives it, with the runtime handler "cfs" from
# contrib/containerd/cfs-runtime.toml pointed at the cfs-runtime under test.
# Shared by containerd.bats and engine-containerd.bats.
#
#   ctrd_start          (setup_file) needs CTRD, PAUSE_IMAGE, CFS_RUNTIME,
#                       and the cfs-runtime configuration in $CTRD/cfs.toml;
#                       with CTRD_REGISTRY set (127.0.0.1:PORT), containerd
#                       pulls from that plain-HTTP registry (hosts.toml
#                       under config_path)
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

cctl() {
	crictl --config "$CTRD/crictl.yaml" "$@"
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
		  [plugins."io.containerd.grpc.v1.cri".registry]
		    config_path = "$CTRD/certs.d"
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

# ctrd_pod_json: each test's pod: host network (no CNI here), its own
# cgroup parent.
ctrd_pod_json() {
	jq -n --arg name "pod-$BATS_TEST_NUMBER" --arg cg "/$CGROUP_PARENT" --arg logs "$CTRD/logs/$BATS_TEST_NUMBER" '{
		metadata: {name: $name, namespace: "cfs-bats", uid: ("uid-" + $name), attempt: 0},
		log_directory: $logs,
		linux: {cgroup_parent: $cg, security_context: {namespace_options: {network: 2}}}
	}' >"$BATS_TEST_TMPDIR/pod.json"
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
