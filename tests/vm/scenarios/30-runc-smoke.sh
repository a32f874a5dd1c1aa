# shellcheck shell=sh
# runc runs a busybox container in the guest: proves the guest set-up
# (a tmpfs root instead of the initramfs, cgroup2, devpts) is what the
# container scenarios need.
B=$VM_DATA/bundle
require spec runc_bundle "$B" echo hello
check_contains spec-args '"echo", "hello"' cat "$B/config.json"
check_contains spec-no-terminal '"terminal": false' cat "$B/config.json"
check_output run-echo hello runc run --bundle "$B" smoke
check_output state-gone "" runc list -q
