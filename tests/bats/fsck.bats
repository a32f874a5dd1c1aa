#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $stderr and $stderr_lines
# fsck, repair, gc and images on a host without fs-verity (objects are
# hashed in userspace; tests/vm/scenarios/70-fsck.sh proves the kernel
# path): damage is found exactly and named by path, repair rewrites only
# what was damaged, gc keeps what a ref or a container uses.

load helpers
bats_require_minimum_version 1.5.0

# fk_tree DIR: a tree whose objects are /data/one (300 bytes, also as
# /data/one-copy and /etc/one-link), /data/two (5000), /data/three
# (100000), /data/keep (2000) and the busybox binary.
fk_tree() {
	make_rootfs "$1"
	mkdir -p "$1/data"
	head -c 300 /dev/urandom >"$1/data/one"
	cp "$1/data/one" "$1/data/one-copy"
	ln "$1/data/one" "$1/etc/one-link"
	head -c 5000 /dev/urandom >"$1/data/two"
	head -c 100000 /dev/urandom >"$1/data/three"
	head -c 2000 /dev/urandom >"$1/data/keep"
}

# fk_digest FILE: its fs-verity digest (the reference tool's)
fk_digest() { fsverity digest --compact "$1"; }

# fk_obj DIGEST: its object's path in $STORE
fk_obj() { echo "$STORE/objects/${1:0:2}/${1:2}"; }

# fk_stamps: every object with its inode number and mtime (ns), sorted
fk_stamps() { (cd "$STORE/objects" && find . -type f -printf '%P %i %T@\n' | sort); }

setup() {
	requires_root
	STORE="$BATS_TEST_TMPDIR/store"
	TREE="$BATS_TEST_TMPDIR/tree"
	fk_tree "$TREE"
	D1=$(fk_digest "$TREE/data/one")
	D2=$(fk_digest "$TREE/data/two")
	D3=$(fk_digest "$TREE/data/three")
	use_config
}

teardown() {
	if [ -n "${GCPID:-}" ]; then
		kill "$GCPID" 2>/dev/null || true
		wait "$GCPID" 2>/dev/null || true
	fi
	cleanup_containers
	local m
	for m in $(awk -v d="$BATS_TEST_TMPDIR" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" || true
	done
}

# fk_damage: corrupt /data/one's object in place (same inode, same size),
# delete /data/two's, truncate /data/three's.
fk_damage() {
	local one
	one=$(fk_obj "$D1")
	printf 'XYZ' | dd of="$one" bs=1 seek=100 conv=notrunc status=none
	[ "$(stat -c %s "$one")" -eq 300 ]
	BAD1=$(fk_digest "$one")
	rm "$(fk_obj "$D2")"
	truncate -s 40000 "$(fk_obj "$D3")"
}

@test "fsck: a corrupted, a deleted and a truncated object, exactly, with the paths that use them: exit 1" {
	IMG=$("$CFS_RUNTIME" import --store "$STORE" "$TREE")
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --json "$IMG"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$(jq -r '.images[0].status' <<<"$output")" = clean ]
	objects=$(jq '.images[0].objects' <<<"$output")
	bytes=$(jq '.images[0].bytes' <<<"$output")

	fk_damage
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --json "$IMG"
	[ "$status" -eq 1 ]
	[ "$stderr" = "" ]
	want=$(jq -n --arg img "$IMG" --arg d1 "$D1" --arg d2 "$D2" --arg d3 "$D3" --arg bad "$BAD1" \
		--argjson objects "$objects" --argjson bytes "$bytes" '{images: [{
			image: $img, status: "damaged", objects: $objects, bytes: $bytes,
			missing: [{object: $d2, size: 5000, paths: ["/data/two"]}],
			corrupt: ([
				{object: $d1, size: 300, problem: ("content hashes to " + $bad), paths: ["/data/one", "/data/one-copy", "/etc/one-link"]},
				{object: $d3, size: 100000, problem: "size 40000, the image records 100000", paths: ["/data/three"]}
			] | sort_by(.paths[0])),
			unprotected: []}]}')
	diff <(jq -S . <<<"$want") <(jq -S '.images[0].corrupt |= sort_by(.paths[0]) | .' <<<"$output")

	# The text report says the same, one line per object.
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" "$IMG"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 4 ]
	[ "${lines[0]}" = "$IMG: damaged: 1 missing, 2 corrupt, 0 without fs-verity (of $objects objects)" ]
	[ "${lines[1]}" = "  missing $D2 (5000 bytes); used by /data/two" ]
	grep -qxF "  corrupt $D1 (300 bytes): content hashes to $BAD1; used by /data/one, /data/one-copy, /etc/one-link" <<<"$output"
	grep -qxF "  corrupt $D3 (100000 bytes): size 40000, the image records 100000; used by /data/three" <<<"$output"

	# --all finds it too; an image not in the store cannot be checked (2).
	run "$CFS_RUNTIME" fsck --store "$STORE" --all
	[ "$status" -eq 1 ]
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" "$IMG" "$(printf '%064d' 0)"
	[ "$status" -eq 2 ]
	[ "${lines[-1]}" = "$(printf '%064d' 0): could not be checked: image $(printf '%064d' 0): not in the store" ]
}

