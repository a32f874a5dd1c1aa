#!/usr/bin/env bash
# Shared helpers for cfs-runtime's bats suites (in the style of runc's
# tests/integration/helpers.bash).

# The binary under test and the real runtime it stands in front of.
CFS_RUNTIME=${CFS_RUNTIME:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/bin/cfs-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}
TOOLS_BIN=${TOOLS_BIN:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/bin}

# requires_root: these suites mount and run containers.
requires_root() {
	if [ "$(id -u)" != 0 ]; then
		skip "test requires root"
	fi
}

# make_rootfs DIR: a busybox-static root filesystem.
make_rootfs() {
	local dir=$1
	mkdir -p "$dir"/{bin,dev,etc,proc,sys,tmp,root}
	cp "$BUSYBOX" "$dir/bin/busybox"
	local app
	for app in sh echo cat ls sleep true false test id env mount head printf readlink stat wc; do
		ln -sf busybox "$dir/bin/$app"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
	echo 'root:x:0:' >"$dir/etc/group"
}

# make_bundle DIR [ARGS...]: a bundle with a busybox rootfs and a config.json
# from `runc spec` without a terminal, running ARGS (default: true).
make_bundle() {
	local dir=$1
	shift
	mkdir -p "$dir"
	make_rootfs "$dir/rootfs"
	(cd "$dir" && "$RUNC" spec)
	local args
	if [ $# -eq 0 ]; then set -- true; fi
	args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
	jq --argjson a "$args" '.process.terminal = false | .process.args = $a' "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
}

# make_hello_template: $TMPL, a bundle under $BATS_FILE_TMPDIR whose
# process prints /data/hello.txt ($HELLO), and $DIGEST, the composefs
# digest of its root filesystem.
make_hello_template() {
	export TMPL="$BATS_FILE_TMPDIR/bundle"
	make_bundle "$TMPL" cat /data/hello.txt
	mkdir -p "$TMPL/rootfs/data"
	printf '%s\n' "$HELLO" >"$TMPL/rootfs/data/hello.txt"
	DIGEST=$("$CFS_RUNTIME" digest "$TMPL/rootfs")
	export DIGEST
}

# set_args BUNDLE ARGS...: change the process args of a bundle.
set_args() {
	local dir=$1
	shift
	local args
	args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
	jq --argjson a "$args" '.process.args = $a' "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
}

# update_config BUNDLE JQ-FILTER
update_config() {
	jq "$2" "$1/config.json" >"$1/config.json.new" && mv "$1/config.json.new" "$1/config.json"
}

# unique container id for this test
cid() {
	echo "cfs-bats-$$-${BATS_TEST_NUMBER}-$1"
}

# cleanup_containers: delete every container this run of the suite left
# behind, in both runc roots used by the tests: those whose bundle is under
# this run's temporary directory (other runs, in other worktrees, keep
# theirs).
cleanup_containers() {
	local root id
	for root in /run/runc "$BATS_TMPDIR/runc-root"; do
		[ -d "$root" ] || continue
		for id in $("$RUNC" --root "$root" list --format json 2>/dev/null |
			jq -r --arg dir "$BATS_RUN_TMPDIR/" '.[]? | select((.id | startswith("cfs-bats-")) and (.bundle | startswith($dir))) | .id' || true); do
			"$RUNC" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
}

# make_key DIR NAME: an ECDSA P-256 key pair DIR/NAME.key, DIR/NAME.pub.
make_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/$2.key" 2>/dev/null
	openssl pkey -in "$1/$2.key" -pubout -out "$1/$2.pub"
}

# write_policy FILE ENFORCEMENT UNSIGNED PUBKEY: a trust policy with one
# key-pair signer named "test".
write_policy() {
	cat >"$1" <<-EOF
		enforcement = "$2"
		unsigned = "$3"
		[[signer]]
		name = "test"
		public_key = "$4"
	EOF
	chmod 0644 "$1"
}

# use_config LINE...: a cfs-runtime configuration that only exists for this
# test. Unless a line sets policy, the policy lets unsigned containers pass
# (the wrapper-core tests are about pass-through, not verification).
use_config() {
	export CFS_RUNTIME_CONFIG="$BATS_TEST_TMPDIR/config.toml"
	printf '%s\n' "$@" >"$CFS_RUNTIME_CONFIG"
	if ! grep -q '^policy' "$CFS_RUNTIME_CONFIG"; then
		local keys="$BATS_TEST_TMPDIR/keys"
		mkdir -p "$keys"
		[ -f "$keys/allow.pub" ] || make_key "$keys" allow
		write_policy "$keys/allow.toml" userspace allow "$keys/allow.pub"
		echo "policy = \"$keys/allow.toml\"" >>"$CFS_RUNTIME_CONFIG"
	fi
	for d in store state; do
		grep -q "^${d}_dir" "$CFS_RUNTIME_CONFIG" || echo "${d}_dir = \"$BATS_TEST_TMPDIR/$d\"" >>"$CFS_RUNTIME_CONFIG"
	done
	grep -q "^audit_file" "$CFS_RUNTIME_CONFIG" || echo "audit_file = \"$BATS_TEST_TMPDIR/audit.jsonl\"" >>"$CFS_RUNTIME_CONFIG"
}
