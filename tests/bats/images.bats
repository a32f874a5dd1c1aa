#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $stderr and $stderr_lines
# Refs: every import keeps what it imported by a ref named after its
# source (or --ref); images shows each image's source and time; images rm
# removes refs by name, digest or unique digest prefix; gc keeps every
# imported image until its last ref is removed.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	requires_root
	STORE="$BATS_TEST_TMPDIR/store" # use_config's store_dir
	TREE="$BATS_TEST_TMPDIR/tree"
	make_rootfs "$TREE"
	head -c 3000 /dev/urandom >"$TREE/etc/data"
	use_config
}

# im_layout LAYOUT TREE: an OCI image layout with TREE as its one plain tar
# layer, named v1.
im_layout() {
	local layout=$1 tar d s cfg man
	mkdir -p "$layout/blobs/sha256"
	echo '{"imageLayoutVersion": "1.0.0"}' >"$layout/oci-layout"
	tar -C "$2" --numeric-owner -cf "$BATS_TEST_TMPDIR/layer.tar" .
	tar=$(sha256sum "$BATS_TEST_TMPDIR/layer.tar" | cut -d' ' -f1)
	cp "$BATS_TEST_TMPDIR/layer.tar" "$layout/blobs/sha256/$tar"
	s=$(stat -c %s "$BATS_TEST_TMPDIR/layer.tar")
	printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$tar" >"$BATS_TEST_TMPDIR/config.json"
	cfg=$(sha256sum "$BATS_TEST_TMPDIR/config.json" | cut -d' ' -f1)
	cp "$BATS_TEST_TMPDIR/config.json" "$layout/blobs/sha256/$cfg"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
		"$cfg" "$(stat -c %s "$BATS_TEST_TMPDIR/config.json")" "$tar" "$s" >"$BATS_TEST_TMPDIR/manifest.json"
	man=$(sha256sum "$BATS_TEST_TMPDIR/manifest.json" | cut -d' ' -f1)
	cp "$BATS_TEST_TMPDIR/manifest.json" "$layout/blobs/sha256/$man"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
		"$man" "$(stat -c %s "$BATS_TEST_TMPDIR/manifest.json")" >"$layout/index.json"
}

@test "import keeps every image by a ref named after its source; images shows SOURCE and CREATED" {
	IMG=$("$CFS_RUNTIME" import "$TREE")
	cp -a "$TREE" "$BATS_TEST_TMPDIR/tree2"
	echo two >"$BATS_TEST_TMPDIR/tree2/etc/two"
	# A relative path: the ref is the absolute one.
	IMG2=$(cd "$BATS_TEST_TMPDIR" && "$CFS_RUNTIME" import --ref mine tree2)
	im_layout "$BATS_TEST_TMPDIR/layout" "$TREE"
	OCI=$("$CFS_RUNTIME" import "oci:$BATS_TEST_TMPDIR/layout" 2>/dev/null)

	run --separate-stderr "$CFS_RUNTIME" images --json
	[ "$status" -eq 0 ]
	[ "$(jq -c --arg d "$IMG" '.[] | select(.digest == $d) | [.refs, .source, .refSources[0].source.kind]' <<<"$output")" = "[[\"$TREE\"],\"$TREE\",\"tree\"]" ]
	[ "$(jq -c --arg d "$IMG2" '.[] | select(.digest == $d) | [.refs, .source]' <<<"$output")" = "[[\"mine\"],\"$BATS_TEST_TMPDIR/tree2\"]" ]
	[ "$(jq -c --arg d "$OCI" '.[] | select(.digest == $d) | [.refs, .source, .refSources[0].source.kind]' <<<"$output")" = "[[\"oci:$BATS_TEST_TMPDIR/layout:v1\"],\"oci:$BATS_TEST_TMPDIR/layout:v1\",\"oci\"]" ]
	created=$(jq -r --arg d "$IMG" '.[] | select(.digest == $d) | .created' <<<"$output")
	[ $(($(date +%s) - $(date -d "$created" +%s))) -lt 60 ]

	run --separate-stderr "$CFS_RUNTIME" images
	[ "$status" -eq 0 ]
	[ "$(awk 'NR == 1 { $1 = $1; print }' <<<"$output")" = "DIGEST SIZE OBJECTS REFS SOURCE CREATED SEALED IN USE" ]
	row=$(grep "^$IMG2 " <<<"$output")
	[[ "$(echo $row)" =~ ^$IMG2\ [0-9.]+\ [KMG]?i?B\ [0-9]+\ mine\ $BATS_TEST_TMPDIR/tree2\ 20[0-9-]+T[0-9:]+Z\ -\ no$ ]]

	# Importing the tree unchanged keeps its ref and its time; a changed
	# tree moves the ref (the old image is then kept by nothing).
	sleep 1
	[ "$("$CFS_RUNTIME" import "$TREE")" = "$IMG" ]
	run "$CFS_RUNTIME" images --json
	[ "$(jq -r --arg d "$IMG" '.[] | select(.digest == $d) | .created' <<<"$output")" = "$created" ]
	echo changed >"$TREE/etc/changed"
	NEW=$("$CFS_RUNTIME" import "$TREE")
	[ "$NEW" != "$IMG" ]
	run "$CFS_RUNTIME" images --json
	[ "$(jq -c --arg d "$IMG" '.[] | select(.digest == $d) | .refs' <<<"$output")" = "[]" ]
	[ "$(jq -c --arg d "$NEW" '.[] | select(.digest == $d) | .refs' <<<"$output")" = "[\"$TREE\"]" ]
}

