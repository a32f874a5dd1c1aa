#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $stderr and $stderr_lines
# OCI images: layouts written by real tools (podman save --format oci-dir,
# skopeo copy, umoci) → cfs-runtime import → cfs-runtime seal → podman run
# through cfs-runtime with the sealing annotations.
#
# Images come from a busybox-static rootfs (podman import) and a
# `podman build` on top of it whose layers have whiteouts, an opaque
# directory and a hardlink: no registry. The host has no fs-verity, so the
# policy uses enforcement "userspace", as the other host suites do.
# cfs-runtime's configuration reaches it through podman's
# --runtime-flag cfs-config=FILE: nothing is installed in /etc.

load helpers
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

# oci_podman ARGS...: podman with cfs-runtime and this suite's configuration.
oci_podman() {
	podman --runtime "$CFS_RUNTIME" --runtime-flag "cfs-config=$CONFIG" "$@"
}

# flip_byte FILE: change one byte in the middle of FILE.
flip_byte() {
	local off b
	off=$(($(stat -c %s "$1") / 2))
	b=$(od -An -tu1 -j "$off" -N1 "$1")
	# shellcheck disable=SC2059 # an octal escape built on purpose
	printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of="$1" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
}

# oci_rootfs DIR: make_rootfs plus the applets these tests' scripts use.
oci_rootfs() {
	make_rootfs "$1"
	local a
	for a in mkdir rm ln grep cut; do
		ln -sf busybox "$1/bin/$a"
	done
}

# layer_blob LAYOUT N: the blob of the Nth layer (1-based) of the layout's
# only image.
# umoci_app LAYOUT BUNDLE: a new layout with an empty image "app" unpacked
# into BUNDLE, whose rootfs then gets the busybox tree (to repack).
umoci_app() {
	umoci init --layout "$1"
	umoci new --image "$1:app"
	umoci unpack --image "$1:app" "$2"
	oci_rootfs "$2/rootfs"
}

