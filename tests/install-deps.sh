#!/usr/bin/env bash
# Installs what building, the demo and the test suites need on Debian 12.
# Idempotent and quick when everything is already there.
#
#   tests/install-deps.sh [demo|test]
#
# demo (the default; `make deps`): building, `make demo` with its VM part and
# the README's walk-through. test (`make deps-test`): that and what only the
# test suites use, crictl (built from source, a few minutes) included.
set -euo pipefail
what=${1:-demo}
demo=(
	runc jq busybox-static openssl fsverity git make
	podman # the README's walk-through
	qemu-system-x86 e2fsprogs xz-utils cpio # the demo's VM (tests/vm)
	keyutils # tests/vm: keyctl loads certificates into the guest's .fs-verity keyring
	isal # igzip: import inflates gzip layers with it, 2.5-3x Go (optional at run time)
)
test=(
	bats attr acl python3 debootstrap gcc
	zsh # tests of the zsh completion script
	man-db # man_test renders every generated page
	containerd # tests/bats/containerd.bats (1.6, with ctr)
	skopeo umoci # tests/bats/oci.bats: OCI layouts written by real tools
	strace # tests/bats/wrapper.bats pins what a pass-through run does
	docker-registry apache2-utils # tests/bats/registry.bash: a local registry, htpasswd
)
case $what in
demo) pkgs=("${demo[@]}") ;;
test) pkgs=("${demo[@]}" "${test[@]}") ;;
*)
	echo "usage: $0 [demo|test]" >&2
	exit 2
	;;
esac
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	# Packages with daemons (docker-registry, containerd) must not start them:
	# the tests start their own instances with their own configuration.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "Go 1.26 is required at /usr/local/go (https://go.dev/dl/)" >&2
	exit 1
fi
[ "$what" = test ] || exit 0
# crictl (cri-tools) drives containerd in tests/bats/containerd.bats; Debian 12
# does not package it. Built once (a few minutes) and kept in ~/go/bin.
if ! command -v crictl >/dev/null && [ ! -x "$HOME/go/bin/crictl" ]; then
	echo "installing crictl v1.34.0 into $HOME/go/bin"
	GOBIN=$HOME/go/bin PATH=/usr/local/go/bin:$PATH nice go install sigs.k8s.io/cri-tools/cmd/crictl@v1.34.0
fi