@test "gc keeps every imported image until its last ref is removed" {
	IMG=$("$CFS_RUNTIME" import "$TREE")
	"$CFS_RUNTIME" images tag "${IMG:0:8}" base:1
	run "$CFS_RUNTIME" gc
	[ "$status" -eq 0 ]
	[ "$output" = "removed 0 images, 0 objects (0 B), 0 provenance records, 0 layer records; kept 1 images" ]

	run --separate-stderr "$CFS_RUNTIME" images rm "$TREE"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "${lines[0]}" = "removed ref $TREE (image $IMG)" ]
	[ "${lines[1]}" = "image $IMG is still kept by ref base:1" ]
	[ "${lines[2]}" = "gc would now remove 0 images, 0 objects (0 B)" ]
	run "$CFS_RUNTIME" gc
	[ "$output" = "removed 0 images, 0 objects (0 B), 0 provenance records, 0 layer records; kept 1 images" ]

	run --separate-stderr "$CFS_RUNTIME" images rm base:1
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "removed ref base:1 (image $IMG)" ]
	[[ "${lines[1]}" == "gc would now remove 1 images, "*" objects ("*")" ]]
	[ "${#lines[@]}" -eq 2 ]
	run "$CFS_RUNTIME" gc
	[ "${lines[0]}" = "removed image $IMG" ]
	[ -z "$(ls -A "$STORE/images")" ]
	[ -z "$(find "$STORE/objects" -type f)" ]
}

@test "images rm by digest, digest prefix and ref; ambiguous and unknown arguments remove nothing" {
	IMG=$("$CFS_RUNTIME" import "$TREE")
	"$CFS_RUNTIME" images tag "sha256:$IMG" web
	# Two refs to digests not imported, sharing their first 5 hex digits.
	X=abcde$(printf '1%.0s' $(seq 59))
	Y=abcde$(printf '2%.0s' $(seq 59))
	"$CFS_RUNTIME" images tag "$X" x 2>/dev/null
	"$CFS_RUNTIME" images tag "$Y" y 2>/dev/null
	before=$(ls "$STORE/refs" | sort)

	run --separate-stderr "$CFS_RUNTIME" images rm abcde
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: images rm: ambiguous digest prefix: abcde matches 2 images; give more hex digits" ]
	run --separate-stderr "$CFS_RUNTIME" images rm web nope
	[ "$status" -eq 1 ]
	[ "$stderr" = 'cfs-runtime: images rm: no ref named "nope", and it is not a digest or a digest prefix (at least 4 lower-case hex digits)' ]
	run --separate-stderr "$CFS_RUNTIME" images rm web ffff0000
	[ "$status" -eq 1 ]
	[ "$stderr" = 'cfs-runtime: images rm: no ref or image "ffff0000": not in the store' ]
	run --separate-stderr "$CFS_RUNTIME" images rm
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: images rm: want at least one REF or IMAGE (usage: cfs-runtime images rm REF|IMAGE...)" ]
	[ "$(ls "$STORE/refs" | sort)" = "$before" ]

	# A prefix of one image removes all its refs.
	run --separate-stderr "$CFS_RUNTIME" images rm "${IMG:0:6}" abcde1
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "removed ref $TREE (image $IMG)" ]
	[ "${lines[1]}" = "removed ref web (image $IMG)" ]
	[ "${lines[2]}" = "removed ref x (image $X)" ]
	[[ "${lines[3]}" == "gc would now remove 1 images, "* ]]
	[ "$(ls "$STORE/refs")" = y ]
	# Again: nothing left to remove is said, not refused.
	run --separate-stderr "$CFS_RUNTIME" images rm "$IMG"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "image $IMG has no ref" ]
}

