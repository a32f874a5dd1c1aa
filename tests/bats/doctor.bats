#!/usr/bin/env bats
# cfs-runtime doctor and policy check on this host (a kernel without
# fs-verity: require cannot be enforced, userspace can), the refusal of a
# mistyped composefs annotation at create, and an encrypted key's password
# typed on a terminal.

load helpers
bats_require_minimum_version 1.5.0

USERSPACE_RISK='(weaker: each file is hashed once before the container starts; a change to the store after that is not detected)'

setup() {
	requires_root
	if [ -d /proc/sys/fs/verity ]; then
		skip "this kernel has fs-verity: these tests are about a host without it (tests/vm proves require)"
	fi
	STORE="$BATS_TEST_TMPDIR/store"
	mkdir -p "$STORE/objects"
	KEYS="$BATS_TEST_TMPDIR/keys"
	mkdir -p "$KEYS"
	make_key "$KEYS" k
	POLICY="$BATS_TEST_TMPDIR/policy.toml"
	dr_policy require reject
	use_config "runtime = \"$RUNC\"" "store_dir = \"$STORE\"" "policy = \"$POLICY\""
	# The engines' configurations are this test's own.
	export CONTAINERS_CONF="$BATS_TEST_TMPDIR/containers.conf"
	printf '[engine.runtimes]\ncfs = ["%s"]\n' "$CFS_RUNTIME" >"$CONTAINERS_CONF"
	CTRD_CONF="$BATS_TEST_TMPDIR/containerd.toml"
	printf 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.cfs.options]\nBinaryName = "%s"\n' "$CFS_RUNTIME" >"$CTRD_CONF"
}

teardown() {
	cleanup_containers
}

# dr_policy ENFORCEMENT UNSIGNED: this test's policy.
dr_policy() {
	write_policy "$POLICY" "$1" "$2" "$KEYS/k.pub"
}

# dr_line NAME: doctor's line for the check NAME, and its fix line.
dr_line() {
	awk -v n="$1" 'found && /^      to fix: / {print; exit} found {exit} substr($0, 7, length(n) + 2) == n ": " {print; found = 1}' <<<"$output"
}

