# shellcheck shell=sh
# Verified create on a real kernel: `cfs-runtime create|run` with
# enforcement = "require" (fs-verity on the store, FS_IOC_MEASURE_VERITY of
# the image, overlayfs verity=require). The host hook signed image A (and B)
# with a throwaway key; only the public key is here.
#
#   signed        A runs, reads and writes its files; its root is the overlay
#                 with verity=require; image and objects carry fs-verity
#   corrupted     a byte of an object flipped on the disk: reading that file
#                 in the container is EIO, the other files still read
#   replaced      image B renamed over A's image file: refused (mismatch)
#   attest        unsigned, untrusted key, signature over another digest:
#                 refused; unsigned = "allow": the container runs unverified
#   runc refuses  a bundle runc rejects after cfs-runtime mounted: no mount left
#   running       plain delete of a running container refused, root stays
#                 mounted; delete --force removes everything
#   no verity     the store on an ext4 without the verity feature, on tmpfs:
#                 refused, naming the filesystem
#   cycles        CFS_VM_CYCLES (20) create + delete: nothing left behind
#
# Refusals must exit 1 with one line `cfs-runtime: <reason>` on stderr and
# leave no state directory, mount or container. Container starts cost 2-5 s
# under TCG, so there are few of them (5 + the cycles' creates).

# shellcheck disable=SC1091 # written by the host hook
. "$VM_DATA/digests" # DA, DB (images A and B), DBLOB (A's /blob object)
S=$VM_DATA/store
B=$VM_DATA/a # the bundle: rootfs/ is image A; config.json copied from cfg/
STATE=/run/cfs-runtime
E=/etc/cfs-runtime
CYCLES=${CFS_VM_CYCLES:-20}
objpath() { echo "$S/objects/$(echo "$1" | cut -c1-2)/$(echo "$1" | cut -c3-)"; }
OBJ_A=$(objpath "$DA")
OBJ_B=$(objpath "$DB")
OBJ_BLOB=$(objpath "$DBLOB")

# conf NAME STORE POLICY_LINES: $E/NAME.toml, a configuration with its own
# policy (trusting keys/trusted.pub) and the store STORE
conf() {
	cat >"$E/$1.policy.toml" <<-EOF
		$3
		[[signer]]
		name = "vm-trusted"
		public_key = "$E/keys/trusted.pub"
	EOF
	cat >"$E/$1.toml" <<-EOF
		runtime = "/usr/sbin/runc"
		store_dir = "$2"
		state_dir = "$STATE"
		log_file = "$VM_WORK/cfs-runtime.log"
		audit_file = "$VM_WORK/audit.jsonl"
		log_level = "debug"
		policy = "$E/$1.policy.toml"
	EOF
}

# use CONF CFG: select configuration CONF and bundle config cfg/CFG.json (a
# fresh copy: create rewrites root.path)
use() {
	export CFS_RUNTIME_CONFIG="$E/$1.toml"
	cp "$VM_DATA/cfg/$2.json" "$B/config.json"
}

# leftovers: what a container or a refusal left behind (nothing: empty)
# shellcheck disable=SC2012 # names are container ids and import ids
leftovers() {
	if [ -n "$(ls -A "$STATE" 2>/dev/null)" ]; then
		echo "state directories left: $(ls -A "$STATE" | tr '\n' ' ')"
	fi
	if grep -q " $STATE/" /proc/self/mountinfo; then
		echo "mounts left: $(grep " $STATE/" /proc/self/mountinfo | cut -d' ' -f5 | tr '\n' ' ')"
	fi
	for f in /sys/block/loop*/loop/backing_file; do
		# (the no-verity ext4 is loop-mounted on purpose)
		[ -e "$f" ] && [ "$(cat "$f")" != "$VM_DATA/noverity.img" ] &&
			echo "loop device bound: $f: $(cat "$f")"
	done
	if [ -n "$(ls -A "$S/tmp" 2>/dev/null)" ]; then
		echo "store tmp/ not empty: $(ls -A "$S/tmp" | tr '\n' ' ')"
	fi
}