@test "fsck --repair from the original tree restores exactly those three; the others keep inode and mtime" {
	IMG=$("$CFS_RUNTIME" import --store "$STORE" "$TREE")
	fk_stamps >"$BATS_TEST_TMPDIR/before"
	fk_damage
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair --source "$TREE" "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == "$IMG: clean ("* ]]
	[ "$(grep -c '^fsck: restored object ' <<<"$stderr")" -eq 3 ]
	grep -qxF "fsck: restored object $D2 from tree $TREE: /data/two" <<<"$stderr"
	grep -qxF "fsck: restored object $D3 from tree $TREE: /data/three" <<<"$stderr"
	grep -qE "^fsck: restored object $D1 from tree $TREE: /(data/one|data/one-copy|etc/one-link)$" <<<"$stderr"

	fk_stamps >"$BATS_TEST_TMPDIR/after"
	# Every object is there again; exactly the three damaged ones changed.
	[ "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/before")" = "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/after")" ]
	changed=$(diff <(cat "$BATS_TEST_TMPDIR/before") <(cat "$BATS_TEST_TMPDIR/after") | sed -n 's/^> \([^ ]*\) .*/\1/p' | sort)
	[ "$changed" = "$(printf '%s\n' "${D1:0:2}/${D1:2}" "${D2:0:2}/${D2:2}" "${D3:0:2}/${D3:2}" | sort)" ]
	for d in "$D1" "$D2" "$D3"; do
		[ "$(fk_digest "$(fk_obj "$d")")" = "$d" ]
	done
	[ -z "$(ls -A "$STORE/tmp")" ]
	run "$CFS_RUNTIME" fsck --store "$STORE" "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == "$IMG: clean ("* ]]
}

@test "fsck --repair without --source reads the tree the import recorded" {
	IMG=$("$CFS_RUNTIME" import --store "$STORE" "$TREE")
	fk_damage
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair --json "$IMG"
	[ "$status" -eq 0 ]
	[ "$(sed -n 1p <<<"$stderr")" = "fsck: repair needs tree $TREE (3 objects)" ]
	[ "$(jq -c '[.repair.restored[].object] | sort' <<<"$output")" = "$(jq -nc --arg a "$D1" --arg b "$D2" --arg c "$D3" '[$a, $b, $c] | sort')" ]
	[ "$(jq -r '.images[0].status' <<<"$output")" = clean ]

	# The tree moved away: the repair says which tree it needs; exit 1.
	fk_damage
	mv "$TREE" "$TREE.moved"
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair "$IMG"
	[ "$status" -eq 1 ]
	grep -qxF "fsck: repair needs tree $TREE (3 objects)" <<<"$stderr"
	grep -qxF "cfs-runtime: fsck: recorded tree: stat $TREE: no such file or directory" <<<"$stderr"
	# ... and a layer's tar file does as well as the tree.
	tar -C "$TREE.moved" -cf "$BATS_TEST_TMPDIR/layer.tar" .
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair --source "$BATS_TEST_TMPDIR/layer.tar" "$IMG"
	[ "$status" -eq 0 ]
	grep -qxF "fsck: restored object $D2 from tar $BATS_TEST_TMPDIR/layer.tar: /data/two" <<<"$stderr"
	run "$CFS_RUNTIME" fsck --store "$STORE" "$IMG"
	[ "$status" -eq 0 ]
}

@test "fsck: usage errors exit 2" {
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE"
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: fsck: no image given (usage: cfs-runtime fsck [--repair [--source SRC]...] IMAGE...|--all)" ]
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --source "$TREE" "$(printf '%064d' 0)"
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: fsck: --source is only for --repair" ]
}

# gc_signed_bundle DIR: a bundle whose rootfs is $TREE plus ARGS, signed
# with the key use_config's policy trusts; sets BDIGEST.
gc_signed_bundle() {
	make_bundle "$1" sleep 100
	rm -rf "$1/rootfs"
	cp -a "$TREE" "$1/rootfs"
	echo container >"$1/rootfs/etc/role"
	BDIGEST=$("$CFS_RUNTIME" digest "$1/rootfs")
	local ann
	ann=$("$CFS_RUNTIME" sign --key "$BATS_TEST_TMPDIR/keys/allow.key" --format json "$BDIGEST")
	jq --argjson a "$ann" '.annotations = $a' "$1/config.json" >"$1/config.json.new"
	mv "$1/config.json.new" "$1/config.json"
}

@test "gc keeps what a ref or a container uses and removes the rest; images lists them" {
	STORE="$BATS_TEST_TMPDIR/store" # use_config's store_dir
	gc_signed_bundle "$BATS_TEST_TMPDIR/bundle"
	id=$(cid gc)
	"$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/bundle" "$id" </dev/null >/dev/null 2>&1
	[ "$(jq -r .digest "$BATS_TEST_TMPDIR/state/$id/state.json")" = "$BDIGEST" ]
	TAGGED=$("$CFS_RUNTIME" import "$TREE")
	"$CFS_RUNTIME" images tag "$TAGGED" base:1
	mkdir -p "$BATS_TEST_TMPDIR/other/data"
	head -c 7000 /dev/urandom >"$BATS_TEST_TMPDIR/other/data/unique"
	UNUSED=$("$CFS_RUNTIME" import "$BATS_TEST_TMPDIR/other")
	UNIQUE=$(fk_digest "$BATS_TEST_TMPDIR/other/data/unique")
	# Every import keeps its image by a ref named after the tree: remove
	# the other tree's.
	"$CFS_RUNTIME" images rm "$BATS_TEST_TMPDIR/other" >/dev/null

	run "$CFS_RUNTIME" images --json
	[ "$status" -eq 0 ]
	[ "$(jq -c --arg d "$BDIGEST" '.[] | select(.digest == $d) | [.refs, .containers, .inUse]' <<<"$output")" = "[[],[\"$id\"],true]" ]
	[ "$(jq -c --arg d "$TAGGED" '.[] | select(.digest == $d) | [.refs, .containers, .inUse]' <<<"$output")" = "[[\"$TREE\",\"base:1\"],[],false]" ]
	[ "$(jq -c --arg d "$UNUSED" '.[] | select(.digest == $d) | [.refs, .objects, .inUse]' <<<"$output")" = '[[],1,false]' ]

	run --separate-stderr "$CFS_RUNTIME" gc
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "removed image $UNUSED" ]
	[[ "${lines[1]}" == "removed 1 images, 2 objects ("*"), 1 provenance records, 0 layer records; kept 2 images" ]]
	[ ! -e "$STORE/images/$UNUSED" ]
	[ ! -e "$(fk_obj "$UNUSED")" ]
	[ ! -e "$(fk_obj "$UNIQUE")" ]
	[ ! -e "$STORE/provenance/$UNUSED.json" ]
	run "$CFS_RUNTIME" fsck --all
	[ "$status" -eq 0 ]
	[ "$(grep -c ': clean (' <<<"$output")" -eq 2 ]
	# The container still reads its root.
	[ "$(cat "$BATS_TEST_TMPDIR/state/$id/merged/etc/role")" = container ]

	# Once the container is gone its image goes (the tagged one stays);
	# the objects both used stay with the tagged one.
	"$CFS_RUNTIME" delete "$id"
	run "$CFS_RUNTIME" gc --dry-run
	[ "${lines[0]}" = "would remove image $BDIGEST" ]
	[ -e "$STORE/images/$BDIGEST" ]
	run "$CFS_RUNTIME" gc
	[ "${lines[0]}" = "removed image $BDIGEST" ]
	run "$CFS_RUNTIME" fsck --all
	[ "$status" -eq 0 ]
	[ "$output" = "$(sed -n 1p <<<"$output")" ] # one image left
	[[ "$output" == "$TAGGED: clean ("* ]]
	# Untagged, it stays while the import's ref keeps it; then it goes
	# too, and the store is empty.
	"$CFS_RUNTIME" images untag base:1
	run "$CFS_RUNTIME" gc
	[[ "$output" == "removed 0 images, "* ]]
	"$CFS_RUNTIME" images rm "$TREE" >/dev/null
	"$CFS_RUNTIME" gc
	[ -z "$(ls -A "$STORE/images")" ]
	[ -z "$(find "$STORE/objects" -type f)" ]
}

