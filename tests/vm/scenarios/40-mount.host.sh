# shellcheck shell=bash
# The mount package's real-kernel tests (mount/vm_test.go, build tag vmtest).
vm_go test -c -tags vmtest -o "$VM_ROOT/usr/local/bin/mount.test" ./mount
[ -x "$VM_ROOT/usr/local/bin/mount.test" ]
