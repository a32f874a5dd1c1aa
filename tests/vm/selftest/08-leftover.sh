# shellcheck shell=sh
# leaves a mount under /data: the guest cannot unmount the disk
mkdir -p "$VM_DATA/m"
check mounted mount -t tmpfs tmpfs "$VM_DATA/m"