@test "an import running during gc loses nothing" {
	# The first import's ref is removed: gc removes it and its objects. The
	# second imports the same files and more while gc runs in a loop; a ref
	# set before it exists keeps it. Without the store lock the second
	# import could find an object present that gc then removes.
	local round
	for round in 1 2 3; do
		STORE="$BATS_TEST_TMPDIR/store-$round"
		FIRST=$("$CFS_RUNTIME" import --store "$STORE" "$TREE")
		"$CFS_RUNTIME" images rm --store "$STORE" "$TREE" >/dev/null
		cp -a "$TREE" "$BATS_TEST_TMPDIR/tree2-$round"
		for i in $(seq 300); do
			printf 'file %04d of round %d %0100d\n' "$i" "$round" 0 >"$BATS_TEST_TMPDIR/tree2-$round/data/f$i"
		done
		SECOND=$("$CFS_RUNTIME" digest "$BATS_TEST_TMPDIR/tree2-$round")
		"$CFS_RUNTIME" images --store "$STORE" tag "$SECOND" second 2>/dev/null
		# (bounded, and stopped by teardown should the test fail first)
		(
			for _ in $(seq 1000); do
				[ ! -e "$BATS_TEST_TMPDIR/stop-$round" ] || exit 0
				"$CFS_RUNTIME" gc --store "$STORE" >/dev/null || { echo "gc failed" >"$BATS_TEST_TMPDIR/gc-failed-$round"; exit 1; }
			done
		) &
		GCPID=$!
		got=$("$CFS_RUNTIME" import --store "$STORE" "$BATS_TEST_TMPDIR/tree2-$round")
		touch "$BATS_TEST_TMPDIR/stop-$round"
		wait "$GCPID"
		GCPID=
		[ ! -e "$BATS_TEST_TMPDIR/gc-failed-$round" ]
		[ "$got" = "$SECOND" ]
		run "$CFS_RUNTIME" fsck --store "$STORE" "$SECOND"
		[ "$status" -eq 0 ]
		"$CFS_RUNTIME" gc --store "$STORE" >/dev/null
		[ ! -e "$STORE/images/$FIRST" ]
		run "$CFS_RUNTIME" fsck --store "$STORE" --all
		[ "$status" -eq 0 ]
		[[ "$output" == "$SECOND: clean ("* ]]
	done
}

