# shellcheck shell=bash
# Helpers for host-side scenario hooks (tests/vm/scenarios/NN-name.host.sh).
# run.sh runs each hook with bash -euo pipefail after sourcing this file,
# with the working directory at the repository root and these variables:
#
#   REPO      repository root
#   VM_DIR    tests/vm
#   VM_DATA   directory that becomes /data/NN-name on the guest's ext4 disk
#             (created empty; fs-verity can be enabled there in the guest)
#   VM_ROOT   the guest root file system being built (the initramfs tree;
#             /usr/local/bin is on the guest PATH)
#   VM_CACHE  the download cache (${CFS_VM_CACHE:-/var/cache/cfs-runtime-vm})
#   GO        the go command
#
# Anything a hook prints goes to the run log; a hook that fails makes its
# scenario FAIL without booting it.

# vm_go build|test ARGS...: go build / go test -c for the guest: static (no
# cgo: the guest has no C library unless a binary brings its own) and
# stripped (a smaller initramfs boots faster).
vm_go() {
	local cmd=$1
	shift
	CGO_ENABLED=0 nice "$GO" "$cmd" -trimpath -ldflags="-s -w" "$@"
}

# vm_stage_bin PATH [DEST]: copy a host executable into the guest at DEST
# (default: the same path) with the shared libraries ldd reports for it.
vm_stage_bin() {
	local src=$1 dest=${2:-$1} lib
	mkdir -p "$VM_ROOT$(dirname "$dest")"
	cp -L "$src" "$VM_ROOT$dest"
	# ldd prints "name => /path (addr)" or "/path (addr)"; "not a dynamic
	# executable" (exit 1) for static binaries
	for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[ -e "$VM_ROOT$lib" ] && continue
		mkdir -p "$VM_ROOT$(dirname "$lib")"
		cp -L "$lib" "$VM_ROOT$lib"
	done
}

# vm_module NAME...: load these kernel modules (and their dependencies) in
# the guest before the scenarios run. Built-in ones are fine to name.
vm_module() {
	printf '%s\n' "$@" >>"$VM_MODULES"
}

# vm_busybox_rootfs DIR: a minimal container root file system: static
# busybox with its applets as symlinks in DIR/bin.
vm_busybox_rootfs() {
	local dir=$1 a
	mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/etc"
	cp /bin/busybox "$dir/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
	done
}
