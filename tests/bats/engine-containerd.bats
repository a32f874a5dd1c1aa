#!/usr/bin/env bats
# The seal travels with the image (issue #18): crictl → containerd 1.6 →
# cfs-runtime, with sealed images pulled from a local registry and no
# composefs annotations anywhere. containerd's CRI names each container's
# image (io.kubernetes.cri.image-name); cfs-runtime reads that image's
# manifest from containerd's content store (the cfs-runtime-engine helper,
# containerd's API on its socket, namespace k8s.io) and verifies the
# container against the seal in it. The seal is cached in the store by the
# digest of the manifest containerd's records name (read by cfs-runtime
# itself, no helper): a warm create runs no helper. cfs-runtime's store starts empty: the
# images' bytes come from containerd's content store (the same helper).
#
# Images: busybox-static trees made into OCI layouts with umoci, sealed
# with `cfs-runtime seal`, pushed with skopeo to Debian's docker-registry on
# 127.0.0.1 (registry.bash), pulled by containerd through a hosts.toml
# under config_path. The host has no fs-verity: enforcement userspace.
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (helpers.bash). Needs root,
# containerd, ctr, crictl, umoci, skopeo, docker-registry.

load helpers
load containerd
load registry
load sealed
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12

cfs_config() {
	cat >"$CTRD/cfs.toml" <<-EOF
		runtime = "$RUNC"
		store_dir = "$STORE"
		state_dir = "$CTRD/cfs-state"
		log_file = "$CFSLOG"
		log_level = "debug"
		policy = "$POLICY"
		containerd_address = "${1:-$CTRD/containerd.sock}"
	EOF
}

setup_file() {
	ctrd_requires umoci skopeo
	export CTRD=$BATS_FILE_TMPDIR/ctrd
	export STORE=$CTRD/store CFSLOG=$CTRD/cfs.log POLICY=$CTRD/keys/policy.toml
	export CGROUP_PARENT=cfs-bats-engine-$$
	mkdir -p "$CTRD/keys"
	registry_start
	export CTRD_REGISTRY=$REGISTRY

	make_key "$CTRD/keys" good
	make_key "$CTRD/keys" other
	ctrd_policy "$POLICY" "$CTRD/keys/good.pub"

	sealed_image "$CTRD" pause - /bin/sleep 2147483647
	sealed_image "$CTRD" app1 "$CTRD/keys/good.key"
	sealed_image "$CTRD" app2 "$CTRD/keys/good.key"
	sealed_image "$CTRD" rogue "$CTRD/keys/other.key"
	sealed_image "$CTRD" broken "$CTRD/keys/good.key"
	sealed_image "$CTRD" twice "$CTRD/keys/good.key"
	# app3: app1's layer and one more.
	SEAL_BASE=$CTRD/app1 sealed_image "$CTRD" app3 "$CTRD/keys/good.key"
	# Sealed with composefs-rs' rules: create imports with the default ones.
	SEAL_ARGS="--canonical composefs-rs" sealed_image "$CTRD" rsimage "$CTRD/keys/good.key"
	# moving:1, a tag pushed again to another image in a test.
	SEAL_REPO=moving sealed_image "$CTRD" movea "$CTRD/keys/good.key"
	# Every run of the helper leaves a line in $CTRD/engine-runs (the
	# runtime finds it by $CFS_RUNTIME_ENGINE, which containerd passes
	# down through its shims).
	export CFS_RUNTIME_ENGINE=$CTRD/engine-counted
	cat >"$CFS_RUNTIME_ENGINE" <<-EOF
		#!/bin/sh
		echo run >>"$CTRD/engine-runs"
		exec "$(dirname "$CFS_RUNTIME")/cfs-runtime-engine" "\$@"
	EOF
	chmod +x "$CFS_RUNTIME_ENGINE"
	cfs_config
	ctrd_start
	# The pause image from the registry, named as the drop-in's
	# sandbox_image.
	cctl pull "$REGISTRY/pause:1" >/dev/null
	ctr --address "$CTRD/containerd.sock" -n k8s.io images tag "$REGISTRY/pause:1" "$SANDBOX_IMAGE" >/dev/null
}

setup() {
	requires_root
	cfs_config
	ctrd_pod_json
}

teardown() {
	cctl rmp --all --force >/dev/null 2>&1 || true
}

teardown_file() {
	ctrd_stop
	registry_stop
}

