# shellcheck shell=bash
# The container's root file system: static busybox, on the data disk.
vm_busybox_rootfs "$VM_DATA/bundle/rootfs"