# nothing_left CHECK: no state directory, mount, loop device or container
nothing_left() {
	_left=$(leftovers)
	_ctrs=$(runc list -q 2>&1)
	[ -z "$_ctrs" ] || _left="$_left runc still lists: $_ctrs"
	if [ -z "$_left" ]; then pass "$1"; else fail "$1" "$_left"; fi
}

# refused CHECK TEXT CMD...: cfs-runtime must refuse: exit status 1, exactly
# one line on stderr, starting "cfs-runtime: " and containing TEXT, nothing on
# stdout, nothing left behind.
refused() {
	_c=$1
	_t=$2
	shift 2
	"$@" >"$VM_OUT" 2>"$VM_OUT.err"
	_vm_rc=$?
	awk '{print "    | " $0}' "$VM_OUT" "$VM_OUT.err"
	_left=$(leftovers)
	if [ "$_vm_rc" -ne 1 ]; then
		fail "$_c" "'$*' exited $_vm_rc, want 1: $(tail -n 2 "$VM_OUT.err")"
	elif [ "$(wc -l <"$VM_OUT.err")" -ne 1 ] || ! grep -q '^cfs-runtime: ' "$VM_OUT.err"; then
		fail "$_c" "stderr is not one 'cfs-runtime: ' line: $(head -c 300 "$VM_OUT.err")"
	elif ! grep -qF -- "$_t" "$VM_OUT.err"; then
		fail "$_c" "message lacks '$_t': $(cat "$VM_OUT.err")"
	elif [ -s "$VM_OUT" ]; then
		fail "$_c" "printed on stdout: $(head -c 200 "$VM_OUT")"
	elif [ -n "$_left" ]; then
		fail "$_c" "refused but left $_left"
	else
		pass "$_c"
	fi
}

# saved NAME: keep the output of the last check as $VM_WORK/NAME.out
saved() { cp "$VM_OUT" "$VM_WORK/$1.out"; }

# root_line NAME: the container's root filesystem line of its mountinfo
# (mount point /, a line with at least 10 fields, as the container printed it)
root_line() { awk 'NF >= 10 && $5 == "/"' "$VM_WORK/$1.out" | grep .; }

# section TITLE: a progress line on the console
section() {
	read -r _up _ </proc/uptime
	echo "== $1 [${_up}s]"
}

# ---- set-up ----------------------------------------------------------------
section "set-up"
# the policy and every key it names must be root's and not group/other
# writable, up to /: copy the public keys off the data disk
require setup mkdir -p "$E/keys" /mnt/50-noverity /mnt/50-tmpfs
require setup-keys cp "$VM_DATA/keys/trusted.pub" "$VM_DATA/keys/other.pub" "$E/keys/"
conf require "$S" 'enforcement = "require"
unsigned = "reject"'
conf allow "$S" 'enforcement = "require"
unsigned = "allow"'
conf noverity /mnt/50-noverity/store 'enforcement = "require"'
conf tmpfs /mnt/50-tmpfs/store 'enforcement = "require"'
export CFS_RUNTIME_CONFIG="$E/require.toml"
check_contains policy-check-require 'enforcement = "require"' cfs-runtime policy check
# the host signed the digest of the tree it staged; the guest reads that tree
# back from the disk (mkfs.ext4 -d): same digest
check_output digest-as-signed "$DA" cfs-runtime digest "$B/rootfs"