# fk_blob LAYOUT FILE: store FILE as a blob of LAYOUT; prints "DIGEST SIZE"
fk_blob() {
	local d
	d=$(sha256sum "$2" | cut -d' ' -f1)
	cp "$2" "$1/blobs/sha256/$d"
	echo "sha256:$d $(stat -c %s "$2")"
}

# fk_layout LAYOUT TREE...: an OCI image layout with one plain tar layer per
# TREE (in order), tagged v1.
fk_layout() {
	local layout=$1 t n=0 layers='[]' diffs='[]' d s
	shift
	mkdir -p "$layout/blobs/sha256"
	echo '{"imageLayoutVersion": "1.0.0"}' >"$layout/oci-layout"
	for t in "$@"; do
		n=$((n + 1))
		tar -C "$t" --owner=0 --group=0 -cf "$BATS_TEST_TMPDIR/layer$n.tar" .
		read -r d s < <(fk_blob "$layout" "$BATS_TEST_TMPDIR/layer$n.tar")
		layers=$(jq -c --arg d "$d" --argjson s "$s" '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $d, size: $s}]' <<<"$layers")
		diffs=$(jq -c --arg d "$d" '. + [$d]' <<<"$diffs")
	done
	jq -n --argjson diffs "$diffs" '{architecture: "amd64", os: "linux", config: {}, rootfs: {type: "layers", diff_ids: $diffs}}' >"$BATS_TEST_TMPDIR/config.json"
	read -r d s < <(fk_blob "$layout" "$BATS_TEST_TMPDIR/config.json")
	jq -n --arg d "$d" --argjson s "$s" --argjson layers "$layers" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $d, size: $s}, layers: $layers}' >"$BATS_TEST_TMPDIR/manifest.json"
	read -r d s < <(fk_blob "$layout" "$BATS_TEST_TMPDIR/manifest.json")
	jq -n --arg d "$d" --argjson s "$s" '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
		digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "v1"}}]}' >"$layout/index.json"
}

