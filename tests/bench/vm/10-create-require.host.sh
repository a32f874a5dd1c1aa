# shellcheck shell=bash
# Inputs for the warm verified-create benchmark in the guest
# (10-create-require.sh): the signed images (bench_vm_images, lib.host.sh),
# bundles b-runc/ b-shim/ b-small/ b-big/ (config.json is copied from cfg/
# before each create: create rewrites root.path) and, in the guest root,
# cyclebench and bare-shim (a Go program that only execs runc: the floor
# for a Go wrapper).
# shellcheck source=tests/bench/vm/lib.host.sh
. tests/bench/vm/lib.host.sh
vm_go build -o "$VM_ROOT/usr/local/bin/cyclebench" ./tests/bench/tools/cyclebench
vm_go build -o "$VM_ROOT/usr/local/bin/bare-shim" ./tests/bench/tools/bareshim
bench_vm_images
mkdir -p "$VM_DATA/b-runc" "$VM_DATA/b-shim" "$VM_DATA/b-small/rootfs" "$VM_DATA/b-big/rootfs"
