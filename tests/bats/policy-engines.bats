#!/usr/bin/env bats
# Signer scopes through the engines (issue #20): one signer, trusted only
# for $REGISTRY/app, has sealed two images of a local registry,
# $REGISTRY/app/a:1 and $REGISTRY/other/b:1. Each engine runs the first,
# verified, and has the second refused with a message naming the image's
# reference and the signer; each test's own audit file holds each of its
# decisions exactly once.
#
# - containerd 1.6 + crictl (containerd.bash): the CRI names the image
#   (io.kubernetes.cri.image-name), the seal comes from the image's
#   manifest in containerd's content store; crictl shows the refusal.
# - podman 4.3 names no image: it copies the manifest's annotations into
#   the container's, org.opencontainers.image.ref.name among them, which
#   `cfs-runtime seal` writes: by default when it seals docker://REF (app/a),
#   with --ref-name when it seals a layout before the push (other/b).
#
# Images: busybox trees (sealed.bash), pushed to Debian's docker-registry
# on 127.0.0.1 (registry.bash). No fs-verity here: enforcement userspace.
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (helpers.bash). Needs root,
# containerd, ctr, crictl, podman, umoci, skopeo, docker-registry.

load helpers
load containerd
load registry
load sealed
bats_require_minimum_version 1.5.0

ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)

# cfs_config FILE [LINE...]: a cfs-runtime configuration with this test's
# audit file.
cfs_config() {
	local f=$1
	shift
	cat >"$f" <<-EOF
		runtime = "$RUNC"
		policy = "$POLICY"
		log_file = "$CTRD/cfs.log"
		log_level = "debug"
		audit_file = "${BATS_TEST_TMPDIR:-$CTRD}/audit.jsonl"
	EOF
	printf '%s\n' "$@" >>"$f"
}

# ctrd_cfs_config: containerd's (its containers run with $CTRD/cfs.toml).
ctrd_cfs_config() {
	cfs_config "$CTRD/cfs.toml" "store_dir = \"$CTRD/store\"" "state_dir = \"$CTRD/cfs-state\"" \
		"containerd_address = \"$CTRD/containerd.sock\""
}

# pm ARGS...: podman on this file's private storage (under $CTRD, whose
# leftover mounts ctrd_stop removes).
pm() {
	podman --root "$CTRD/podman/storage" --runroot "$CTRD/podman/run" --storage-driver overlay "$@"
}

setup_file() {
	ctrd_requires umoci skopeo podman
	export CTRD=$BATS_FILE_TMPDIR/ctrd
	export POLICY=$CTRD/keys/policy.toml
	export CGROUP_PARENT=cfs-bats-policy-engines-$$
	mkdir -p "$CTRD/keys"
	registry_start
	export CTRD_REGISTRY=$REGISTRY

	# One signer, scoped to $REGISTRY/app ($SCOPES replaces the scopes
	# line: SCOPES= shows that these tests can fail).
	make_key "$CTRD/keys" good
	ctrd_policy "$POLICY" "$CTRD/keys/good.pub"
	sed -i "/^public_key = /a ${SCOPES-scopes = [\"$REGISTRY/app\"]}" "$POLICY"

	sealed_image "$CTRD" pause - /bin/sleep 2147483647
	# app/a: pushed, then sealed in the registry (seal docker://REF
	# records REF in the manifest).
	SEAL_REPO=app/a sealed_image "$CTRD" a -
	DIGEST_a=$("$CFS_RUNTIME" seal --key "$CTRD/keys/good.key" --format json --tls-verify=false "docker://$REGISTRY/app/a:1" 2>/dev/null |
		jq -r '.["composefs.merged.erofs.v1.fsverity-sha256-12"]')
	export DIGEST_a
	# other/b: sealed as a layout, naming where it will be pushed.
	SEAL_REPO=other/b SEAL_ARGS="--ref-name $REGISTRY/other/b:1" sealed_image "$CTRD" b "$CTRD/keys/good.key"

	ctrd_cfs_config
	ctrd_start
	cctl pull "$REGISTRY/pause:1" >/dev/null
	ctr --address "$CTRD/containerd.sock" -n k8s.io images tag "$REGISTRY/pause:1" "$SANDBOX_IMAGE" >/dev/null
	local r
	for r in app/a other/b; do
		cctl pull "$REGISTRY/$r:1" >/dev/null
		pm pull -q --tls-verify=false "$REGISTRY/$r:1" >/dev/null
	done
}

setup() {
	requires_root
	ctrd_cfs_config
	ctrd_pod_json
}

teardown() {
	cctl rmp --all --force >/dev/null 2>&1 || true
	pm rm -af -t 0 >/dev/null 2>&1 || true
}

teardown_file() {
	if [ -n "${CTRD:-}" ] && command -v podman >/dev/null; then
		pm rm -af -t 0 >/dev/null 2>&1 || true
		pm rmi -af >/dev/null 2>&1 || true
	fi
	ctrd_stop
	registry_stop
}

# refusal IMAGE DIGEST: cfs-runtime's message refusing IMAGE (without
# "cfs-runtime: ").
refusal() {
	echo "composefs digest sha256:$2: image outside the signer's scopes: image $1 is outside the scopes of signer \"test\" (\"$REGISTRY/app\")"
}

