#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $output, $stderr and $lines
# Registries: cfs-runtime import/seal/fsck --repair against a real registry
# (Debian's docker-registry, the CNCF distribution registry 2.8) on
# 127.0.0.1, started by registry.bash with its access log on, so that the
# tests count the blob GETs each command made. Images are built with umoci
# and pushed with skopeo: no podman, no network.

load helpers
load registry
bats_require_minimum_version 1.5.0

# image_layers REPO:TAG: the layer blob digests of an image pushed to the
# registry, in order (from the manifest skopeo reads).
image_layers() {
	skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1" | jq -r '.layers[].digest'
}

# blob_gets DIGEST...: the GET counts of those blobs, space separated.
blob_gets() {
	local d out=()
	for d in "$@"; do
		out+=("$(registry_blob_gets "$d")")
	done
	echo "${out[*]}"
}

# layer_objects STORE IMAGE BLOB: the objects the layer with that blob
# provided to the image (its provenance).
layer_objects() {
	jq -r --arg b "$3" '.sources[] | select(.blob == $b) | .objects[]' "$1/provenance/$2.json"
}

# object_path STORE HEX
object_path() {
	echo "$1/objects/${2:0:2}/${2:2}"
}

# add_layer LAYOUT FROM TO CMDS: a new image TO in LAYOUT: FROM's layers
# plus one layer with what the shell commands CMDS (run in the rootfs) do.
add_layer() {
	local layout=$1 from=$2 to=$3 cmds=$4 b
	b=$(mktemp -d "$BATS_FILE_TMPDIR/bundle.XXXXXX")
	rmdir "$b"
	umoci unpack --image "$layout:$from" "$b" >/dev/null
	(cd "$b/rootfs" && sh -c "$cmds")
	umoci repack --image "$layout:$to" "$b" >/dev/null
	rm -rf "$b"
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	local tool
	for tool in skopeo umoci jq docker-registry; do
		command -v "$tool" >/dev/null || [ -x "/usr/bin/$tool" ] || skip "$tool not installed (tests/install-deps.sh)"
	done
	[ -x "$CFS_RUNTIME" ] || {
		echo "cfs-runtime binary $CFS_RUNTIME not found: build it or set CFS_RUNTIME" >&2
		return 1
	}
	# Images: v1 = a busybox rootfs; v2 = v1 + a layer; v3 = v2 + a layer;
	# solo = its own single layer (corrupted in the registry by one test).
	export LAYOUT=$BATS_FILE_TMPDIR/layout
	umoci init --layout "$LAYOUT"
	umoci new --image "$LAYOUT:empty"
	add_layer "$LAYOUT" empty v1 "mkdir -p bin etc && cp $BUSYBOX bin/busybox && ln -s busybox bin/sh && echo hello >etc/hello && head -c 200000 /dev/urandom >etc/base.bin"
	add_layer "$LAYOUT" v1 v2 "head -c 150000 /dev/urandom >etc/two.bin && echo two >etc/two"
	add_layer "$LAYOUT" v2 v3 "head -c 120000 /dev/urandom >etc/three.bin && rm etc/hello"
	add_layer "$LAYOUT" empty solo "mkdir etc && head -c 90000 /dev/urandom >etc/solo.bin"

	registry_start
	export FILE_REGISTRY_PID=$REGISTRY_PID
	local t
	for t in v1 v2 v3 solo; do
		registry_push "oci:$LAYOUT:$t" "img:$t"
	done
	# What import oci: makes of the same images: the digests to expect.
	local s=$BATS_FILE_TMPDIR/ocistore
	for t in v1 v2 v3; do
		"$CFS_RUNTIME" import --store "$s" "oci:$LAYOUT:$t" >"$BATS_FILE_TMPDIR/digest.$t" 2>/dev/null
	done
}

teardown_file() {
	REGISTRY_PID=${FILE_REGISTRY_PID:-} registry_stop
}

setup() {
	requires_root
	STORE=$BATS_TEST_TMPDIR/store
}

teardown() {
	# A registry a test started for itself (TLS, auth).
	if [ -n "${REGISTRY_PID:-}" ] && [ "$REGISTRY_PID" != "${FILE_REGISTRY_PID:-}" ]; then
		registry_stop
	fi
}