# ctr_json NAME IMAGE [ANNOTATIONS-JSON]: a CRI container configuration.
ctr_json() {
	jq -n --arg name "$1" --arg img "$REGISTRY/$2:1" --argjson a "${3:-{\}}" '{
		metadata: {name: $name}, image: {image: $img}, log_path: ($name + ".log"), annotations: $a,
		args: ["/bin/sh", "-c", "cat /data/name; grep \" / / \" /proc/self/mountinfo"]
	}' >"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}

# create NAME IMAGE [ANNOTATIONS-JSON]: pull the image, create the
# container in $POD; prints its id.
create() {
	cctl pull "$REGISTRY/$2:1" >/dev/null
	cctl create "$POD" "$(ctr_json "$@")" "$BATS_TEST_TMPDIR/pod.json"
}

# runs_verified CTR IMAGE: CTR ran from IMAGE's composefs image, verified
# against the seal in IMAGE's manifest.
runs_verified() {
	local digest=DIGEST_$2 manifest=MANIFEST_$2
	cctl start "$1"
	wait_exited "$1"
	[ "$(cctl inspect -o json "$1" | jq -r .status.exitCode)" = 0 ]
	run cctl logs "$1"
	[ "${lines[0]}" = "$2" ]
	[[ "${lines[1]}" == *" / / "*" - overlay composefs "* ]]
	grep -q "msg=\"engine image\" pid=[0-9]* id=$1 image=\"containerd image $REGISTRY/$2:1\" manifest=${!manifest} config=sha256:[0-9a-f]* sealed=true" "$CFSLOG"
	grep -q "msg=verified .*id=$1 .*composefs digest sha256:${!digest}: cosign signature trusted by signer \\\\\"test\\\\\"" "$CFSLOG"
}

@test "engine: a pod of two sealed images, no composefs annotations, empty store: each container imported from containerd and verified against its own image's seal" {
	[ -n "$DIGEST_app1" ] && [ -n "$DIGEST_app2" ] && [ "$DIGEST_app1" != "$DIGEST_app2" ]
	[ ! -e "$STORE/images" ] || [ -z "$(ls -A "$STORE/images")" ]
	start_pod
	c1=$(create one app1)
	c2=$(create two app2)
	runs_verified "$c1" app1
	runs_verified "$c2" app2
	# The sandbox (no image named) passed by rule, as before.
	grep -q "msg=\"starting unverified container\" .*id=$POD .*allowed unsigned by rule \\\\\"containerd-sandbox\\\\\"" "$CFSLOG"
	# The store now holds both images, imported from containerd's content
	# store (not from the snapshot containerd prepared).
	[ -f "$STORE/images/$DIGEST_app1" ] && [ -f "$STORE/images/$DIGEST_app2" ]
	grep -q "msg=\"engine import\" .*step=\"imported containerd:$REGISTRY/app1:1: composefs digest $DIGEST_app1, manifest $MANIFEST_app1, 1 of 1 layers read\"" "$CFSLOG"
	grep -q "msg=\"engine import\" .*step=\"imported containerd:$REGISTRY/app2:1: composefs digest $DIGEST_app2, manifest $MANIFEST_app2, 1 of 1 layers read\"" "$CFSLOG"
	run grep -c "imported bundle root filesystem" "$CFSLOG"
	[ "$output" = 0 ]

	# A second pod of the same images imports nothing.
	imports=$(grep -c 'msg="engine import"' "$CFSLOG")
	app12_pod new
	[ "$(grep -c 'msg="engine import"' "$CFSLOG")" = "$imports" ]
}

# app12_pod [new]: a pod (with "new": a new one, the others removed) of
# a container of app1 and one of app2 ($c1, $c2), both run verified.
app12_pod() {
	if [ "${1:-}" = new ]; then
		cctl rmp --all --force >/dev/null
		ctrd_pod_json
	fi
	start_pod
	c1=$(create one app1)
	c2=$(create two app2)
	runs_verified "$c1" app1
	runs_verified "$c2" app2
}

# engine_runs: how many times create ran cfs-runtime-engine so far.
engine_runs() {
	if [ -e "$CTRD/engine-runs" ]; then wc -l <"$CTRD/engine-runs"; else echo 0; fi
}

@test "engine: a second pod of the same sealed images runs no cfs-runtime-engine" {
	app12_pod
	# The seal cache holds both images, by their manifests' digests.
	[ -f "$STORE/engine-seals/containerd-${MANIFEST_app1#sha256:}" ]
	[ -f "$STORE/engine-seals/containerd-${MANIFEST_app2#sha256:}" ]
	runs=$(engine_runs)
	[ "$runs" -gt 0 ]

	app12_pod new
	[ "$(engine_runs)" = "$runs" ]
	grep -q "msg=\"engine image\" pid=[0-9]* id=$c1 .* sealed=true cached=true" "$CFSLOG"
	grep -q "msg=\"engine image\" pid=[0-9]* id=$c2 .* sealed=true cached=true" "$CFSLOG"
}