layer_blob() {
	local m
	m=$(jq -r '.manifests[0].digest' "$1/index.json")
	echo "$1/blobs/sha256/$(jq -r ".layers[$(($2 - 1))].digest" "$1/blobs/sha256/${m#sha256:}" | cut -d: -f2)"
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	local tool
	for tool in podman skopeo umoci; do
		if ! command -v "$tool" >/dev/null; then
			if [ -n "${CI:-}" ]; then
				echo "$tool not installed (tests/install-deps.sh)" >&2
				return 1
			fi
			skip "$tool not installed (tests/install-deps.sh)"
		fi
	done
	if [ ! -x "$CFS_RUNTIME" ]; then
		echo "cfs-runtime binary $CFS_RUNTIME not found: build it or set CFS_RUNTIME" >&2
		return 1
	fi

	export KEYS="$BATS_FILE_TMPDIR/keys" STORE="$BATS_FILE_TMPDIR/store"
	export CONFIG="$BATS_FILE_TMPDIR/config.toml" OWNLOG="$BATS_FILE_TMPDIR/own.log"
	mkdir -p "$KEYS"
	make_key "$KEYS" seal
	write_policy "$KEYS/policy.toml" userspace reject "$KEYS/seal.pub"
	cat >"$CONFIG" <<-EOF
		policy = "$KEYS/policy.toml"
		store_dir = "$STORE"
		state_dir = "$BATS_FILE_TMPDIR/state"
		log_file = "$OWNLOG"
		audit_file = "$OWNLOG.audit"
		log_level = "debug"
	EOF

	# v1: a busybox-static rootfs imported from a tarball.
	local root=$BATS_FILE_TMPDIR/rootfs
	oci_rootfs "$root"
	echo hello >"$root/hello"
	tar -C "$root" --numeric-owner -cf "$BATS_FILE_TMPDIR/rootfs.tar" .
	export IMAGE=localhost/cfs-bats-oci/busybox:$$ IMAGE2=localhost/cfs-bats-oci/busybox:$$-2
	export UMOCI_IMAGE=localhost/cfs-bats-oci/umoci:$$
	podman import --change 'CMD ["/bin/sh"]' "$BATS_FILE_TMPDIR/rootfs.tar" "$IMAGE" >/dev/null
	# v2: two more layers: files later deleted (whiteouts), a directory
	# replaced (opaque), a hardlink.
	mkdir -p "$BATS_FILE_TMPDIR/build"
	cat >"$BATS_FILE_TMPDIR/build/Containerfile" <<-EOF
		FROM $IMAGE
		RUN ["/bin/sh", "-c", "mkdir -p /opq/sub /gone && echo x >/opq/x && echo y >/opq/sub/y && echo g >/gone/g && echo bye >/bye"]
		RUN ["/bin/sh", "-c", "rm -rf /opq /gone /bye && mkdir /opq && echo new >/opq/new && ln /bin/busybox /hl"]
	EOF
	podman build -q --pull=never "${ULIMITS[@]}" -t "$IMAGE2" "$BATS_FILE_TMPDIR/build" >/dev/null

	export LAYOUT="$BATS_FILE_TMPDIR/podman-save"
	podman save -q --format oci-dir -o "$LAYOUT" "$IMAGE2"
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	podman image unmount "${IMAGE2:-none}" >/dev/null 2>&1 || true
	local i
	for i in "${IMAGE2:-}" "${IMAGE:-}" "${UMOCI_IMAGE:-}"; do
		[ -z "$i" ] || podman rmi -f "$i" >/dev/null 2>&1 || true
	done
}

setup() {
	requires_root
}

teardown() {
	local name
	for name in $(podman ps -a --format '{{.Names}}' 2>/dev/null | grep "^cfs-bats-oci-$$-" || true); do
		podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
	done
}

@test "podman save → import → seal → podman run through cfs-runtime" {
	layout="$BATS_TEST_TMPDIR/layout"
	cp -a "$LAYOUT" "$layout"
	run --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "oci:$layout"
	echo "$stderr"
	[ "$status" -eq 0 ]
	digest=$output
	[ "${#digest}" -eq 64 ]
	[[ "$stderr" == *"layer 3/3 sha256:"*": processed ("* ]]
	[[ "$stderr" == *"imported oci:$layout (manifest sha256:"*") as oci:$layout:$IMAGE2: 3 layers, 3 read,"* ]]

	old_manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
	run --separate-stderr "$CFS_RUNTIME" seal --key "$KEYS/seal.key" "oci:$layout"
	echo "$stderr"
	[ "$status" -eq 0 ]
	flags=$output
	[[ "$flags" == "--annotation $DIGEST_KEY=$digest --annotation $DIGEST_KEY.cosign="* ]]
	new_manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
	[ "$new_manifest" != "$old_manifest" ]
	[ "$stderr" = "sealed oci:$layout: composefs digest sha256:$digest, manifest $new_manifest (was $old_manifest)" ]

	# The container's root is the composefs image: whiteouts applied, the
	# opaque directory holds only its new file, the hardlink shares its
	# inode with /bin/busybox.
	# shellcheck disable=SC2086,SC2016 # the flags are words; $f expands in the container
	run oci_podman run --rm "${ULIMITS[@]}" $flags "$IMAGE2" sh -c \
		'cat /hello /opq/new; ls /opq; for f in /bye /gone /opq/x; do [ -e $f ] && echo "$f is there"; done; [ "$(stat -c %i /hl)" = "$(stat -c %i /bin/busybox)" ] && echo hardlinked; grep "^composefs / overlay" /proc/mounts | cut -d" " -f1-3'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'hello\nnew\nnew\nhardlinked\ncomposefs / overlay')" ]
	grep -q "level=INFO msg=verified .*composefs digest sha256:$digest: cosign signature trusted by signer" "$OWNLOG"
	# create found the sealed image in the store by its digest: it did not
	# build one from podman's root filesystem.
	grep -q "msg=\"mounted composefs image\" .*image=$STORE/images/$digest" "$OWNLOG"
	run grep -c "imported bundle root filesystem" "$OWNLOG"
	[ "$output" = 0 ]
}

@test "podman's prepared root filesystem has another digest than the sealed image" {
	run --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "oci:$LAYOUT"
	[ "$status" -eq 0 ]
	sealed=$output
	mnt=$(podman image mount "$IMAGE2")
	run "$CFS_RUNTIME" digest "$mnt"
	prepared=$output
	# containers-storage makes the root directory itself (mode 0555, its
	# creation time with nanoseconds) instead of taking the layer's "./"
	# entry, so the digests differ: the store's image is found by digest.
	[ "$(stat -c %a "$mnt")" = 555 ]
	podman image unmount "$IMAGE2" >/dev/null
	[ "$status" -eq 0 ]
	[ "${#prepared}" -eq 64 ]
	[ "$prepared" != "$sealed" ]
}