# assert_audit LINE...: this test's audit file holds exactly these
# decisions ("CONTAINER DECISION IMAGE DIGEST SIGNER", - for none), each
# once, one valid JSON object a line.
assert_audit() {
	local f=$BATS_TEST_TMPDIR/audit.jsonl
	[ "$(stat -c %a "$f")" = 600 ]
	[ "$(wc -l <"$f")" -eq "$(jq -c . "$f" | wc -l)" ]
	diff <(printf '%s\n' "$@" | sort) \
		<(jq -r '[.container_id, .decision, .image, .digest, .signer] | map(if . == null or . == "" then "-" else . end) | join(" ")' "$f" | sort)
}

@test "seal records the image's reference in the sealed manifest: docker://REF by default, a layout with --ref-name" {
	run -0 skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/app/a:1"
	[ "$(jq -r '.annotations["org.opencontainers.image.ref.name"]' <<<"$output")" = "$REGISTRY/app/a:1" ]
	[ "$(jq -r '.annotations["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$output")" = "$DIGEST_a" ]
	run -0 skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/other/b:1"
	[ "$(jq -r '.annotations["org.opencontainers.image.ref.name"]' <<<"$output")" = "$REGISTRY/other/b:1" ]
	[ "$(jq -r '.annotations["composefs.merged.erofs.v1.fsverity-sha256-12"]' <<<"$output")" = "$DIGEST_b" ]
	# Both sealed by the one signer.
	run -0 "$CFS_RUNTIME" policy check --policy "$POLICY"
	[[ "$output" == *"scopes = [\"$REGISTRY/app\"]"* ]]
}

# crictl_ctr NAME REPO: a CRI container configuration for $REGISTRY/REPO:1.
crictl_ctr() {
	jq -n --arg name "$1" --arg img "$REGISTRY/$2:1" '{
		metadata: {name: $name}, image: {image: $img}, log_path: ($name + ".log"),
		args: ["/bin/sh", "-c", "cat /data/name; grep \" / / \" /proc/self/mountinfo"]
	}' >"$BATS_TEST_TMPDIR/$1.json"
	cctl create "$POD" "$BATS_TEST_TMPDIR/$1.json" "$BATS_TEST_TMPDIR/pod.json"
}

@test "containerd: the scoped signer's image of its repository runs verified; its image of another repository is refused, naming the reference and the signer" {
	start_pod
	a=$(crictl_ctr a app/a)
	b=$(crictl_ctr b other/b)
	assert_refused "$b" "$(refusal "$REGISTRY/other/b:1" "$DIGEST_b")"
	cctl start "$a"
	wait_exited "$a"
	[ "$(cctl inspect -o json "$a" | jq -r .status.exitCode)" = 0 ]
	run cctl logs "$a"
	[ "${lines[0]}" = a ]
	[[ "${lines[1]}" == *" / / "*" - overlay composefs "* ]]
	grep -q "msg=verified pid=[0-9]* id=$a .*composefs digest sha256:$DIGEST_a: cosign signature trusted by signer \\\\\"test\\\\\"" "$CTRD/cfs.log"
	# The pod's sandbox, by rule; a allowed; b refused: each once.
	assert_audit "$POD unsigned-allowed - - -" \
		"$a allow $REGISTRY/app/a:1 sha256:$DIGEST_a test" \
		"$b deny $REGISTRY/other/b:1 sha256:$DIGEST_b test"
	[ "$(jq -r --arg id "$b" 'select(.container_id == $id) | .reason' "$BATS_TEST_TMPDIR/audit.jsonl")" = "$(refusal "$REGISTRY/other/b:1" "$DIGEST_b")" ]
}

@test "podman: the scoped signer's image of its repository runs verified; its image of another repository is refused, naming the reference and the signer" {
	cfs_config "$BATS_TEST_TMPDIR/cfs.toml" "store_dir = \"$BATS_TEST_TMPDIR/store\"" "state_dir = \"$BATS_TEST_TMPDIR/state\"" \
		"containers_storage = \"$CTRD/podman/storage\""
	local flags=("${ULIMITS[@]}" --runtime "$CFS_RUNTIME" --runtime-flag "cfs-config=$BATS_TEST_TMPDIR/cfs.toml")
	run --separate-stderr pm run --name "pe-$BATS_TEST_NUMBER-a" "${flags[@]}" "$REGISTRY/app/a:1" \
		sh -c 'cat /data/name; grep "^composefs / overlay" /proc/mounts | cut -d" " -f1-3'
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'a\ncomposefs / overlay')" ]
	a=$(pm inspect --format '{{.Id}}' "pe-$BATS_TEST_NUMBER-a")
	grep -q "msg=verified pid=[0-9]* id=$a .*composefs digest sha256:$DIGEST_a: cosign signature trusted by signer" "$CTRD/cfs.log"

	run -126 --separate-stderr pm run --name "pe-$BATS_TEST_NUMBER-b" "${flags[@]}" "$REGISTRY/other/b:1"
	echo "$stderr"
	[ -z "$output" ]
	[[ "$stderr" == *"cfs-runtime: $(refusal "$REGISTRY/other/b:1" "$DIGEST_b")"* ]]
	b=$(pm inspect --format '{{.Id}}' "pe-$BATS_TEST_NUMBER-b")
	# Refused before anything was imported.
	[ ! -e "$BATS_TEST_TMPDIR/store/images/$DIGEST_b" ]
	assert_audit "$a allow $REGISTRY/app/a:1 sha256:$DIGEST_a test" \
		"$b deny $REGISTRY/other/b:1 sha256:$DIGEST_b test"
}