@test "doctor: require on a kernel without fs-verity fails, saying what to do; exit 1" {
	run --separate-stderr "$CFS_RUNTIME" doctor --containerd-config "$CTRD_CONF"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$stderr" = "" ]
	local fix="to fix: boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $POLICY $USERSPACE_RISK"
	[ "$(dr_line "fs-verity (kernel)")" = "FAIL  fs-verity (kernel): kernel built without fs-verity (CONFIG_FS_VERITY)
      $fix" ]
	[ "$(dr_line "fs-verity in the store")" = "FAIL  fs-verity in the store: fs-verity in $STORE/objects: kernel built without fs-verity
      to fix: as above" ]
	[ "$(dr_line enforcement)" = "FAIL  enforcement: this host cannot enforce require: fs-verity in $STORE/objects: kernel built without fs-verity
      to fix: as above" ]
	[ "$(dr_line configuration)" = "ok    configuration: $CFS_RUNTIME_CONFIG" ]
	[ "$(dr_line "trust policy")" = "ok    trust policy: $POLICY: enforcement require, 1 signer" ]
	[ "$(dr_line store)" = "ok    store: $STORE on ext4" ]
	[ "$(dr_line "new mount API (fsopen)")" = "ok    new mount API (fsopen): yes" ]
	[ "$(dr_line "overlayfs data-only lower layers (::)")" = "ok    overlayfs data-only lower layers (::): yes" ]
	[ "$(dr_line "OCI runtime")" = "ok    OCI runtime: $RUNC ($("$RUNC" --version | head -n 1))" ]
	[ "$(dr_line podman)" = "ok    podman: $CONTAINERS_CONF: podman run --runtime cfs uses $CFS_RUNTIME" ] ||
		[ "$(dr_line podman)" = "skip  podman: podman is not installed" ]
	[ "$(dr_line containerd)" = "ok    containerd: $CTRD_CONF: runtime handler \"cfs\" runs $CFS_RUNTIME" ] ||
		[ "$(dr_line containerd)" = "skip  containerd: containerd is not installed" ]
	[ "${lines[-1]}" = "3 of 16 checks failed: containers would be refused on this host" ]
	# The probes leave nothing in the store.
	[ -z "$(ls -A "$STORE/objects")" ]
}

@test "doctor --json: the same checks; userspace works on this host (exit 0), engines not configured are advice" {
	run --separate-stderr "$CFS_RUNTIME" doctor --json --containerd-config "$CTRD_CONF"
	[ "$status" -eq 1 ]
	[ "$(jq -r .ok <<<"$output")" = false ]
	[ "$(jq -r '[.checks[] | select(.status == "FAIL") | .name] | join(",")' <<<"$output")" = "fs-verity (kernel),fs-verity in the store,enforcement" ]
	[ "$(jq -r '.checks[] | select(.name == "enforcement") | .fix' <<<"$output")" = "boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $POLICY $USERSPACE_RISK" ]

	dr_policy userspace reject
	printf '[engine]\n' >"$CONTAINERS_CONF"
	printf 'version = 2\n' >"$CTRD_CONF"
	run --separate-stderr "$CFS_RUNTIME" doctor --containerd-config "$CTRD_CONF"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(dr_line "fs-verity in the store")" = "warn  fs-verity in the store: fs-verity in $STORE/objects: kernel built without fs-verity
      to fix: as above" ]
	[ "$(dr_line "fs-verity (kernel)")" = "warn  fs-verity (kernel): kernel built without fs-verity (CONFIG_FS_VERITY)
      to fix: for enforcement \"require\" (set in $POLICY): boot a kernel built with CONFIG_FS_VERITY" ]
	[ "$(dr_line enforcement)" = "ok    enforcement: this host can enforce userspace: no kernel fs-verity: every byte hashed in userspace at each create (weak; logged as a warning)" ]
	if command -v podman >/dev/null; then
		[ "$(dr_line podman)" = "warn  podman: no containers.conf runtime names cfs-runtime (looked in $CONTAINERS_CONF)
      to fix: install contrib/containers.conf.d/cfs-runtime.conf as /etc/containers/containers.conf.d/cfs-runtime.conf (see docs/podman.md)" ]
	fi
	if command -v containerd >/dev/null; then
		[ "$(dr_line containerd)" = "warn  containerd: no runtime handler with BinaryName cfs-runtime in $CTRD_CONF
      to fix: add the handler of contrib/containerd/cfs-runtime.toml to $CTRD_CONF and restart containerd (see docs/kubernetes.md)" ]
	fi
	[ "${lines[-1]}" = "everything enforcement userspace needs works on this host" ]

	run "$CFS_RUNTIME" doctor extra
	[ "$status" -eq 2 ]
	[ "$output" = "cfs-runtime: doctor: takes no arguments (usage: cfs-runtime doctor [--store DIR] [--policy FILE] [--json])" ]
}

@test "policy check: a level this host or store cannot enforce exits 1, saying what to change" {
	run --separate-stderr "$CFS_RUNTIME" policy check
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "# effective trust policy from $POLICY" ]
	[ "$stderr" = "cfs-runtime: policy check: cannot enforce fs-verity (enforcement require) in store $STORE: fs-verity in $STORE/objects: kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $POLICY $USERSPACE_RISK" ]

	# A store on tmpfs: the kernel and the filesystem both lack it.
	local shm
	shm=$(mktemp -d /dev/shm/cfs-bats-doctor-XXXXXX)
	run --separate-stderr "$CFS_RUNTIME" policy check --store "$shm"
	rm -rf "$shm"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: policy check: cannot enforce fs-verity (enforcement require) in store $shm: fs-verity in $shm: tmpfs does not support fs-verity: boot a kernel built with CONFIG_FS_VERITY and move store_dir (in $CFS_RUNTIME_CONFIG) to ext4 with the verity feature, btrfs or f2fs, or set enforcement = \"userspace\" in $POLICY $USERSPACE_RISK" ]

	run --separate-stderr "$CFS_RUNTIME" policy check --json
	[ "$status" -eq 1 ]
	[ "$stderr" = "" ]
	[ "$(jq -c .host <<<"$output")" = "$(jq -nc --arg s "$STORE" --arg p "$POLICY" --arg r "$USERSPACE_RISK" '{store: $s, filesystem: "ext4", can_enforce: false, problem: "fs-verity in \($s)/objects: kernel built without fs-verity", fix: "boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in \($p) \($r)"}')" ]

	# The file alone; then a level this host can enforce.
	run --separate-stderr "$CFS_RUNTIME" policy check --no-host
	[ "$status" -eq 0 ]
	dr_policy userspace reject
	run --separate-stderr "$CFS_RUNTIME" policy check
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "${lines[0]}" = "# effective trust policy from $POLICY" ]
	[ "$(jq -r .host.can_enforce <<<"$("$CFS_RUNTIME" policy check --json)")" = true ]
}

@test "verify --json: the verdict as JSON, exit 1 when refused" {
	local digest ann
	digest=$(printf '%064d' 7)
	ann="$BATS_TEST_TMPDIR/ann"
	"$CFS_RUNTIME" sign --key "$KEYS/k.key" --format annotations "$digest" >"$ann"
	run --separate-stderr "$CFS_RUNTIME" verify --json --annotations "$ann"
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.verdict, .digest, .signature, .signer, .enforcement] | join(" ")' <<<"$output")" = "trusted sha256:$digest cosign signature test require" ]
	sed -i 's/\.cosign=/.cosgin=/' "$ann"
	run --separate-stderr "$CFS_RUNTIME" verify --json --annotations "$ann"
	[ "$status" -eq 1 ]
	[ "$stderr" = "" ]
	[ "$(jq -r .verdict <<<"$output")" = refused ]
	[ "$(jq -r .reason <<<"$output")" = "malformed annotation \"composefs.merged.erofs.v1.fsverity-sha256-12.cosgin\": unknown signature suffix \".cosgin\" (want .sig, .cosign or .sigstore-bundle)" ]
}

@test "a mistyped composefs annotation refuses create on runc, even where unsigned containers may start" {
	dr_policy userspace allow
	make_bundle "$BATS_TEST_TMPDIR/bundle" true
	local digest id key
	digest=$(printf '%064d' 7)
	for key in compsefs.merged.erofs.v1.fsverity-sha256-12 composefs.merged.erofs.v1.fsverity_sha256-12; do
		jq --arg k "$key" --arg d "$digest" '.annotations = {($k): $d}' "$BATS_TEST_TMPDIR/bundle/config.json" >"$BATS_TEST_TMPDIR/config.json"
		cp "$BATS_TEST_TMPDIR/config.json" "$BATS_TEST_TMPDIR/bundle/config.json"
		id=$(cid typo)
		run --separate-stderr "$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/bundle" "$id"
		[ "$status" -eq 1 ]
		case $key in
		compsefs.*) [ "$stderr" = "cfs-runtime: malformed annotation \"$key\": looks like a mistyped composefs annotation: part 1 is \"compsefs\", not \"composefs\"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature" ] ;;
		*) [ "$stderr" = "cfs-runtime: malformed annotation \"$key\": looks like a mistyped composefs annotation: \"fsverity_sha256-12\" does not start with \"fsverity-\"; composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle for a signature" ] ;;
		esac
		run "$RUNC" state "$id"
		[ "$status" -eq 1 ]
	done
	# A signature key with a mistyped suffix.
	jq --arg d "$digest" '.annotations = {"composefs.merged.erofs.v1.fsverity-sha256-12": $d, "composefs.merged.erofs.v1.fsverity-sha256-12.cosgin": "AAAA"}' "$BATS_TEST_TMPDIR/config.json" >"$BATS_TEST_TMPDIR/bundle/config.json"
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/bundle" "$(cid suffix)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: malformed annotation \"composefs.merged.erofs.v1.fsverity-sha256-12.cosgin\": unknown signature suffix \".cosgin\" (want .sig, .cosign or .sigstore-bundle)" ]
	# Without the typo the same container starts unsigned, as the policy allows.
	jq '.annotations = {"org.example.note": "x"}' "$BATS_TEST_TMPDIR/config.json" >"$BATS_TEST_TMPDIR/bundle/config.json"
	id=$(cid plain)
	# The container inherits stdio: keep bats' output pipe out of it.
	"$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/bundle" "$id" </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	[ "$("$RUNC" state "$id" | jq -r .status)" = created ]
	"$RUNC" delete -f "$id"
}