@test "import docker:// gives the digest import oci: gives, keeps a ref and records the registry" {
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:v2"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v2")" ]
	[[ "$stderr" == *"imported docker://$REGISTRY/img:v2"* ]]
	# Not a terminal: no progress bar, one line per layer.
	[[ "$stderr" != *$'\r'* ]]
	d=$output
	# The ref (refs: see #17 item 5) and the provenance: the repository
	# pinned to the manifest digest, each layer's blob.
	[ "$(cat "$STORE/refs/docker:%2F%2F$REGISTRY%2Fimg:v2")" = "$d" ]
	manifest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/img:v2")
	run -0 jq -r '.sources[] | .layout + " " + .blob' "$STORE/provenance/$d.json"
	mapfile -t blobs < <(image_layers img:v2)
	[ "${lines[0]}" = "docker://$REGISTRY/img@$manifest ${blobs[0]}" ]
	[ "${lines[1]}" = "docker://$REGISTRY/img@$manifest ${blobs[1]}" ]
	# By digest too.
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s2" --tls-verify=false "docker://$REGISTRY/img@$manifest"
	[ "$output" = "$d" ]
}

@test "import docker:// of an image sharing its base layer fetches only the new layer" {
	mapfile -t blobs < <(image_layers img:v3)
	before=$(blob_gets "${blobs[@]}")
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:v1"
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false --json "docker://$REGISTRY/img:v3"
	[ "$(jq -r .digest <<<"$output")" = "$(cat "$BATS_FILE_TMPDIR/digest.v3")" ]
	[ "$(jq -c '[.layers_fetched, .layers_skipped, [.layers[].fetched]]' <<<"$output")" = '[2,1,[false,true,true]]' ]
	[ "$(jq -r .bytes <<<"$output")" -gt 270000 ]
	[ "$(jq -r .objects_new <<<"$output")" -ge 3 ]
	read -r b1 b2 b3 <<<"$before"
	[ "$(blob_gets "${blobs[@]}")" = "$((b1 + 1)) $((b2 + 1)) $((b3 + 1))" ]
	# Again: nothing fetched but the manifest and config.
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false --json "docker://$REGISTRY/img:v3"
	[ "$(jq -c '[.layers_fetched, .layers_skipped, .bytes]' <<<"$output")" = '[0,3,0]' ]
	[ "$(blob_gets "${blobs[@]}")" = "$((b1 + 1)) $((b2 + 1)) $((b3 + 1))" ]
}

@test "import docker:// reuses layers an oci: import recorded" {
	mapfile -t blobs < <(image_layers img:v3)
	before=$(blob_gets "${blobs[@]}")
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" "oci:$LAYOUT:v2"
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false --json "docker://$REGISTRY/img:v3"
	[ "$(jq -c '[.layers_fetched, .layers_skipped]' <<<"$output")" = '[1,2]' ]
	read -r b1 b2 b3 <<<"$before"
	[ "$(blob_gets "${blobs[@]}")" = "$b1 $b2 $((b3 + 1))" ]
}

@test "import docker:// refuses a layer blob the registry serves corrupted, naming it, committing nothing" {
	mapfile -t blobs < <(image_layers img:solo)
	f=$(registry_blob_file "${blobs[0]}")
	cp "$f" "$BATS_TEST_TMPDIR/blob.orig"
	off=$(($(stat -c %s "$f") / 2))
	printf 'X' | dd of="$f" bs=1 seek="$off" conv=notrunc 2>/dev/null
	run -1 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:solo"
	cp "$BATS_TEST_TMPDIR/blob.orig" "$f"
	[ "${#stderr_lines[@]}" -ge 1 ]
	[[ "${stderr_lines[-1]}" == *"layer 1/1 blob ${blobs[0]}"* ]]
	[[ "${stderr_lines[-1]}" == *"blob does not match its digest"* ]]
	[ -z "$output" ]
	[ -z "$(ls -A "$STORE/images" 2>/dev/null)" ]
	[ -z "$(ls -A "$STORE/refs" 2>/dev/null)" ]
	[ -z "$(ls -A "$STORE/layers" 2>/dev/null)" ]
	# The intact blob imports.
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:solo"
}

