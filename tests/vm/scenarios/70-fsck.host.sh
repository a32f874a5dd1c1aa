# shellcheck shell=bash
# Inputs for fsck and repair on a real kernel (70-fsck.sh):
#
#   tree/               busybox, /data/blob (100 KiB random: the object the
#                       guest corrupts on the disk), /data/blob2 (50 KiB: the
#                       object the guest replaces by a copy without fs-verity)
#                       and a copy of blob as /data/blob-copy
#   digests             DBLOB=<hex> DBLOB2=<hex> (fs-verity digests, sh),
#                       DBLOB512=<hex> (blob's SHA-512 fs-verity digest)
D=$VM_DATA
vm_busybox_rootfs "$D/tree"
mkdir -p "$D/tree/data"
head -c 102400 /dev/urandom >"$D/tree/data/blob"
cp "$D/tree/data/blob" "$D/tree/data/blob-copy"
head -c 51200 /dev/urandom >"$D/tree/data/blob2"
chmod 0755 "$D/tree"
printf 'DBLOB=%s\nDBLOB2=%s\nDBLOB512=%s\n' "$(fsverity digest --compact "$D/tree/data/blob")" \
	"$(fsverity digest --compact "$D/tree/data/blob2")" \
	"$(fsverity digest --compact --hash-alg=sha512 "$D/tree/data/blob")" >"$D/digests"