@test "sealed but not imported: create imports podman's image from containers-storage, never from its root filesystem" {
	layout="$BATS_TEST_TMPDIR/layout"
	cp -a "$LAYOUT" "$layout"
	run --separate-stderr "$CFS_RUNTIME" seal --key "$KEYS/seal.key" "oci:$layout"
	[ "$status" -eq 0 ]
	flags=$output
	digest=$(sed -n "s/.*$DIGEST_KEY=\([0-9a-f]*\) .*/\1/p" <<<"$flags")
	# A configuration whose store does not have the image.
	sed "s|^store_dir = .*|store_dir = \"$BATS_TEST_TMPDIR/empty-store\"|" "$CONFIG" >"$BATS_TEST_TMPDIR/config.toml"
	# The unsealed image in podman's storage has the sealed layers.
	# shellcheck disable=SC2086 # the flags are words
	run podman --runtime "$CFS_RUNTIME" --runtime-flag "cfs-config=$BATS_TEST_TMPDIR/config.toml" run --rm "${ULIMITS[@]}" $flags "$IMAGE2" cat /hello
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = hello ]
	[ -f "$BATS_TEST_TMPDIR/empty-store/images/$digest" ]
	grep -q "msg=\"engine import\" .*step=\"imported containers-storage:[^ ]*: composefs digest $digest, manifest sha256:[0-9a-f]*, 3 of 3 layers read\"" "$OWNLOG"
}

@test "an image without the sealing annotations is refused" {
	run oci_podman run --rm "${ULIMITS[@]}" "$IMAGE2" true
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no composefs digest: no $DIGEST_KEY annotation"* ]]
}