@test "fsck --repair re-fetches from the registry exactly the layers holding damaged objects" {
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:v3"
	d=$output
	mapfile -t blobs < <(image_layers img:v3)
	# Corrupt an object of layer 1, delete one of layer 3.
	o1=$(layer_objects "$STORE" "$d" "${blobs[0]}" | head -1)
	o3=$(layer_objects "$STORE" "$d" "${blobs[2]}" | head -1)
	[ -n "$o1" ] && [ -n "$o3" ]
	f1=$(object_path "$STORE" "$o1")
	chmod u+w "$f1"
	printf 'X' | dd of="$f1" bs=1 seek=100 conv=notrunc 2>/dev/null
	rm "$(object_path "$STORE" "$o3")"
	# Every other object: inode and mtime.
	others() {
		find "$STORE/objects" -type f ! -name "${o1:2}" ! -name "${o3:2}" -printf '%p %i %T@\n' | sort
	}
	others >"$BATS_TEST_TMPDIR/before"
	run -1 "$CFS_RUNTIME" fsck --store "$STORE" "$d"
	before=$(blob_gets "${blobs[@]}")
	run -0 --separate-stderr "$CFS_RUNTIME" fsck --store "$STORE" --repair --tls-verify=false "$d"
	[[ "$stderr" == *"restored object $o1 from docker://$REGISTRY/img@sha256:"* ]]
	[[ "$stderr" == *"restored object $o3 from docker://$REGISTRY/img@sha256:"* ]]
	read -r b1 b2 b3 <<<"$before"
	[ "$(blob_gets "${blobs[@]}")" = "$((b1 + 1)) $b2 $((b3 + 1))" ]
	run -0 "$CFS_RUNTIME" fsck --store "$STORE" "$d"
	others >"$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	# --source docker://REF: all layers of that image.
	rm "$(object_path "$STORE" "$o3")"
	run -0 "$CFS_RUNTIME" fsck --store "$STORE" --repair --tls-verify=false --source "docker://$REGISTRY/img:v3" "$d"
	run -0 "$CFS_RUNTIME" fsck --store "$STORE" "$d"
}

@test "auth: credentials from auth.json (as skopeo uses it) and --authfile; a wrong password is one line naming the registry" {
	registry_start --auth "cfsuser:s3cret"
	registry_push "oci:$LAYOUT:v1" img:v1
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false --authfile "$REGISTRY_AUTHFILE" "docker://$REGISTRY/img:v1"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
	# Where podman looks: ${XDG_RUNTIME_DIR}/containers/auth.json.
	mkdir -p "$BATS_TEST_TMPDIR/xdg/containers"
	cp "$REGISTRY_AUTHFILE" "$BATS_TEST_TMPDIR/xdg/containers/auth.json"
	XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/xdg run -0 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s2" --tls-verify=false "docker://$REGISTRY/img:v1"
	# No credentials.
	mkdir -p "$BATS_TEST_TMPDIR/none"
	XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/none HOME=$BATS_TEST_TMPDIR run -1 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s3" --tls-verify=false "docker://$REGISTRY/img:v1"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: import: registry $REGISTRY: authentication required"* ]]
	# A wrong password.
	printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$(printf cfsuser:wrong | base64 -w0)" >"$BATS_TEST_TMPDIR/wrong.json"
	run -1 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s3" --tls-verify=false --authfile "$BATS_TEST_TMPDIR/wrong.json" "docker://$REGISTRY/img:v1"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: import: registry $REGISTRY: the credentials were refused (check auth.json or --authfile)"* ]]
	[ -z "$(ls -A "$BATS_TEST_TMPDIR/s3/images" 2>/dev/null)" ]
}

@test "TLS: --cert-dir trusts the registry's CA; without it a one-line error says to use --cert-dir or --tls-verify=false" {
	registry_start --tls
	registry_push "oci:$LAYOUT:v1" img:v1
	: >"$BATS_TEST_TMPDIR/empty.conf"
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --registries-conf "$BATS_TEST_TMPDIR/empty.conf" --cert-dir "$REGISTRY_CERT_DIR" "docker://$REGISTRY/img:v1"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
	run -1 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s2" --registries-conf "$BATS_TEST_TMPDIR/empty.conf" "docker://$REGISTRY/img:v1"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: import: registry $REGISTRY: its TLS certificate is not trusted ("*"): give its CA with --cert-dir DIR, or use --tls-verify=false" ]]
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$BATS_TEST_TMPDIR/s2" --tls-verify=false "docker://$REGISTRY/img:v1"
}