@test "engine: a tag moved to another image after the first pod is verified against the new image" {
	start_pod
	c1=$(create first moving)
	cctl start "$c1"
	wait_exited "$c1"
	run cctl logs "$c1"
	[ "${lines[0]}" = movea ]
	grep -q "msg=\"engine image\" pid=[0-9]* id=$c1 image=\"containerd image $REGISTRY/moving:1\" manifest=$MANIFEST_movea .* sealed=true cached=false" "$CFSLOG"
	grep -q "msg=verified .*id=$c1 .*composefs digest sha256:$DIGEST_movea: " "$CFSLOG"
	runs=$(engine_runs)

	# moving:1 now names another sealed image; the node pulls it again.
	SEAL_REPO=moving sealed_image "$CTRD" moveb "$CTRD/keys/good.key"
	[ "$MANIFEST_moveb" != "$MANIFEST_movea" ] && [ "$DIGEST_moveb" != "$DIGEST_movea" ]
	cctl rmp --all --force >/dev/null
	ctrd_pod_json
	start_pod
	c2=$(create second moving)
	cctl start "$c2"
	wait_exited "$c2"
	[ "$(cctl inspect -o json "$c2" | jq -r .status.exitCode)" = 0 ]
	run cctl logs "$c2"
	[ "${lines[0]}" = moveb ]
	[[ "${lines[1]}" == *" / / "*" - overlay composefs "* ]]
	# Not the cached seal of movea: the helper read moveb's.
	grep -q "msg=\"engine image\" pid=[0-9]* id=$c2 image=\"containerd image $REGISTRY/moving:1\" manifest=$MANIFEST_moveb .* sealed=true cached=false" "$CFSLOG"
	grep -q "msg=verified .*id=$c2 .*composefs digest sha256:$DIGEST_moveb: cosign signature trusted" "$CFSLOG"
	[ "$(engine_runs)" -gt "$runs" ]
	[ -f "$STORE/engine-seals/containerd-${MANIFEST_movea#sha256:}" ]
	[ -f "$STORE/engine-seals/containerd-${MANIFEST_moveb#sha256:}" ]
}

@test "engine: an image sealed by an untrusted key is refused with cfs-runtime's reason; the other container of the pod runs" {
	start_pod
	bad=$(create bad rogue)
	good=$(create good app1)
	assert_refused "$bad" "composefs digest sha256:$DIGEST_rogue: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest"
	runs_verified "$good" app1
}

@test "engine: an annotation naming another signed digest than the image's seal is refused" {
	start_pod
	signed2=$("$CFS_RUNTIME" sign --key "$CTRD/keys/good.key" --format json "$DIGEST_app2")
	ctr=$(create swap app1 "$signed2")
	want="composefs annotation conflicts with the image's seal: the container's annotation $DIGEST_KEY names composefs digest $DIGEST_app2, but containerd image $REGISTRY/app1:1 is sealed with $DIGEST_app1 ($DIGEST_KEY): remove the annotation, or run the image it names"
	assert_refused "$ctr" "$want"
	run grep -c "msg=verified pid=[0-9]* id=$ctr " "$CFSLOG"
	[ "$output" = 0 ]

	# Through the pod's annotations (containerd passes the handler's
	# pod_annotations on to every container of the pod) too.
	cctl rmp --all --force >/dev/null
	jq --argjson a "$signed2" '.annotations = $a' "$BATS_TEST_TMPDIR/pod.json" >"$BATS_TEST_TMPDIR/pod.json.new"
	mv "$BATS_TEST_TMPDIR/pod.json.new" "$BATS_TEST_TMPDIR/pod.json"
	start_pod
	ctr=$(create podswap app1)
	assert_refused "$ctr" "$want"
}

@test "engine: an annotation repeating the image's digest is allowed; the image's signatures decide" {
	start_pod
	ctr=$(create same app1 "$(jq -n --arg k "$DIGEST_KEY" --arg d "$DIGEST_app1" '{($k): $d}')")
	runs_verified "$ctr" app1
}