@test "an encrypted key: its password is asked for on a terminal, refused without one, worded alike when wrong" {
	openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:s3cret -in "$KEYS/k.key" -out "$KEYS/enc.key"
	local digest
	digest=$(printf '%064d' 7)
	unset COSIGN_PASSWORD
	run --separate-stderr "$CFS_RUNTIME" sign --key "$KEYS/enc.key" "$digest" </dev/null
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: sign: $KEYS/enc.key: private key: the key is encrypted: set COSIGN_PASSWORD (stdin is not a terminal to ask for the password on)" ]
	COSIGN_PASSWORD=wrong run --separate-stderr "$CFS_RUNTIME" sign --key "$KEYS/enc.key" "$digest"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: sign: $KEYS/enc.key: private key: wrong password (from \$COSIGN_PASSWORD)" ]
	# On a terminal (script(1) gives the command one), as cosign asks.
	run script -qec "$CFS_RUNTIME sign --key $KEYS/enc.key --format annotations $digest" /dev/null < <(sleep 1; echo s3cret)
	[ "$status" -eq 0 ]
	[[ "$output" == "Enter password for private key: "* ]]
	[[ "$output" == *"composefs.merged.erofs.v1.fsverity-sha256-12=$digest"* ]]
	[[ "$output" != *s3cret* ]]
	run script -qec "$CFS_RUNTIME sign --key $KEYS/enc.key $digest" /dev/null < <(sleep 1; echo nope)
	[ "$status" -eq 1 ]
	[[ "$output" == *"cfs-runtime: sign: $KEYS/enc.key: private key: wrong password (as typed)"* ]]
}