# ---- a signed image under enforcement = require --------------------------------
section "signed image"
use require signed
check_contains run-signed "hello from signed image A" cfs-runtime run --bundle "$B" signed
saved signed
check_contains signed-writes "written" cat "$VM_WORK/signed.out"
check_contains signed-root-is-overlay " - overlay " root_line signed
check_contains signed-root-verity-require ",verity=require" root_line signed
check_contains signed-root-objects-layer "$S/objects" root_line signed
check_contains signed-imported "msg=\"imported bundle root filesystem\" pid=" cat "$VM_WORK/cfs-runtime.log"
check_contains signed-logged-mount "id=signed root=$STATE/signed/merged verity=require" cat "$VM_WORK/cfs-runtime.log"
# the kernel measures what the import wrote: the image is the signed digest,
# the objects carry fs-verity
check_output store-verity "sha256:$DA $S/images/$DA
sha256:$DBLOB $OBJ_BLOB" vmtool measure "$S/images/$DA" "$OBJ_BLOB"
nothing_left signed-nothing-left

# ---- an object corrupted on the disk after the import --------------------------
section "corrupted object"
require corrupt-blob-object vmtool corrupt "$OBJ_BLOB" 50000 "$VM_DATA_DEV"
use require eio
check_fails run-corrupted-eio "cat: read error: Input/output error" cfs-runtime run --bundle "$B" eio
saved eio
check_contains corrupted-others-read "hello from signed image A" cat "$VM_WORK/eio.out"
check_contains corrupted-kernel-reason "fs-verity (vda, inode $(stat -c %i "$OBJ_BLOB")): FILE CORRUPTED" sh -c 'dmesg | grep "FILE CORRUPTED" | tail -n 1'
nothing_left eio-nothing-left

# ---- the image file replaced by another image -----------------------------------
section "replaced image"
check_output import-b "$DB" cfs-runtime import --store "$S" "$VM_DATA/b/rootfs"
# an attacker who can write the store renames image B over image A's file
# (both carry fs-verity, so only a rename can swap them); keep A to restore
require replace-image sh -c "ln '$OBJ_A' '$S/saved-a' && ln '$OBJ_B' '$S/swap' && mv -f '$S/swap' '$OBJ_A'"
use require signed
refused replaced-image-refused "composefs digest mismatch: image $S/images/$DA measures $DB, but the signed digest is $DA" \
	cfs-runtime create --bundle "$B" replaced
require restore-image mv -f "$S/saved-a" "$OBJ_A"

# ---- attestation ---------------------------------------------------------------
section "attestation"
use require unsigned
refused unsigned-refused "no composefs digest: no composefs.merged.erofs.v1.fsverity-sha256-12 annotation" \
	cfs-runtime create --bundle "$B" unsigned
use require wrong-key
refused wrong-key-refused "$DA: signature not trusted: cosign signature does not verify with any trusted public key" \
	cfs-runtime create --bundle "$B" wrong-key
use require other-digest
refused other-digest-refused "$DA: signature not trusted: cosign signature does not verify with any trusted public key" \
	cfs-runtime create --bundle "$B" other-digest
# that signature is good, for the digest it was made for
check_contains other-digest-signature-valid "vm-trusted" cfs-runtime verify --annotations "$VM_DATA/b.annotations.json"
use allow unsigned
check_contains run-unsigned-allowed "hello from signed image A" cfs-runtime run --bundle "$B" unsigned
saved unsigned
check_contains unsigned-root-not-composefs " - ext4 $VM_DATA_DEV " root_line unsigned
check_contains unsigned-logged "starting unverified container" cat "$VM_WORK/cfs-runtime.log"
nothing_left unsigned-nothing-left

# ---- the runtime refuses the bundle after the mount -------------------------------
section "runtime refuses the bundle"
# runc rejects a relative process.cwd before it creates anything (so no
# poststop hook will ever run): cfs-runtime must not leave its mount behind
use require bad-cwd
check_fails runc-refuses-bundle "runc create failed: Cwd must be an absolute path" cfs-runtime create --bundle "$B" bad-cwd
# the exit watcher that create started unmounts once runc has exited and
# does not know the container; it is asynchronous (and slow under TCG)
for _ in $(seq 100); do
	[ -e "$STATE/bad-cwd" ] || break
	sleep 0.2
done
nothing_left runc-refused-nothing-left
check_contains runc-refused-watcher-logged "runtime rejected the container after mount: unmounting" cat "$VM_WORK/cfs-runtime.log"
cfs-runtime cleanup bad-cwd >/dev/null 2>&1 # so that one leak does not fail what follows

