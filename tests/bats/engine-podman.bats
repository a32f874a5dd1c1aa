#!/usr/bin/env bats
# The seal travels with the image (issue #18), with containers-storage:
# sealed images pulled by podman (a private storage root) from a local
# registry.
#
# - podman 4.3 names no image in config.json; it copies the image
#   manifest's annotations, the seal among them, into the container's:
#   `podman run --runtime cfs-runtime IMAGE` needs no flags. cfs-runtime's
#   store starts empty: create imports the image's layers from
#   containers-storage (the container's record names its image; the
#   layers' tars are reassembled from tar-split and checked against their
#   diff_ids).
# - CRI-O (not installable here) names the image with
#   io.kubernetes.cri-o.ImageName / ImageRef: a bundle with those
#   annotations is created through cfs-runtime directly, which reads the
#   image's manifest from the same containers-storage (cfs-runtime-engine).
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (helpers.bash). Needs root,
# podman, umoci, skopeo, docker-registry.

load helpers
load registry
load sealed
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

# pm ARGS...: podman on this file's private storage.
pm() {
	podman --root "$ENG/storage" --runroot "$ENG/run" --storage-driver overlay "$@"
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	local tool
	for tool in podman skopeo umoci; do
		command -v "$tool" >/dev/null && continue
		if [ -n "${CI:-}" ]; then
			echo "$tool not installed (tests/install-deps.sh)" >&2
			return 1
		fi
		skip "$tool not installed (tests/install-deps.sh)"
	done
	export ENG=$BATS_FILE_TMPDIR/eng
	export KEYS=$ENG/keys STORE=$ENG/store OWNLOG=$ENG/own.log CONFIG=$ENG/config.toml
	mkdir -p "$KEYS"
	registry_start
	make_key "$KEYS" good
	make_key "$KEYS" other
	write_policy "$KEYS/policy.toml" userspace reject "$KEYS/good.pub"
	cat >"$CONFIG" <<-EOF
		runtime = "$RUNC"
		policy = "$KEYS/policy.toml"
		store_dir = "$STORE"
		state_dir = "$ENG/state"
		log_file = "$OWNLOG"
		log_level = "debug"
		containers_storage = "$ENG/storage"
	EOF
	sealed_image "$ENG" app1 "$KEYS/good.key"
	sealed_image "$ENG" app2 "$KEYS/good.key"
	sealed_image "$ENG" broken "$KEYS/good.key"
	# Files large enough to be objects of their own (not inlined).
	mkdir -p "$ENG/extra/data"
	head -c 100000 /dev/urandom >"$ENG/extra/data/one"
	head -c 120000 /dev/urandom >"$ENG/extra/data/two"
	SEAL_EXTRA=$ENG/extra sealed_image "$ENG" fix "$KEYS/good.key"
	local n
	for n in app1 app2 broken fix; do
		pm pull -q --tls-verify=false "$REGISTRY/$n:1" >/dev/null
	done
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	if [ -n "${ENG:-}" ]; then
		pm rm -af -t 0 >/dev/null 2>&1 || true
		pm rmi -af >/dev/null 2>&1 || true
		for m in $(awk -v d="$ENG" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
			umount -l "$m" || true
		done
	fi
	registry_stop
}

setup() {
	requires_root
	export CFS_RUNTIME_CONFIG=$CONFIG
}

teardown() {
	cleanup_containers
}

# crio_bundle NAME IMAGE [ANNOTATIONS-JSON]: a bundle as CRI-O makes one
# for IMAGE (its annotations naming the image and its id in
# containers-storage), printing /data/name and the root's mount.
crio_bundle() {
	local b=$BATS_TEST_TMPDIR/$1 id
	id=$(pm image inspect --format '{{.Id}}' "$REGISTRY/$2:1")
	make_bundle "$b" /bin/sh -c 'cat /data/name; grep "^composefs / overlay" /proc/mounts | cut -d" " -f1-3'
	jq --arg n "$REGISTRY/$2:1" --arg r "$id" --argjson a "${3:-{\}}" \
		'.annotations = {"io.container.manager": "cri-o", "io.kubernetes.cri-o.ImageName": $n, "io.kubernetes.cri-o.ImageRef": $r} + $a' \
		"$b/config.json" >"$b/config.json.new"
	mv "$b/config.json.new" "$b/config.json"
	echo "$b"
}

@test "engine: podman pull, then podman run --runtime cfs-runtime IMAGE with no flags and an empty store: imported from containers-storage, verified by the seal podman copies" {
	[ ! -e "$STORE/images/$DIGEST_app1" ]
	run pm run --rm "${ULIMITS[@]}" --runtime "$CFS_RUNTIME" --runtime-flag "cfs-config=$CONFIG" "$REGISTRY/app1:1" \
		sh -c 'cat /data/name; grep "^composefs / overlay" /proc/mounts | cut -d" " -f1-3'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'app1\ncomposefs / overlay')" ]
	grep -q "level=INFO msg=verified .*composefs digest sha256:$DIGEST_app1: cosign signature trusted by signer" "$OWNLOG"
	grep -q "msg=\"engine import\" .*step=\"imported containers-storage:$REGISTRY/app1:1: composefs digest $DIGEST_app1, manifest sha256:[0-9a-f]*, 1 of 1 layers read\"" "$OWNLOG"
	[ -f "$STORE/images/$DIGEST_app1" ]
	run grep -c "imported bundle root filesystem" "$OWNLOG"
	[ "$output" = 0 ]
}

