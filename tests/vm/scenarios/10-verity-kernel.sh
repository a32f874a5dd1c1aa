# shellcheck shell=sh
# The verity package's real-kernel tests (verity/kernel_test.go, build tag
# vmtest, named TestVM*): probe, enable, measure, EEXIST, open-for-write
# refused, a corrupted block reads back as EIO. They get a directory on the
# verity-enabled ext4 disk and that disk's block device. Only TestVM* runs:
# the package's host tests expect a kernel without fs-verity, the fsverity
# tool and the repository's testdata, none of which the guest has.
export CFS_VERITY_TEST_DIR="$VM_DATA" CFS_VERITY_TEST_DEV="$VM_DATA_DEV"
check_gotest verity.test /usr/local/bin/verity.test -test.v -test.run '^TestVM'