# ---- delete of a running container ------------------------------------------------
section "running container"
use require sleeper
require create-running cfs-runtime create --bundle "$B" running
check start-running cfs-runtime start running
check_contains running-state '"status": "running"' runc state running
# runc refuses a plain delete of a running container: its root stays mounted
check_fails plain-delete-refused "cannot delete container" cfs-runtime delete running
check_contains running-still-mounted "verity=require" grep " $STATE/running/merged " /proc/self/mountinfo
# delete --force (podman's, conmon's and containerd's): killed and unmounted
check delete-force-running cfs-runtime delete --force running
nothing_left running-nothing-left

# ---- a store without fs-verity -------------------------------------------------
section "store without fs-verity"
require mount-noverity-ext4 mount -o loop "$VM_DATA/noverity.img" /mnt/50-noverity
dev=$(awk '$2 == "/mnt/50-noverity" {print $1}' /proc/mounts)
use noverity cycle
refused noverity-ext4-refused "in store /mnt/50-noverity/store: fs-verity in /mnt/50-noverity/store/objects: ext4 on $dev lacks the verity feature (tune2fs -O verity $dev)" \
	cfs-runtime create --bundle "$B" noverity
check umount-noverity-ext4 umount /mnt/50-noverity
# busybox mount sets up the loop device with autoclear; make sure
[ -e /sys/block/"${dev#/dev/}"/loop/backing_file ] && losetup -d "$dev"
require mount-tmpfs mount -t tmpfs tmpfs /mnt/50-tmpfs
use tmpfs cycle
refused tmpfs-refused "in store /mnt/50-tmpfs/store: fs-verity in /mnt/50-tmpfs/store/objects: tmpfs does not support fs-verity" \
	cfs-runtime create --bundle "$B" tmpfs
check umount-tmpfs umount /mnt/50-tmpfs

# ---- create/delete cycles ---------------------------------------------------------
section "create/delete cycles"
# CYCLES (default 20: each costs 2-3 s under TCG; bats runs 200 on the host)
# create + delete of a created container with the image in the store, half
# with delete --force; the first one is inspected.
bad=""
i=1
t0=$(cut -d' ' -f1 /proc/uptime)
while [ "$i" -le "$CYCLES" ]; do
	use require cycle
	if ! cfs-runtime create --bundle "$B" "cycle-$i" >"$VM_OUT" 2>&1; then
		bad="$bad create cycle-$i: $(tail -n 1 "$VM_OUT");"
	fi
	if [ "$i" = 1 ]; then
		check_contains cycle-rootfs "\"rootfs\": \"$STATE/cycle-1/merged\"" runc state cycle-1
		check_contains cycle-mounted-verity-require "verity=require" grep " $STATE/cycle-1/merged " /proc/self/mountinfo
	fi
	# odd cycles: plain delete (the poststop hook unmounts); even: delete
	# --force (unmounted before runc is called, the hook finds nothing)
	force=""
	[ $((i % 2)) = 0 ] && force=--force
	if ! cfs-runtime delete $force "cycle-$i" >"$VM_OUT" 2>&1; then
		bad="$bad delete $force cycle-$i: $(tail -n 1 "$VM_OUT");"
	fi
	i=$((i + 1))
done
section "cycles done"
info "$CYCLES create/delete cycles took $(awk -v t0="$t0" '{printf "%.1f s, %.2f s each", $1 - t0, ($1 - t0) / '"$CYCLES"'}' /proc/uptime)"
if [ -z "$bad" ]; then pass "cycles-$CYCLES"; else fail "cycles-$CYCLES" "$bad"; fi
nothing_left cycles-nothing-left
check_output cycles-no-loop-devices "" sh -c 'cat /sys/block/loop*/loop/backing_file 2>/dev/null; true'
check_output cycles-state-dir-empty "" ls -A "$STATE"