@test "engine: CRI-O's annotations name the image: the seal comes from its manifest in containers-storage" {
	b=$(crio_bundle one app1)
	id=$(cid one)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$id"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'app1\ncomposefs / overlay')" ]
	grep -q "msg=\"engine image\" pid=[0-9]* id=$id image=\"cri-o image $REGISTRY/app1:1 ([0-9a-f]*)\" manifest=$MANIFEST_app1 config=sha256:[0-9a-f]* sealed=true" "$OWNLOG"
	grep -q "msg=verified pid=[0-9]* id=$id .*composefs digest sha256:$DIGEST_app1: cosign signature trusted by signer" "$OWNLOG"

	# A warm create runs no helper: the seal is cached by the image id.
	id2=$(cid again)
	CFS_RUNTIME_ENGINE=/nonexistent run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$id2"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'app1\ncomposefs / overlay')" ]
	grep -q "msg=\"engine image\" pid=[0-9]* id=$id2 image=\"cri-o image $REGISTRY/app1:1 ([0-9a-f]*)\" manifest=$MANIFEST_app1 config=sha256:[0-9a-f]* sealed=true cached=true" "$OWNLOG"
}

@test "engine: CRI-O names a sealed image, the annotations another signed digest: refused" {
	b=$(crio_bundle swap app1 "$("$CFS_RUNTIME" sign --key "$KEYS/good.key" --format json "$DIGEST_app2")")
	id=$(cid swap)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$id"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs annotation conflicts with the image's seal: the container's annotation $DIGEST_KEY names composefs digest $DIGEST_app2, but cri-o image $REGISTRY/app1:1 ($(pm image inspect --format '{{.Id}}' "$REGISTRY/app1:1")) is sealed with $DIGEST_app1 ($DIGEST_KEY): remove the annotation, or run the image it names" ]
	[ -z "$(ls -A "$ENG/state")" ]
}

@test "engine: CRI-O names an image containers-storage does not have: refused" {
	b=$(crio_bundle gone app1)
	jq '.annotations["io.kubernetes.cri-o.ImageRef"] = "0000000000000000000000000000000000000000000000000000000000000000"' "$b/config.json" >"$b/c" && mv "$b/c" "$b/config.json"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$(cid gone)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: cannot read the engine's image: cri-o image $REGISTRY/app1:1 (0000000000000000000000000000000000000000000000000000000000000000): containers-storage $ENG/storage: no image with id 0000000000000000000000000000000000000000000000000000000000000000" ]
}