@test "fsck --repair of an OCI import reads only the layers the damaged objects came from" {
	mkdir -p "$BATS_TEST_TMPDIR/upper/data"
	head -c 9000 /dev/urandom >"$BATS_TEST_TMPDIR/upper/data/upper"
	DU=$(fk_digest "$BATS_TEST_TMPDIR/upper/data/upper")
	fk_layout "$BATS_TEST_TMPDIR/layout" "$TREE" "$BATS_TEST_TMPDIR/upper"
	IMG=$("$CFS_RUNTIME" import --store "$STORE" "oci:$BATS_TEST_TMPDIR/layout:v1" 2>/dev/null)
	run "$CFS_RUNTIME" fsck --store "$STORE" "$IMG"
	[ "$status" -eq 0 ]
	diff2=$(sha256sum "$BATS_TEST_TMPDIR/layer2.tar" | cut -d' ' -f1)
	rm "$(fk_obj "$DU")"
	# The base layer's blob is damaged too: a repair that read it would fail.
	printf 'XX' | dd of="$BATS_TEST_TMPDIR/layout/blobs/sha256/$(sha256sum "$BATS_TEST_TMPDIR/layer1.tar" | cut -d' ' -f1)" bs=1 seek=5000 conv=notrunc status=none
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair "$IMG"
	[ "$status" -eq 0 ]
	[ "${stderr_lines[0]}" = "fsck: repair needs layer sha256:$diff2 of oci:$BATS_TEST_TMPDIR/layout:v1 (1 objects)" ]
	[ "${stderr_lines[1]}" = "fsck: restored object $DU from oci:$BATS_TEST_TMPDIR/layout:v1 (1 layers): layer 2 /data/upper" ]
	[[ "$output" == "$IMG: clean ("* ]]
}

