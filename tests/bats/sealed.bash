#!/usr/bin/env bash
# Sealed OCI images for the engine tests.
#
#   sealed_image DIR NAME KEY [CMD...]
#       an OCI layout DIR/NAME (umoci; a busybox tree whose /data/name holds
#       NAME, CMD default `cat /data/name`), sealed with `cfs-runtime seal
#       --key KEY` (not sealed when KEY is "-"), pushed to the registry
#       (registry.bash) as NAME:1. Sets DIGEST_<NAME> (the sealed composefs
#       digest) and MANIFEST_<NAME> (the pushed manifest's digest).
#       $SEAL_ARGS: more arguments for seal (e.g. --canonical composefs-rs);
#       $SEAL_BASE: a sealed layout to start from (its layers are kept, one
#       layer is added); $SEAL_REPO: the registry repository to push to
#       (default NAME); $SEAL_EXTRA: a directory whose content is copied
#       into the tree.

sealed_image() {
	local dir=$1 name=$2 key=$3 lay=$1/$2
	shift 3
	[ $# -gt 0 ] || set -- /bin/cat /data/name
	if [ -n "${SEAL_BASE:-}" ]; then
		cp -a "$SEAL_BASE" "$lay"
		umoci unpack --image "$lay:1" "$lay.b" >/dev/null
	else
		umoci init --layout "$lay"
		umoci new --image "$lay:1"
		umoci unpack --image "$lay:1" "$lay.b" >/dev/null
		make_rootfs "$lay.b/rootfs"
		mkdir "$lay.b/rootfs/data" "$lay.b/rootfs/usr"
	fi
	echo "$name" >"$lay.b/rootfs/data/name"
	[ -z "${SEAL_EXTRA:-}" ] || cp -a "$SEAL_EXTRA/." "$lay.b/rootfs/"
	umoci repack --image "$lay:1" "$lay.b"
	local c args=()
	for c in "$@"; do args+=(--config.cmd "$c"); done
	umoci config --image "$lay:1" "${args[@]}"
	if [ "$key" != - ]; then
		local ann
		# shellcheck disable=SC2086 # SEAL_ARGS are words
		ann=$("$CFS_RUNTIME" seal --key "$key" ${SEAL_ARGS:-} --format json "oci:$lay:1" 2>/dev/null)
		export "DIGEST_$name=$(jq -r '.["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$ann")"
	fi
	export "MANIFEST_$name=$(jq -r '.manifests[0].digest' "$lay/index.json")"
	registry_push "oci:$lay:1" "${SEAL_REPO:-$name}:1"
}