@test "engine: containerd's API unreachable: a container whose image containerd names is refused" {
	cfs_config "$CTRD/none.sock"
	start_pod
	ctr=$(create lost app1)
	run cctl start "$ctr"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cfs-runtime: cannot read the engine's image: containerd image $REGISTRY/app1:1: containerd $CTRD/none.sock: container $ctr: Unavailable: "* ]]
}

@test "engine: a layer blob corrupted in containerd's content store is refused, naming it; nothing committed" {
	cctl pull "$REGISTRY/broken:1" >/dev/null
	local m layer blob
	m=$CTRD/broken/blobs/sha256/${MANIFEST_broken#sha256:}
	layer=$(jq -r '.layers[0].digest' "$m")
	blob=$CTRD/root/io.containerd.content.v1.content/blobs/sha256/${layer#sha256:}
	[ -f "$blob" ]
	# The last byte: gzip's trailer (the size), so that only the digest
	# check can tell.
	local size last
	size=$(stat -c %s "$blob")
	last=$(od -An -tu1 -j $((size - 1)) -N1 "$blob")
	# shellcheck disable=SC2059 # an octal escape built on purpose
	printf "\\$(printf %03o $(((last + 1) % 256)))" | dd of="$blob" bs=1 seek=$((size - 1)) count=1 conv=notrunc 2>/dev/null
	start_pod
	ctr=$(create broken broken)
	run cctl start "$ctr"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cfs-runtime: composefs image not available: composefs digest $DIGEST_broken is not in the store $STORE, and importing containerd image $REGISTRY/broken:1 from the engine's store failed: containerd:$REGISTRY/broken:1: layer 1/1 blob $layer: blob does not match its digest: its content has digest sha256:"* ]]
	[ ! -e "$STORE/images/$DIGEST_broken" ]
	run grep -rl "$DIGEST_broken" "$STORE/refs"
	[ -z "$output" ]
}

@test "engine: a layer shared with an image imported before is not read again" {
	start_pod
	c1=$(create one app1)
	runs_verified "$c1" app1
	c3=$(create three app3)
	runs_verified "$c3" app3
	grep -q "msg=\"engine import\" .*step=\"imported containerd:$REGISTRY/app3:1: composefs digest $DIGEST_app3, manifest $MANIFEST_app3, 1 of 2 layers read\"" "$CFSLOG"
	grep -q "msg=\"engine import\" pid=[0-9]* image=\"containerd image $REGISTRY/app3:1\" step=\"layer 1/2 sha256:[0-9a-f]*: already imported" "$CFSLOG"
}

@test "engine: an image whose layers build another digest than its seal is refused, naming both; nothing committed" {
	start_pod
	ctr=$(create rs rsimage)
	run cctl start "$ctr"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cfs-runtime: composefs image not available: composefs digest $DIGEST_rsimage is not in the store $STORE, and importing containerd image $REGISTRY/rsimage:1 from the engine's store failed: containerd:$REGISTRY/rsimage:1: the image has another digest than expected: it has composefs digest "*", but the sealed digest is $DIGEST_rsimage: unknown"* ]]
	[ ! -e "$STORE/images/$DIGEST_rsimage" ]
}

@test "engine: concurrent creates of one new image import it once" {
	start_pod
	a=$(create a twice)
	b=$(create b twice)
	cctl start "$a" >/dev/null &
	cctl start "$b" >/dev/null
	wait
	wait_exited "$a"
	wait_exited "$b"
	[ "$(cctl inspect -o json "$a" | jq -r .status.exitCode)" = 0 ]
	[ "$(cctl inspect -o json "$b" | jq -r .status.exitCode)" = 0 ]
	run grep -c "msg=\"engine import\" .*step=\"imported containerd:$REGISTRY/twice:1: " "$CFSLOG"
	[ "$output" = 1 ]
}

@test "engine: fsck --repair restores an image imported from containerd from containerd's content store" {
	start_pod
	c1=$(create one app1)
	runs_verified "$c1" app1
	local obj
	obj=$(fsverity digest --compact "$CTRD/app1.b/rootfs/bin/busybox")
	rm "$STORE/objects/${obj:0:2}/${obj:2}"
	run --separate-stderr env CFS_RUNTIME_CONFIG="$CTRD/cfs.toml" "$CFS_RUNTIME" fsck --repair "$DIGEST_app1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"fsck: repair needs layer sha256:"*" of containerd:$REGISTRY/app1:1 (1 objects)"* ]]
	[[ "$output" == "$DIGEST_app1: clean"* ]]
	[ -f "$STORE/objects/${obj:0:2}/${obj:2}" ]
}
