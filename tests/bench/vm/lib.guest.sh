# shellcheck shell=sh
# Guest helpers of the create benchmarks (tests/bench/vm), staged by
# bench_images (lib.host.sh) as /vm/bench-lib.sh; sourced by a scenario
# after guest-lib.sh.

# bench_setup RUNTIME: for each enforcement level E of require and
# userspace, a policy trusting keys/bench.pub and cfs-runtime's
# configuration /etc/cfs-runtime/bench-E.toml, handing off to RUNTIME
# (store $VM_DATA/store, state /run/cfs-runtime); CFS_RUNTIME_CONFIG is the
# require one. fs-verity on the store's objects (the host cannot enable
# it), and the images measure as their digests. Sets SMALL, BIG and TINY
# (the digests) and S (the store).
bench_setup() {
	# shellcheck disable=SC1091 # written by the host hook
	. "$VM_DATA/digests"
	S=$VM_DATA/store
	mkdir -p /etc/cfs-runtime
	for e in require userspace; do
		cat >/etc/cfs-runtime/bench-$e.policy.toml <<-P
			enforcement = "$e"
			unsigned = "reject"
			[[signer]]
			name = "bench"
			public_key = "$VM_DATA/keys/bench.pub"
		P
		cat >/etc/cfs-runtime/bench-$e.toml <<-P
			runtime = "$1"
			store_dir = "$S"
			state_dir = "/run/cfs-runtime"
			log_file = ""
			audit_file = "/run/cfs-bench-audit.jsonl"
			policy = "/etc/cfs-runtime/bench-$e.policy.toml"
		P
	done
	export CFS_RUNTIME_CONFIG=/etc/cfs-runtime/bench-require.toml
	check enable-verity sh -c "find '$S/objects' -type f | xargs vmtool enable"
	check_contains measure-small "$SMALL" vmtool measure "$S/images/$SMALL"
	check_contains measure-big "$BIG" vmtool measure "$S/images/$BIG"
	check_contains measure-tiny "$TINY" vmtool measure "$S/images/$TINY"
}

# bench_clean: nothing of the benchmark is left: no mount or state
# directory of cfs-runtime, no loop device.
bench_clean() {
	check_contains no-mounts-left "mounts=0" sh -c "echo mounts=\$(grep -c ' /run/cfs-runtime/' /proc/self/mountinfo)"
	check_output no-state-left "" sh -c "ls -A /run/cfs-runtime 2>/dev/null; true"
	check_output no-loop-left "" sh -c "losetup -a 2>/dev/null"
}