@test "sha512 images: import --hash sha512, fsck finds the damage, repair restores it" {
	IMG=$("$CFS_RUNTIME" import --store "$STORE" --hash sha512 "$TREE")
	[ "${#IMG}" -eq 128 ]
	[ "$IMG" = "$("$CFS_RUNTIME" digest --hash sha512 "$TREE")" ]
	# Named as composefs-rs names them: objects/XX/ and 126 more digits.
	[ "$(fsverity digest --compact --hash-alg=sha512 "$(fk_obj "$IMG")")" = "$IMG" ]
	S1=$(fsverity digest --compact --hash-alg=sha512 "$TREE/data/one")
	S2=$(fsverity digest --compact --hash-alg=sha512 "$TREE/data/two")
	[ "$(fsverity digest --compact --hash-alg=sha512 "$(fk_obj "$S1")")" = "$S1" ]
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" "${IMG:0:8}"
	[ "$status" -eq 0 ]
	[[ "$output" == "$IMG: clean ("* ]]

	printf 'XYZ' | dd of="$(fk_obj "$S1")" bs=1 seek=100 conv=notrunc status=none
	rm "$(fk_obj "$S2")"
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --json "$IMG"
	[ "$status" -eq 1 ]
	[ "$(jq -c '.images[0] | [.status, [.corrupt[].object], [.missing[].object], .missing[0].paths]' <<<"$output")" = "[\"damaged\",[\"$S1\"],[\"$S2\"],[\"/data/two\"]]" ]
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair "$IMG"
	[ "$status" -eq 0 ]
	grep -qxF "fsck: restored object $S2 from tree $TREE: /data/two" <<<"$stderr"
	[ "$(fsverity digest --compact --hash-alg=sha512 "$(fk_obj "$S1")")" = "$S1" ]
}

@test "sha512 OCI import: seal --hash sha512 signs its digest; repair reads only the layer the damaged object came from" {
	mkdir -p "$BATS_TEST_TMPDIR/upper/data"
	head -c 9000 /dev/urandom >"$BATS_TEST_TMPDIR/upper/data/upper"
	SU=$(fsverity digest --compact --hash-alg=sha512 "$BATS_TEST_TMPDIR/upper/data/upper")
	fk_layout "$BATS_TEST_TMPDIR/layout" "$TREE" "$BATS_TEST_TMPDIR/upper"
	IMG=$("$CFS_RUNTIME" import --store "$STORE" --hash sha512 "oci:$BATS_TEST_TMPDIR/layout:v1" 2>/dev/null)
	[ "${#IMG}" -eq 128 ]
	[ -f "$(fk_obj "$SU")" ]
	run --separate-stderr "$CFS_RUNTIME" seal --key "$BATS_TEST_TMPDIR/keys/allow.key" --hash sha512 --format annotations "oci:$BATS_TEST_TMPDIR/layout:v1"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "composefs.merged.erofs.v1.fsverity-sha512-12=$IMG" ]
	diff2=$(sha256sum "$BATS_TEST_TMPDIR/layer2.tar" | cut -d' ' -f1)
	rm "$(fk_obj "$SU")"
	run --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair "$IMG"
	[ "$status" -eq 0 ]
	[ "${stderr_lines[0]}" = "fsck: repair needs layer sha256:$diff2 of oci:$BATS_TEST_TMPDIR/layout:v1 (1 objects)" ]
	[ "${stderr_lines[1]}" = "fsck: restored object $SU from oci:$BATS_TEST_TMPDIR/layout:v1 (1 layers): layer 2 /data/upper" ]
	[[ "$output" == "$IMG: clean ("* ]]
}