@test "skopeo copy to oci: and oci-archive: gives the same image; no layer is read again" {
	run --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "oci:$LAYOUT"
	[ "$status" -eq 0 ]
	want=$output
	skopeo copy -q "containers-storage:$IMAGE2" "oci:$BATS_TEST_TMPDIR/skopeo:v2"
	skopeo copy -q "containers-storage:$IMAGE2" "oci-archive:$BATS_TEST_TMPDIR/skopeo.tar:v2"
	for ref in "oci:$BATS_TEST_TMPDIR/skopeo:v2" "oci-archive:$BATS_TEST_TMPDIR/skopeo.tar:v2"; do
		run --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "$ref"
		echo "$stderr"
		[ "$status" -eq 0 ]
		[ "$output" = "$want" ]
		# Layers are recorded by diff_id: however compressed, each was
		# read once.
		[ "$(grep -c ": already imported (" <<<"$stderr")" -eq 3 ]
		[[ "$stderr" == *": 3 layers, 0 read, 0 new objects" ]]
	done
	# Every layout the image came from is known (fsck repair sources).
	jq -e '[.sources[].layout] | index("oci-archive:'"$BATS_TEST_TMPDIR"'/skopeo.tar:v2") != null' "$STORE/provenance/$want.json"
}

@test "umoci: a new layer with a whiteout; sealed layout stays valid for umoci and skopeo; runs after skopeo copy" {
	u="$BATS_TEST_TMPDIR/umoci"
	b="$BATS_TEST_TMPDIR/bundle"
	umoci_app "$u" "$b"
	echo one >"$b/rootfs/one"
	echo two >"$b/rootfs/two"
	umoci repack --image "$u:app" "$b"
	# A layer on top: unpack the image as it is now, change, repack.
	umoci unpack --image "$u:app" "$b.2"
	rm "$b.2/rootfs/one"
	ln "$b.2/rootfs/two" "$b.2/rootfs/three"
	umoci repack --image "$u:app" "$b.2"
	# The second layer deletes /one with a whiteout.
	layers=$(jq -r '.manifests[0].digest' "$u/index.json")
	[ "$(jq '.layers | length' "$u/blobs/sha256/${layers#sha256:}")" -eq 2 ]
	zcat "$(layer_blob "$u" 2)" | tar t | grep -qx '\(\./\)\?\.wh\.one'

	run --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "oci:$u:app"
	echo "$stderr"
	[ "$status" -eq 0 ]
	digest=$output
	run "$CFS_RUNTIME" info dump "$STORE/images/$digest"
	[ "$status" -eq 0 ]
	[[ "$output" != *$'\n/one '* ]]
	[[ "$output" == *$'\n/three 4 @100644 2 '* ]] || [[ "$output" == *$'\n/two 4 @100644 2 '* ]]

	run --separate-stderr "$CFS_RUNTIME" seal --key "$KEYS/seal.key" "oci:$u:app"
	[ "$status" -eq 0 ]
	flags=$output
	umoci stat --image "$u:app" >/dev/null
	run skopeo inspect --raw "oci:$u:app"
	[ "$(jq -r ".annotations[\"$DIGEST_KEY\"]" <<<"$output")" = "$digest" ]

	skopeo copy -q "oci:$u:app" "containers-storage:$UMOCI_IMAGE"
	# shellcheck disable=SC2086 # the flags are words
	run oci_podman run --rm "${ULIMITS[@]}" $flags "$UMOCI_IMAGE" sh -c 'cat /two /three; [ -e /one ] || echo no-one'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'two\ntwo\nno-one')" ]
}

@test "a tampered layout is refused, naming the blob" {
	layout="$BATS_TEST_TMPDIR/tampered"
	cp -a "$LAYOUT" "$layout"
	blob=$(layer_blob "$layout" 2)
	flip_byte "$blob"
	store="$BATS_TEST_TMPDIR/store"
	run --separate-stderr "$CFS_RUNTIME" import --store "$store" "oci:$layout"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	# Layer 1 was read; layer 2's blob fails its digest: one line says so.
	[[ "${stderr_lines[0]}" == "layer 1/3 sha256:"*": processed ("* ]]
	[[ "${stderr_lines[1]}" == "cfs-runtime: import: oci:$layout: layer 2/3 blob sha256:$(basename "$blob"): blob does not match its digest: its content has digest sha256:"* ]]
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ -z "$(ls -A "$store/images")" ]
	# seal refuses it just the same and leaves the layout alone.
	before=$(cat "$layout/index.json")
	run "$CFS_RUNTIME" seal --key "$KEYS/seal.key" "oci:$layout"
	[ "$status" -eq 1 ]
	[[ "$output" == *"blob does not match its digest"* ]]
	[ "$(cat "$layout/index.json")" = "$before" ]
}

@test "igzip, when installed, decompresses layers to the same image as Go's inflate; a broken stream is refused" {
	command -v igzip >/dev/null || skip "no igzip (Debian's package isal; tests/install-deps.sh installs it)"
	u="$BATS_TEST_TMPDIR/umoci"
	b="$BATS_TEST_TMPDIR/bundle"
	umoci_app "$u" "$b"
	seq 1 20000 >"$b/rootfs/numbers"
	umoci repack --image "$u:app" "$b"
	# igzip through a wrapper that counts its runs.
	printf '#!/bin/sh\necho run >>"%s"\nexec igzip "$@"\n' "$BATS_TEST_TMPDIR/igzip.log" >"$BATS_TEST_TMPDIR/igzip"
	chmod +x "$BATS_TEST_TMPDIR/igzip"
	run --separate-stderr env CFS_RUNTIME_IGZIP=none "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/go" "oci:$u:app"
	[ "$status" -eq 0 ]
	want=$output
	run --separate-stderr env CFS_RUNTIME_IGZIP="$BATS_TEST_TMPDIR/igzip" "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/isal" "oci:$u:app"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$want" ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/igzip.log")" -eq 1 ]

	# The layer cut short, its digest and size made to match in the
	# manifest: the blob checks out, the stream does not.
	blob=$(layer_blob "$u" 1)
	head -c "$(($(stat -c %s "$blob") - 8))" "$blob" >"$blob.cut"
	new=$(sha256sum "$blob.cut" | cut -d' ' -f1)
	mv "$blob.cut" "$u/blobs/sha256/$new"
	m=$(jq -r '.manifests[0].digest' "$u/index.json")
	m=$u/blobs/sha256/${m#sha256:}
	jq --arg d "sha256:$new" --argjson s "$(stat -c %s "$u/blobs/sha256/$new")" '.layers[0].digest = $d | .layers[0].size = $s' "$m" >"$m.new"
	md=$(sha256sum "$m.new" | cut -d' ' -f1)
	mv "$m.new" "$u/blobs/sha256/$md"
	jq --arg d "sha256:$md" --argjson s "$(stat -c %s "$u/blobs/sha256/$md")" '.manifests[0].digest = $d | .manifests[0].size = $s' "$u/index.json" >"$u/index.new"
	mv "$u/index.new" "$u/index.json"
	run --separate-stderr env CFS_RUNTIME_IGZIP="$BATS_TEST_TMPDIR/igzip" "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/cut" "oci:$u:app"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"corrupt gzip stream: igzip: "* ]]
	[ ! -e "$BATS_TEST_TMPDIR/cut/images" ] || [ -z "$(ls "$BATS_TEST_TMPDIR/cut/images")" ]
}