@test "registries.conf: an insecure registry needs no --tls-verify=false; a plain-HTTP one without it is refused" {
	: >"$BATS_TEST_TMPDIR/empty.conf"
	run -1 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --registries-conf "$BATS_TEST_TMPDIR/empty.conf" "docker://$REGISTRY/img:v1"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"registry $REGISTRY: it speaks plain HTTP: use --tls-verify=false (or insecure = true in registries.conf)" ]]
	cat >"$BATS_TEST_TMPDIR/registries.conf" <<-EOF
		[[registry]]
		location = "$REGISTRY"
		insecure = true
	EOF
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --registries-conf "$BATS_TEST_TMPDIR/registries.conf" "docker://$REGISTRY/img:v1"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
}

@test "registries.conf: a mirror serves a registry that cannot be reached" {
	cat >"$BATS_TEST_TMPDIR/registries.conf" <<-EOF
		[[registry]]
		prefix = "unreachable.invalid"
		location = "unreachable.invalid"
		[[registry.mirror]]
		location = "$REGISTRY"
		insecure = true
	EOF
	mapfile -t blobs < <(image_layers img:v1)
	before=$(blob_gets "${blobs[0]}")
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --registries-conf "$BATS_TEST_TMPDIR/registries.conf" "docker://unreachable.invalid/img:v1"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
	[ "$(blob_gets "${blobs[0]}")" = "$((before + 1))" ]
}

@test "registry options apply to docker:// only" {
	run -2 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "oci:$LAYOUT:v1"
	[[ "$stderr" == *"import: --tls-verify applies to a registry image (docker://REF)"* ]]
}

@test "seal docker:// pushes only the sealed manifest; import records the seal; another store's verify accepts it" {
	keys=$BATS_TEST_TMPDIR/keys
	mkdir -p "$keys"
	make_key "$keys" seal
	write_policy "$keys/policy.toml" userspace reject "$keys/seal.pub"
	registry_push "oci:$LAYOUT:v2" img:sealme
	old=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/img:sealme")
	mark=$(wc -l <"$REGISTRY_LOG")
	run -0 --separate-stderr "$CFS_RUNTIME" seal --key "$keys/seal.key" --format annotations --tls-verify=false "docker://$REGISTRY/img:sealme"
	printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/annotations"
	want=$(cat "$BATS_FILE_TMPDIR/digest.v2")
	[ "${lines[0]}" = "composefs.merged.erofs.v1.fsverity-sha256-12=$want" ]
	# The registry holds a new manifest: same config and layers, the
	# annotations; cfs-runtime uploaded no blob, it only PUT the manifest.
	run -0 skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/img:sealme"
	raw=$output
	new=sha256:$(printf %s "$raw" | sha256sum | cut -d' ' -f1)
	[ "$new" != "$old" ]
	[ "$(jq -r '.annotations["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$raw")" = "$want" ]
	[ -n "$(jq -r '.annotations["composefs.merged.erofs.v1.fsverity-sha256-12.cosign"]' <<<"$raw")" ]
	[ "$(jq -c '[.config.digest, [.layers[].digest]]' <<<"$raw")" = "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/img:v2" | jq -c '[.config.digest, [.layers[].digest]]')" ]
	run -0 bash -c "tail -n +$((mark + 1)) '$REGISTRY_LOG' | grep -E '\"(PUT|POST|PATCH|DELETE) ' | grep -o '\"[A-Z]* /v2/[^ ]*'"
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = '"PUT /v2/img/manifests/sealme' ]
	# A second, host-like store imports the sealed image and records the
	# seal: images shows the signer and key; verify accepts the annotations.
	cat >"$BATS_TEST_TMPDIR/config.toml" <<-EOF
		policy = "$keys/policy.toml"
		store_dir = "$BATS_TEST_TMPDIR/host-store"
	EOF
	export CFS_RUNTIME_CONFIG=$BATS_TEST_TMPDIR/config.toml
	run -0 --separate-stderr "$CFS_RUNTIME" import --tls-verify=false "docker://$REGISTRY/img:sealme"
	[ "$output" = "$want" ]
	keyid=$(openssl pkey -pubin -in "$keys/seal.pub" -outform der | sha256sum | cut -d' ' -f1)
	run -0 "$CFS_RUNTIME" images
	[[ "${lines[1]}" == "$want "*" docker://$REGISTRY/img:sealme "*" test (key ${keyid:0:12}) "*" no" ]]
	run -0 "$CFS_RUNTIME" images --json
	[ "$(jq -c '.[0].seal | [.verified, .signer, .keyId, .manifest]' <<<"$output")" = "[true,\"test\",\"$keyid\",\"$new\"]" ]
	run -0 "$CFS_RUNTIME" verify --annotations "$BATS_TEST_TMPDIR/annotations"
	# An unsealed image shows no seal.
	run -0 --separate-stderr "$CFS_RUNTIME" import --tls-verify=false "docker://$REGISTRY/img:v1"
	run -0 "$CFS_RUNTIME" images --json
	[ "$(jq -r --arg d "$(cat "$BATS_FILE_TMPDIR/digest.v1")" '.[] | select(.digest == $d) | .seal' <<<"$output")" = null ]
}

