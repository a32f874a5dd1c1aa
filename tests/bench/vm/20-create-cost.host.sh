# shellcheck shell=bash
# Inputs for the create cost benchmark in the guest (20-create-cost.sh):
# the signed images (bench_vm_images, lib.host.sh), one bundle per variant
# (b-NAME/) and, in the guest's /usr/local/lib/cfs-bench: the runtime
# stand-in as runc, the bare shim exec'ing it, cyclecost, today's
# cfs-runtime (today/, `make build`'s) and the one of $BENCH_REF (ref/,
# default HEAD~1, built the same way; its commit in $VM_DATA/ref). With
# CFS_BENCH_PROFILE=1 also tracesum and strace.
# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh
# shellcheck source=tests/bench/vm/lib.host.sh
. tests/bench/vm/lib.host.sh
PATH=$(dirname "$GO"):$PATH
L=$VM_ROOT/usr/local/lib/cfs-bench
mkdir -p "$L/today" "$L/ref"
build_noop "$L/runc"
build_shim "$L/bare-shim" /usr/local/lib/cfs-bench/runc
vm_go build -o "$L/cyclecost" ./tests/bench/tools/cyclecost
make -s build >/dev/null
install_runtime bin "$L/today"
k=$(mktemp -d)
build_ref "$k" >"$VM_DATA/ref"
install_bin "$k/bin/cfs-runtime" "$L/ref/cfs-runtime"
# a reference from before the front split has no cfs-runtime-mount
if [ -x "$k/bin/cfs-runtime-mount" ]; then install_bin "$k/bin/cfs-runtime-mount" "$L/ref/cfs-runtime-mount"; fi
rm -rf "$k"
if [ -n "${CFS_BENCH_PROFILE:-}" ]; then
	vm_stage_bin "$(command -v strace)" /usr/local/bin/strace
	vm_go build -o "$L/tracesum" ./tests/bench/tools/tracesum
fi
bench_vm_images
for v in shim today-small today-big ref-small ref-big cal; do
	mkdir -p "$VM_DATA/b-$v/rootfs"
done
