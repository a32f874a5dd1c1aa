#!/usr/bin/env bash
# The built-in demo: sign a busybox image with a throwaway key, run it
# through cfs-runtime, tamper with it and watch cfs-runtime refuse it.
#
# Part 1 runs on this host. Without kernel fs-verity here it uses the
# `userspace` enforcement level (every byte hashed before the container
# starts). Part 2 repeats the story in a VM whose kernel has fs-verity, at
# the default `require` level, where the kernel checks every read
# (skip it with CFS_DEMO_VM=0).
set -euo pipefail
cd "$(dirname "$0")/.."
CFS=${CFS_RUNTIME:-$PWD/bin/cfs-runtime}
work=$(mktemp -d /tmp/cfs-demo.XXXXXX)
chmod 0755 "$work"
cleanup() {
	"$CFS" delete -f cfs-demo >/dev/null 2>&1 || true
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# bold headings on a terminal only: piped or logged, the demo is plain text
bold='' plain=''
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "1. A busybox root filesystem and an OCI bundle"
mkdir -p "$work"/bundle/rootfs/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in sh cat echo grep; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
echo "Welcome! This is the original /etc/motd, exactly as it was signed by the demo key." >"$work/bundle/rootfs/etc/motd"
(cd "$work/bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["sh", "-c", "cat /etc/motd; grep composefs /proc/self/mountinfo | cut -d\" \" -f5,9-"]' \
	"$work/bundle/config.json" >"$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"

step "2. A throwaway signing key and a trust policy that trusts only it"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/demo.key" 2>/dev/null
openssl pkey -in "$work/demo.key" -pubout -out "$work/demo.pub"
cat >"$work/policy.toml" <<POLICY
enforcement = "userspace"   # this host's kernel has no fs-verity
unsigned = "reject"
[[signer]]
name = "demo"
public_key = "$work/demo.pub"
POLICY
cat >"$work/config.toml" <<CONFIG
runtime = "/usr/sbin/runc"
store_dir = "$work/store"
state_dir = "$work/state"
log_file = "$work/cfs-runtime.log"
policy = "$work/policy.toml"
CONFIG
export CFS_RUNTIME_CONFIG=$work/config.toml
sed 's/^/    /' "$work/policy.toml"

step "3. Its composefs digest, signed"
digest=$("$CFS" digest "$work/bundle/rootfs")
echo "composefs digest: $digest"
"$CFS" sign --key "$work/demo.key" --format json "$digest" >"$work/annotations.json"
jq . "$work/annotations.json"
jq --slurpfile a "$work/annotations.json" '.annotations = $a[0]' "$work/bundle/config.json" >"$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"
cp "$work/bundle/config.json" "$work/config.signed.json"

step "4. cfs-runtime run: verified, imported into the store, mounted as composefs"
show "$CFS" run --bundle "$work/bundle" cfs-demo

step "5. Tamper with the stored content of /etc/motd (same size, other bytes)"
object=$("$CFS" info objects "$work/store/images/$digest" | while read -r o; do
	[ "$(stat -c %s "$work/store/objects/$o")" -eq "$(stat -c %s "$work/bundle/rootfs/etc/motd")" ] && echo "$o"
done | head -1)
[ -n "$object" ] || { echo "no object found for /etc/motd" >&2; exit 1; }
chmod u+w "$work/store/objects/$object" 2>/dev/null || true
printf 'TAMPERED motd, not what was signed' | head -c "$(stat -c %s "$work/store/objects/$object")" >"$work/store/objects/$object.new"
cat "$work/store/objects/$object.new" >"$work/store/objects/$object"
rm "$work/store/objects/$object.new"
echo "rewrote objects/$object"

step "6. cfs-runtime run again: refused before the container starts"
cp "$work/config.signed.json" "$work/bundle/config.json"
if "$CFS" --log "$work/runtime-log.json" --log-format json run --bundle "$work/bundle" cfs-demo; then
	echo "UNEXPECTED: the tampered image ran" >&2
	exit 1
fi
echo "runtime log (what podman/containerd show): $(cat "$work/runtime-log.json")"

step "7. An unsigned container is refused too"
jq 'del(.annotations)' "$work/config.signed.json" >"$work/bundle/config.json"
if "$CFS" run --bundle "$work/bundle" cfs-demo; then
	echo "UNEXPECTED: the unsigned container ran" >&2
	exit 1
fi

if [ "${CFS_DEMO_VM:-1}" != 0 ] && [ -x tests/vm/run.sh ] && ls tests/vm/scenarios/60-demo*.sh >/dev/null 2>&1; then
	step "8. The same story in a VM with kernel fs-verity (enforcement = require; qemu, a minute or two)"
	vmlog=${CFS_DEMO_VM_LOG:-/tmp/cfs-demo-vm.log}
	# The binaries just built (make demo builds them), not a rebuild; the
	# guest's console (boot, every command and check) goes to $vmlog, and
	# only the scenario's STORY lines are shown.
	rc=0
	CFS_VM_BIN_DIR=$PWD/bin CFS_VM_STORY=1 CFS_VM_CONSOLE_LOG=$vmlog \
		tests/vm/run.sh 60 >"$work/vm.out" 2>"$work/vm.err" || rc=$?
	sed -n 's/^STORY /   /p' "$work/vm.out"
	result=$(tail -n 1 "$work/vm.out")
	if [ "$rc" -ne 0 ]; then
		grep '^FAIL ' "$work/vm.out" >&2 || tail -n 5 "$work/vm.err" >&2
		echo "the VM part failed ($result); the guest's full log: $vmlog" >&2
		exit 1
	fi
	echo "   every check held (${result%%,*}); the guest's full log: $vmlog"
fi
printf '\n%sdemo finished%s\n' "$bold" "$plain"