@test "engine: under unsigned = \"allow\", a sealed image CRI-O names is still verified (the front hands it on)" {
	write_policy "$BATS_TEST_TMPDIR/allow.toml" userspace allow "$KEYS/good.pub"
	sed "s|^policy = .*|policy = \"$BATS_TEST_TMPDIR/allow.toml\"|" "$CONFIG" >"$BATS_TEST_TMPDIR/config.toml"
	export CFS_RUNTIME_CONFIG=$BATS_TEST_TMPDIR/config.toml
	b=$(crio_bundle allow app1)
	id=$(cid allow)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$id"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'app1\ncomposefs / overlay')" ]
	grep -q "msg=verified pid=[0-9]* id=$id .*composefs digest sha256:$DIGEST_app1: cosign signature trusted by signer" "$OWNLOG"
	run grep -c "id=$id .*starting unverified container\|starting unverified container.* id=$id " "$OWNLOG"
	[ "$output" = 0 ]
}

@test "engine: CRI-O names a sealed image the store lacks: imported from containers-storage" {
	[ ! -e "$STORE/images/$DIGEST_app2" ]
	b=$(crio_bundle two app2)
	id=$(cid two)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$id"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'app2\ncomposefs / overlay')" ]
	grep -q "msg=\"engine import\" .*image=\"cri-o image $REGISTRY/app2:1 ([0-9a-f]*)\" step=\"imported containers-storage:$REGISTRY/app2:1: composefs digest $DIGEST_app2, " "$OWNLOG"
}

@test "engine: a file changed in containers-storage's unpacked layer is refused, naming the layer; nothing committed" {
	local top diff
	top=$(jq -r --arg n "$REGISTRY/broken:1" '.[] | select(.names[]? == $n) | .layer' "$ENG/storage/overlay-images/images.json")
	diff=$ENG/storage/overlay/$top/diff
	[ "$(cat "$diff/data/name")" = broken ]
	echo brokeN >"$diff/data/name"
	b=$(crio_bundle broken broken)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$(cid broken)"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: composefs image not available: composefs digest $DIGEST_broken is not in the store $STORE, and importing cri-o image $REGISTRY/broken:1 ("*") from the engine's store failed: containers-storage:$REGISTRY/broken:1: layer 1/1 blob $(jq -r --arg l "$top" '.[] | select(.id == $l) | ."diff-digest"' "$ENG/storage/overlay-layers/layers.json"): blob does not match its digest: its content has digest sha256:"* ]]
	[ ! -e "$STORE/images/$DIGEST_broken" ]
}

# fix_store: a configuration with an empty store of its own, into which
# create imports the image fix from containers-storage. Sets store (its
# directory) and FIX_CONFIG.
fix_store() {
	store=$BATS_TEST_TMPDIR/store
	FIX_CONFIG=$BATS_TEST_TMPDIR/config.toml
	sed "s|^store_dir = .*|store_dir = \"$store\"|" "$CONFIG" >"$FIX_CONFIG"
	local b
	b=$(crio_bundle fix fix)
	CFS_RUNTIME_CONFIG=$FIX_CONFIG run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$(cid fix)"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'fix\ncomposefs / overlay')" ]
	grep -q "msg=\"engine import\" .*step=\"imported containers-storage:$REGISTRY/fix:1: composefs digest $DIGEST_fix, " "$OWNLOG"
	[ -f "$store/images/$DIGEST_fix" ]
}

