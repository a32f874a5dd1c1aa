#!/usr/bin/env bash
# The built-in demo: a busybox container started through cfs-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
CFS=${CFS_RUNTIME:-$PWD/bin/cfs-runtime}
work=$(mktemp -d /tmp/cfs-demo.XXXXXX)
trap 'runc delete -f cfs-demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a busybox bundle in $work/bundle"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/sh"
(cd "$work/bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["sh", "-c", "echo hello from a container started through cfs-runtime; busybox uname -r"]' \
	"$work/bundle/config.json" >"$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"

step "cfs-runtime run (argv passed to $(CFS_RUNTIME_CONFIG=/nonexistent "$CFS" --version | sed -n 2p))"
"$CFS" run --bundle "$work/bundle" cfs-demo

step "cfs-runtime's own failure: a bundle that does not exist"
if "$CFS" --log "$work/log.json" --log-format json run --bundle /nonexistent cfs-demo 2>/dev/null; then
	echo "unexpected success" >&2
	exit 1
fi
echo "runtime log line: $(cat "$work/log.json")"