# add_index LAYOUT NAME: an index NAME in LAYOUT naming v1 for this
# machine's platform and v2 for linux/s390x.
add_index() {
	local layout=$1 name=$2 arch m1 m2 idx d
	arch=$(dpkg --print-architecture)
	m1=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "v1") | del(.annotations)' "$layout/index.json")
	m2=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "v2") | del(.annotations)' "$layout/index.json")
	idx=$(jq -cn --argjson a "$m1" --argjson b "$m2" --arg arch "$arch" \
		'{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
		  manifests: [($b + {platform: {os: "linux", architecture: "s390x"}}), ($a + {platform: {os: "linux", architecture: $arch}})]}')
	d=$(printf %s "$idx" | sha256sum | cut -d' ' -f1)
	printf %s "$idx" >"$layout/blobs/sha256/$d"
	jq --arg d "sha256:$d" --argjson s "${#idx}" --arg n "$name" \
		'.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $n}}]' \
		"$layout/index.json" >"$layout/index.json.new"
	mv "$layout/index.json.new" "$layout/index.json"
}

@test "a multi-platform index imports this platform's image; seal pushes the manifest by digest and the index to the tag" {
	cp -a "$LAYOUT" "$BATS_TEST_TMPDIR/layout"
	add_index "$BATS_TEST_TMPDIR/layout" multi
	registry_push "oci:$BATS_TEST_TMPDIR/layout:multi" img:multi --all
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$STORE" --tls-verify=false "docker://$REGISTRY/img:multi"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
	make_key "$BATS_TEST_TMPDIR" seal
	mark=$(wc -l <"$REGISTRY_LOG")
	run -0 --separate-stderr "$CFS_RUNTIME" seal --key "$BATS_TEST_TMPDIR/seal.key" --tls-verify=false "docker://$REGISTRY/img:multi"
	run -0 bash -c "tail -n +$((mark + 1)) '$REGISTRY_LOG' | grep -E '\"(PUT|POST|PATCH|DELETE) ' | grep -o '\"[A-Z]* /v2/[^ ]*'"
	[ "${#lines[@]}" -eq 2 ]
	puts=("${lines[@]}")
	[ "${puts[1]}" = '"PUT /v2/img/manifests/multi' ]
	# The tag is still an index; its s390x entry is unchanged, this
	# platform's entry names the sealed manifest, pushed first by digest.
	old=$(jq -c '.manifests[] | select(.platform.architecture == "s390x") | [.digest, .platform.os]' "$BATS_TEST_TMPDIR/layout/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "multi") | .digest' "$BATS_TEST_TMPDIR/layout/index.json" | cut -d: -f2)")
	run -0 skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/img:multi"
	[ "$(jq -r .mediaType <<<"$output")" = application/vnd.oci.image.index.v1+json ]
	[ "$(jq -c '.manifests[] | select(.platform.architecture == "s390x") | [.digest, .platform.os]' <<<"$output")" = "$old" ]
	sealed=$(jq -r --arg a "$(dpkg --print-architecture)" '.manifests[] | select(.platform.architecture == $a) | .digest' <<<"$output")
	[ "${puts[0]}" = "\"PUT /v2/img/manifests/$sealed" ]
	run -0 skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/img@$sealed"
	[ "$(jq -r '.annotations["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$output")" = "$(cat "$BATS_FILE_TMPDIR/digest.v1")" ]
}

@test "import docker:// draws a progress bar per fetched layer on a terminal" {
	mapfile -t blobs < <(image_layers img:v2)
	run -0 script -qec "'$CFS_RUNTIME' import --store '$STORE' --tls-verify=false docker://$REGISTRY/img:v2" /dev/null
	# One bar per layer, named by the blob digest's start, with a size.
	[[ "$output" == *"${blobs[0]:0:19}"*"B/"* ]]
	[[ "$output" == *"${blobs[1]:0:19}"*"B/"* ]]
	[[ "$output" == *"100%"* ]]
}
