# shellcheck shell=sh
# The mount package's TestVM* tests: composefs mounts with verity=require
# (file-backed and loop, writable and read-only), tampered and missing
# fs-verity objects refused with EIO, Probe, 50 cycles leaving nothing.
export CFS_MOUNT_TEST_DIR="$VM_DATA" TMPDIR="$VM_WORK"
check_gotest mount.test /usr/local/bin/mount.test -test.v -test.run '^TestVM'