@test "podman: a config typo is printed once (the refused create), not again by the delete that follows" {
	command -v podman >/dev/null || skip "podman not installed"
	local img=localhost/cfs-bats-doctor-$$/typo:1 rootfs=$BATS_TEST_TMPDIR/rootfs
	make_rootfs "$rootfs"
	tar -C "$rootfs" -cf "$BATS_TEST_TMPDIR/rootfs.tar" .
	podman import -q "$BATS_TEST_TMPDIR/rootfs.tar" "$img" >/dev/null
	echo 'stor_dir = "/x"' >>"$CFS_RUNTIME_CONFIG"
	# podman starts the runtime with a scrubbed environment: the
	# configuration is named on its command line.
	run podman --runtime "$CFS_RUNTIME" --runtime-flag "cfs-config=$CFS_RUNTIME_CONFIG" run --rm \
		--ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "$img" true
	podman rmi -f "$img" >/dev/null 2>&1 || true
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(grep -c "key stor_dir: unknown key" <<<"$output")" = 1 ]
	local n
	n=$(grep -n '^stor_dir' "$CFS_RUNTIME_CONFIG" | cut -d: -f1)
	[[ "$output" == *"cfs-runtime: invalid configuration: $CFS_RUNTIME_CONFIG:$n: key stor_dir: unknown key"* ]]
}
