# shellcheck shell=sh
# fsck and repair on a real kernel, with the store on an ext4 that has
# fs-verity (every object carries it):
#
#   clean         a fresh import: fsck exit 0
#   corrupted     a byte of an object flipped on the disk: the kernel still
#                 measures the right digest (the Merkle tree is intact), but
#                 fsck reads the object through fs-verity, gets EIO and
#                 reports it corrupt with the paths that use it: exit 1;
#                 so does --userspace (the read of the bad block fails)
#   unprotected   an object replaced by a copy without fs-verity: reported
#   repair        fsck --repair (no --source: the tree the import recorded)
#                 restores the corrupted object (fs-verity enabled, measured)
#                 and enables fs-verity on the other in place (same inode);
#                 fsck is clean again and the object reads
#   sha512        import --hash sha512 of the same tree: its objects carry
#                 SHA-512 fs-verity; a block corrupted on the disk is found
#                 (EIO) and repaired from the tree
#
# The host hook made the tree (tree/) and its digests.

# shellcheck disable=SC1091 # written by the host hook
. "$VM_DATA/digests" # DBLOB, DBLOB2, DBLOB512
S=$VM_DATA/store
T=$VM_DATA/tree
objpath() { echo "$S/objects/$(echo "$1" | cut -c1-2)/$(echo "$1" | cut -c3-)"; }
OBJ_BLOB=$(objpath "$DBLOB")
OBJ_BLOB2=$(objpath "$DBLOB2")

# fsck_run NAME ARGS...: run cfs-runtime fsck, keep stdout in
# $VM_WORK/NAME.out and stderr in NAME.err, the exit status in _fsck_rc
fsck_run() {
	_n=$1
	shift
	cfs-runtime fsck --store "$S" "$@" >"$VM_WORK/$_n.out" 2>"$VM_WORK/$_n.err"
	_fsck_rc=$?
	awk '{print "    | " $0}' "$VM_WORK/$_n.out" "$VM_WORK/$_n.err"
}

# exit_is CHECK WANT: the last fsck_run exited WANT
exit_is() {
	if [ "$_fsck_rc" -eq "$2" ]; then pass "$1"; else fail "$1" "fsck exited $_fsck_rc, want $2: $(tail -n 2 "$VM_WORK/$_n.err")"; fi
}

echo "== import"
check_output import "" sh -c "cfs-runtime import --store '$S' '$T' >'$VM_WORK/digest'"
DI=$(cat "$VM_WORK/digest")
check_output import-objects-verity "sha256:$DBLOB $OBJ_BLOB
sha256:$DBLOB2 $OBJ_BLOB2" vmtool measure "$OBJ_BLOB" "$OBJ_BLOB2"
fsck_run clean "$DI"
exit_is clean-exit-0 0
check_contains clean-report "$DI: clean (" cat "$VM_WORK/clean.out"

echo "== damage"
require corrupt-blob-on-disk vmtool corrupt "$OBJ_BLOB" 50000 "$VM_DATA_DEV"
# measuring alone does not see it: the kernel vouches for the tree's root
check_output corrupted-still-measures "sha256:$DBLOB $OBJ_BLOB" vmtool measure "$OBJ_BLOB"
require replace-blob2-without-verity sh -c "cp '$OBJ_BLOB2' '$S/blob2.tmp' && mv -f '$S/blob2.tmp' '$OBJ_BLOB2'"
check_fails blob2-has-no-verity "" vmtool measure "$OBJ_BLOB2"
ino2=$(stat -c %i "$OBJ_BLOB2")
fsck_run damaged "$DI"
exit_is damaged-exit-1 1
check_contains damaged-summary "$DI: damaged: 0 missing, 1 corrupt, 1 without fs-verity" cat "$VM_WORK/damaged.out"
check_contains damaged-eio "corrupt $DBLOB (102400 bytes): read error: input/output error" cat "$VM_WORK/damaged.out"
check_contains damaged-paths "used by /data/blob, /data/blob-copy" cat "$VM_WORK/damaged.out"
check_contains damaged-unprotected "no fs-verity $DBLOB2 (51200 bytes); used by /data/blob2" cat "$VM_WORK/damaged.out"
check_contains damaged-kernel-reason "FILE CORRUPTED" sh -c 'dmesg | grep "fs-verity" | tail -n 1'
# hashed in userspace, the same object is just as corrupt (the read
# stops short of the bad block, the next one fails)
fsck_run damaged-userspace --userspace "$DI"
exit_is damaged-userspace-exit-1 1
check_contains damaged-userspace-eio "corrupt $DBLOB (102400 bytes): read error: input/output error" cat "$VM_WORK/damaged-userspace.out"
fsck_run damaged-json --json "$DI"
exit_is damaged-json-exit-1 1
check_contains damaged-json-corrupt "\"object\": \"$DBLOB\"" cat "$VM_WORK/damaged-json.out"

echo "== repair"
fsck_run repair --repair "$DI"
exit_is repair-exit-0 0
check_contains repair-needs-tree "fsck: repair needs tree $T (1 objects)" cat "$VM_WORK/repair.err"
check_contains repair-restored "fsck: restored object $DBLOB from tree $T: /data/blob" cat "$VM_WORK/repair.err"
check_contains repair-protected "fsck: enabled fs-verity on object $DBLOB2" cat "$VM_WORK/repair.err"
check_contains repair-clean "$DI: clean (" cat "$VM_WORK/repair.out"
# the restored object has fs-verity and its digest; blob2 kept its inode
check_output restored-verity "sha256:$DBLOB $OBJ_BLOB
sha256:$DBLOB2 $OBJ_BLOB2" vmtool measure "$OBJ_BLOB" "$OBJ_BLOB2"
check_output protected-same-inode "$ino2" stat -c %i "$OBJ_BLOB2"
check restored-reads cmp "$OBJ_BLOB" "$T/data/blob"
fsck_run after "$DI"
exit_is after-exit-0 0
check_output store-tmp-empty "" ls -A "$S/tmp"

echo "== sha512"
check_output import-sha512 "" sh -c "cfs-runtime import --store '$S' --hash sha512 '$T' >'$VM_WORK/digest512'"
D512=$(cat "$VM_WORK/digest512")
OBJ_BLOB512=$(objpath "$DBLOB512")
check_output sha512-object-verity "sha512:$DBLOB512 $OBJ_BLOB512" vmtool measure "$OBJ_BLOB512"
check_output sha512-image-verity "sha512:$D512 $(objpath "$D512")" vmtool measure "$(objpath "$D512")"
fsck_run sha512-clean "$D512"
exit_is sha512-clean-exit-0 0
require sha512-corrupt-on-disk vmtool corrupt "$OBJ_BLOB512" 50000 "$VM_DATA_DEV"
fsck_run sha512-damaged "$D512"
exit_is sha512-damaged-exit-1 1
check_contains sha512-damaged-eio "corrupt $DBLOB512 (102400 bytes): read error: input/output error" cat "$VM_WORK/sha512-damaged.out"
fsck_run sha512-repair --repair "$D512"
exit_is sha512-repair-exit-0 0
check_contains sha512-restored "fsck: restored object $DBLOB512 from tree $T: /data/blob" cat "$VM_WORK/sha512-repair.err"
check_output sha512-restored-verity "sha512:$DBLOB512 $OBJ_BLOB512" vmtool measure "$OBJ_BLOB512"
