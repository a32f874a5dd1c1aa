#!/usr/bin/env bash
# Installs what building, the demo and the test suites need on Debian 12.
# Idempotent and quick when everything is already there.
set -euo pipefail
pkgs=(
	runc bats jq busybox-static fsverity attr acl openssl python3
	qemu-system-x86 e2fsprogs xz-utils cpio
	podman debootstrap git make gcc
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "Go 1.26 is required at /usr/local/go (https://go.dev/dl/)" >&2
	exit 1
fi
