# shellcheck shell=sh
# Hook mode on a real kernel: runc (not cfs-runtime) runs the container and
# `cfs-runtime hook createRuntime` as its createRuntime hook. The container's
# root is a composefs overlay that the guest mounts itself, as a container
# engine would, with the EROFS left mounted at the overlay's lower layer:
#
#   file-backed   EROFS from image A's file (vmtool mount), the overlay by
#                 fsconfig (lowerdir+, datadir+, verity=require): the kernel
#                 measures A as the signed digest, the container runs
#   loop          EROFS on a loop device (busybox mount), the overlay by
#                 mount(2) (lowerdir=EROFS::OBJECTS,verity=require): runs
#   other image   image B mounted instead of the signed A: refused, naming
#                 both digests
#   no verity     A's overlay without verity=require: refused
#
# runc reports a failed hook as "error running hook #0: ... stderr:
# cfs-runtime: container ID: <reason>" and does not start the container.

# shellcheck disable=SC1091 # written by the host hook
. "$VM_DATA/digests" # DA, DB: the fs-verity digests of images A and B
M=/mnt/75-hooks
E=/etc/cfs-runtime
B=$VM_DATA/bundle
OBJ=$VM_DATA/objects
LOG=$VM_WORK/cfs-runtime.log
NOT_COMPOSEFS="root filesystem is not a verifiable composefs mount"

# composefs_up IMAGE file|loop [VERITY-OPTION]: IMAGE's EROFS at $M/lower and
# the composefs overlay on $M/merged, read-only
composefs_up() {
	case $2 in
	file)
		# shellcheck disable=SC2086 # no option at all when $3 is empty
		vmtool mount -r erofs "$1" "$M/lower" &&
			vmtool fsmount -r overlay composefs "$M/merged" metacopy=on redirect_dir=on $3 "lowerdir+=$M/lower" "datadir+=$OBJ"
		;;
	loop)
		mount -t erofs -o ro,loop "$1" "$M/lower" &&
			vmtool mount -r overlay composefs "$M/merged" "metacopy=on,redirect_dir=on${3:+,$3},lowerdir=$M/lower::$OBJ"
		;;
	esac
}
composefs_down() {
	umount "$M/merged" && umount "$M/lower"
}
# a scenario stopped by a failed require must not keep /data busy
trap 'umount "$M/merged" "$M/lower" 2>/dev/null' EXIT

# refused CHECK ID TEXT: runc fails with the hook's reason, and the
# container never ran (it would print a hello)
refused() {
	check_fails "$1" "error running hook #0: error running hook: exit status 1, stdout: , stderr: cfs-runtime: container $2: $3" \
		runc run --bundle "$B" "$2"
	if grep -q "hello from" "$VM_OUT"; then fail "$1-not-started" "the container ran"; else pass "$1-not-started"; fi
}

# ---- set-up ----------------------------------------------------------------
# the policy and the key it names must be root's up to /: off the data disk
require setup mkdir -p "$E/keys" "$M/lower" "$M/merged"
require setup-key cp "$VM_DATA/keys/trusted.pub" "$E/keys/75-hooks.pub"
cat >"$E/75-hooks.policy.toml" <<EOF
enforcement = "require"
unsigned = "reject"
[[signer]]
name = "vm-trusted"
public_key = "$E/keys/75-hooks.pub"
EOF
cat >"$E/75-hooks.toml" <<EOF
policy = "$E/75-hooks.policy.toml"
log_file = "$LOG"
audit_file = "$LOG.audit"
log_level = "debug"
EOF
# mkfs.ext4 -d cannot carry fs-verity: enable it on the images and objects
require enable-verity sh -c "vmtool enable '$VM_DATA/a.cfs' '$VM_DATA/b.cfs' '$OBJ'/*/*"
check_output images-measure "sha256:$DA $VM_DATA/a.cfs
sha256:$DB $VM_DATA/b.cfs" vmtool measure "$VM_DATA/a.cfs" "$VM_DATA/b.cfs"

# ---- the signed image, file-backed EROFS, fsconfig overlay ------------------
require mount-file-backed composefs_up "$VM_DATA/a.cfs" file verity=require
check_contains file-backed-mountinfo "- overlay composefs ro,lowerdir+=$M/lower,datadir+=$OBJ,redirect_dir=on,metacopy=on,verity=require" \
	grep " $M/merged " /proc/self/mountinfo
check_contains file-backed-runs "hello from image A" runc run --bundle "$B" hooks-file
check_contains file-backed-logged "msg=\"hook createRuntime: verified\"" grep " id=hooks-file root=$M/merged image=$VM_DATA/a.cfs loop=\"\" " "$LOG"
require umount-file-backed composefs_down

# ---- the signed image on a loop device, mount(2) overlay --------------------
require mount-loop composefs_up "$VM_DATA/a.cfs" loop verity=require
check_contains loop-mountinfo "- overlay composefs ro,lowerdir=$M/lower::$OBJ,redirect_dir=on,metacopy=on,verity=require" \
	grep " $M/merged " /proc/self/mountinfo
check_contains loop-runs "hello from image A" runc run --bundle "$B" hooks-loop
check_contains loop-logged " id=hooks-loop root=$M/merged image=$VM_DATA/a.cfs loop=/dev/loop" cat "$LOG"
require umount-loop composefs_down

# ---- another image than the signed one --------------------------------------
require mount-other-image composefs_up "$VM_DATA/b.cfs" file verity=require
refused other-image-refused hooks-other \
	"composefs digest mismatch: EROFS image $VM_DATA/b.cfs (lower layer of $M/merged) measures sha256:$DB, but the signed digest is sha256:$DA"
require umount-other-image composefs_down

# ---- the signed image, but the overlay without verity=require ------------------
require mount-no-verity composefs_up "$VM_DATA/a.cfs" file
refused no-verity-refused hooks-noverity \
	"$NOT_COMPOSEFS: $M/merged is an overlay mounted without verity=require (the kernel would not check every object's fs-verity digest)"
require umount-no-verity composefs_down

# ---- nothing left ------------------------------------------------------------
check_output no-containers "" runc list -q
check_output no-loop-devices "" sh -c 'cat /sys/block/loop*/loop/backing_file 2>/dev/null; true'
check_output nothing-mounted "" sh -c "grep ' $M/' /proc/self/mountinfo; true"
