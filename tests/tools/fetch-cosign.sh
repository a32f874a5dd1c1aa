#!/bin/bash
# fetch-cosign.sh: download Debian trixie's cosign package (a static Go
# binary) into a cache directory without installing anything system-wide, and
# print the path of the cosign binary. The attest tests need the real cosign
# to prove that `cosign sign-blob` signatures verify; .ci/run calls this and
# exports CFS_TEST_COSIGN with the printed path.
#
# Usage: tests/tools/fetch-cosign.sh [CACHE_DIR]
#   CACHE_DIR defaults to $CFS_TEST_CACHE or ~/.cache/cfs-runtime-test.
set -euo pipefail

cache=${1:-${CFS_TEST_CACHE:-$HOME/.cache/cfs-runtime-test}}/cosign
bin=$cache/root/usr/bin/cosign
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A private apt configuration that sees only trixie, so that nothing of the
# host's own apt state is touched (never install trixie packages system-wide).
uris=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
[ -n "$uris" ] || { echo "fetch-cosign: no Debian URIs in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts"
cat >"$work/trixie.sources" <<SRC
Types: deb
URIs: $uris
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
aptopts=(
	-o "Dir::State::Lists=$work/lists"
	-o "Dir::Etc::SourceList=$work/trixie.sources"
	-o "Dir::Etc::SourceParts=$work/parts"
	-o "Dir::Cache::Archives=$work/archives"
	-o "Dir::Cache::pkgcache="
	-o "Dir::Cache::srcpkgcache="
	-o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=root"
)
apt-get "${aptopts[@]}" -qq update >&2
(cd "$work" && apt-get "${aptopts[@]}" -qq download cosign >&2)
deb=$(ls "$work"/cosign_*.deb)
rm -rf "$cache/root.new"
dpkg -x "$deb" "$cache/root.new"
"$cache/root.new/usr/bin/cosign" version >/dev/null 2>&1 || { echo "fetch-cosign: extracted cosign does not run" >&2; exit 1; }
rm -rf "$cache/root"
mv "$cache/root.new" "$cache/root"
echo "$bin"