@test "fsck takes digest prefixes and ref names" {
	IMG=$("$CFS_RUNTIME" import --ref base "$TREE")
	"$CFS_RUNTIME" images tag abcde$(printf '1%.0s' $(seq 59)) x 2>/dev/null
	"$CFS_RUNTIME" images tag abcde$(printf '2%.0s' $(seq 59)) y 2>/dev/null
	for arg in "${IMG:0:4}" "sha256:${IMG:0:12}" base; do
		run --separate-stderr "$CFS_RUNTIME" fsck "$arg"
		[ "$status" -eq 0 ]
		[[ "$output" == "$IMG: clean ("* ]]
	done
	run --separate-stderr "$CFS_RUNTIME" fsck abcd
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: fsck: ambiguous digest prefix: abcd matches 2 images; give more hex digits" ]
	run --separate-stderr "$CFS_RUNTIME" fsck "${IMG:0:3}"
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: fsck: no ref named \"${IMG:0:3}\", and it is not a digest or a digest prefix (at least 4 lower-case hex digits)" ]
}

@test "refs of earlier versions (the digest alone) keep their images" {
	IMG=$("$CFS_RUNTIME" import --ref new "$TREE")
	# What images tag and import oci: wrote before sources were recorded.
	printf '%s\n' "$IMG" >"$STORE/refs/base:1"
	printf '%s\n' "$IMG" >"$STORE/refs/oci:%2Fsrv%2Flayout:v1"
	touch -d '2025-01-02 03:04:05 UTC' "$STORE/refs/base:1" "$STORE/refs/oci:%2Fsrv%2Flayout:v1"
	"$CFS_RUNTIME" images rm new >/dev/null
	run --separate-stderr "$CFS_RUNTIME" images --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '.[0].refSources | map([.name, .source.kind, .source.ref, .source.created])' <<<"$output")" = '[["base:1","tag","","2025-01-02T03:04:05Z"],["oci:/srv/layout:v1","oci","oci:/srv/layout:v1","2025-01-02T03:04:05Z"]]' ]
	run "$CFS_RUNTIME" gc
	[ "$output" = "removed 0 images, 0 objects (0 B), 0 provenance records, 0 layer records; kept 1 images" ]
	run "$CFS_RUNTIME" images rm base:1 oci:/srv/layout:v1
	[ "$status" -eq 0 ]
	run "$CFS_RUNTIME" gc
	[ "${lines[0]}" = "removed image $IMG" ]
}

@test "concurrent imports keep every ref" {
	local i
	for i in 1 2 3 4 5 6; do
		cp -a "$TREE" "$BATS_TEST_TMPDIR/t$i"
		echo "$i" >"$BATS_TEST_TMPDIR/t$i/etc/n"
	done
	for i in 1 2 3 4 5 6; do
		"$CFS_RUNTIME" import "$BATS_TEST_TMPDIR/t$i" >"$BATS_TEST_TMPDIR/d$i" &
	done
	wait
	run "$CFS_RUNTIME" images --json
	[ "$(jq -r '[.[].refs[]] | sort | join(" ")' <<<"$output")" = "$(for i in 1 2 3 4 5 6; do printf '%s ' "$BATS_TEST_TMPDIR/t$i"; done | sed 's/ $//')" ]
	run "$CFS_RUNTIME" gc
	[ "$output" = "removed 0 images, 0 objects (0 B), 0 provenance records, 0 layer records; kept 6 images" ]
}