@test "engine: fsck --repair restores an image imported from containers-storage from containers-storage, only the layers needed" {
	local one two
	fix_store
	one=$(fsverity digest --compact "$ENG/extra/data/one")
	two=$(fsverity digest --compact "$ENG/extra/data/two")
	jq -e --arg r "containers-storage:$REGISTRY/fix:1" '[.sources[] | select(.kind == "oci-layer" and .layout == $r)] | length == 1' "$store/provenance/$DIGEST_fix.json"
	stamps() { (cd "$store/objects" && find . -type f -printf '%P %i %T@\n' | sort); }
	stamps >"$BATS_TEST_TMPDIR/before"
	printf 'XYZ' | dd of="$store/objects/${one:0:2}/${one:2}" bs=1 seek=100 conv=notrunc status=none
	rm "$store/objects/${two:0:2}/${two:2}"
	run env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck "$DIGEST_fix"
	[ "$status" -eq 1 ]

	run --separate-stderr env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck --repair "$DIGEST_fix"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == "$DIGEST_fix: clean ("* ]]
	diffid=$(jq -r --arg n "$REGISTRY/fix:1" '.[] | select(.names[]? == $n) | .layer' "$ENG/storage/overlay-images/images.json")
	diffid=$(jq -r --arg l "$diffid" '.[] | select(.id == $l) | ."diff-digest"' "$ENG/storage/overlay-layers/layers.json")
	grep -qxF "fsck: repair needs layer $diffid of containers-storage:$REGISTRY/fix:1 (2 objects)" <<<"$stderr"
	grep -qxF "fsck: restored object $one from containers-storage:$REGISTRY/fix:1 (1 layers): layer 1 /data/one" <<<"$stderr"
	grep -qxF "fsck: restored object $two from containers-storage:$REGISTRY/fix:1 (1 layers): layer 1 /data/two" <<<"$stderr"
	[ "$(grep -c '^fsck: restored object ' <<<"$stderr")" -eq 2 ]
	[ "$(fsverity digest --compact "$store/objects/${one:0:2}/${one:2}")" = "$one" ]
	[ "$(fsverity digest --compact "$store/objects/${two:0:2}/${two:2}")" = "$two" ]
	# Every other object kept its inode and mtime.
	stamps >"$BATS_TEST_TMPDIR/after"
	[ "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/before")" = "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/after")" ]
	changed=$(diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after" | sed -n 's/^> \([^ ]*\) .*/\1/p' | sort)
	[ "$changed" = "$(printf '%s\n' "${one:0:2}/${one:2}" "${two:0:2}/${two:2}" | sort)" ]
	run env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck "$DIGEST_fix"
	[ "$status" -eq 0 ]
	[[ "$output" == "$DIGEST_fix: clean ("* ]]
}

@test "engine: fsck --repair refuses a containers-storage layer whose unpacked files changed: nothing restored from it" {
	local one top diffid
	fix_store
	one=$(fsverity digest --compact "$ENG/extra/data/one")
	rm "$store/objects/${one:0:2}/${one:2}"
	top=$(jq -r --arg n "$REGISTRY/fix:1" '.[] | select(.names[]? == $n) | .layer' "$ENG/storage/overlay-images/images.json")
	diffid=$(jq -r --arg l "$top" '.[] | select(.id == $l) | ."diff-digest"' "$ENG/storage/overlay-layers/layers.json")
	# Another file of the layer than the one needed: /data/one itself is
	# intact, but the layer is not what was imported.
	cp -a "$ENG/storage/overlay/$top/diff/data/name" "$BATS_TEST_TMPDIR/name"
	echo fiX >"$ENG/storage/overlay/$top/diff/data/name"
	run --separate-stderr env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck --repair "$DIGEST_fix"
	cp -a "$BATS_TEST_TMPDIR/name" "$ENG/storage/overlay/$top/diff/data/name"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"cfs-runtime: fsck: repair: source could not be read: containers-storage:$REGISTRY/fix:1 (1 layers): "*"containers-storage $ENG/storage: layer $top: blob does not match its digest: its tar rebuilt from the unpacked files has digest sha256:"*", but its diff_id is $diffid (a file of the layer was changed): nothing restored from it"* ]]
	run grep -c '^fsck: restored object ' <<<"$stderr"
	[ "$output" = 0 ]
	[ ! -e "$store/objects/${one:0:2}/${one:2}" ]
	run env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck "$DIGEST_fix"
	[ "$status" -eq 1 ]

	# The layer as imported again: repaired from it.
	run --separate-stderr env CFS_RUNTIME_CONFIG="$FIX_CONFIG" "$CFS_RUNTIME" fsck --repair "$DIGEST_fix"
	[ "$status" -eq 0 ]
	[[ "$output" == "$DIGEST_fix: clean ("* ]]
}
