#!/usr/bin/env bats
# Verified create on a host without fs-verity: the trust policy's decisions,
# import of the bundle's root filesystem, the userspace enforcement level
# end to end with runc, the refusal of `require`, and cleanup of mounts and
# state directories.

load helpers
bats_require_minimum_version 1.5.0

DIGEST_KEY=composefs.merged.erofs.v1.fsverity-sha256-12
# A file large enough to be stored as an object (composefs inlines up to 64
# bytes) and unique in the image, so that "used by" names it.
HELLO="hello from the signed composefs image, $(printf '%0200d' 0)"

# cr_policy FILE ENFORCEMENT UNSIGNED [EXTRA-LINE...]: a trust policy with
# the file's key as its only signer. ENFORCEMENT "" leaves the default.
cr_policy() {
	local file=$1 enforcement=$2 unsigned=$3
	shift 3
	{
		[ -z "$enforcement" ] || echo "enforcement = \"$enforcement\""
		echo "unsigned = \"$unsigned\""
		echo '[[signer]]'
		echo 'name = "test"'
		echo "public_key = \"$KEYS/good.pub\""
		printf '%s\n' "$@"
	} >"$file"
	chmod 0644 "$file"
}

# cr_config ENFORCEMENT UNSIGNED [EXTRA-POLICY-LINE...]: this test's
# cfs-runtime configuration: its own store, state directory, log and policy.
cr_config() {
	POLICY="$BATS_TEST_TMPDIR/policy.toml"
	cr_policy "$POLICY" "$@"
	export CFS_RUNTIME_CONFIG="$BATS_TEST_TMPDIR/config.toml"
	cat >"$CFS_RUNTIME_CONFIG" <<-EOF
		runtime = "$RUNC"
		store_dir = "$STORE"
		state_dir = "$STATE"
		log_file = "$OWNLOG"
		audit_file = "$OWNLOG.audit"
		log_level = "debug"
		policy = "$POLICY"
	EOF
}

# cr_annotate BUNDLE JSON: merge JSON into the bundle's annotations.
cr_annotate() {
	jq --argjson a "$2" '.annotations = ((.annotations // {}) + $a)' "$1/config.json" >"$1/config.json.new"
	mv "$1/config.json.new" "$1/config.json"
}

# cr_sign DIGEST [KEY]: the annotations `cfs-runtime sign` prints.
cr_sign() {
	"$CFS_RUNTIME" sign --key "${2:-$KEYS/good.key}" --format json "$1"
}

# cr_object_of FILE: the store path of FILE's object (its fs-verity digest,
# computed by the reference tool).
cr_object_of() {
	local d
	d=$(fsverity digest --compact "$1")
	echo "$STORE/objects/${d:0:2}/${d:2}"
}

# cr_mounts DIR: mount points at or below DIR.
cr_mounts() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# cr_loops STORE: loop devices backed by a file in STORE.
cr_loops() {
	local f
	for f in /sys/block/loop*/loop/backing_file; do
		[ -e "$f" ] || continue
		grep -l -F "$1" "$f" || true
	done
}

# cr_assert_gone ID: no state directory and nothing mounted for ID.
cr_assert_gone() {
	[ ! -e "$STATE/$1" ]
	[ -z "$(cr_mounts "$STATE/$1")" ]
}

# cr_assert_nothing_left: no state directory, mount or loop device at all.
cr_assert_nothing_left() {
	[ -z "$(ls -A "$STATE" 2>/dev/null)" ]
	[ -z "$(cr_mounts "$STATE")" ]
	[ -z "$(cr_loops "$STORE")" ]
}

# cr_wait_status ID STATUS: wait up to 5 s for runc to report STATUS.
cr_wait_status() {
	local _
	for _ in $(seq 50); do
		[ "$("$RUNC" state "$1" 2>/dev/null | jq -r .status)" = "$2" ] && return 0
		sleep 0.1
	done
	echo "container $1 did not reach $2" >&2
	return 1
}

# cr_age ID SECONDS: make ID's state look SECONDS older.
cr_age() {
	local f="$STATE/$1/state.json" t
	t=$(date -u -d "@$(($(date +%s) - $2))" +%Y-%m-%dT%H:%M:%SZ)
	jq --arg t "$t" '.created = $t' "$f" >"$f.new"
	mv "$f.new" "$f"
}

# cr_json_log LOG STDERR: LOG holds exactly one error line saying STDERR.
cr_json_log() {
	[ "$(wc -l <"$1")" -eq 1 ]
	[ "$(jq -r .level "$1")" = error ]
	[ "$(jq -r .msg "$1")" = "$2" ]
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	export KEYS="$BATS_FILE_TMPDIR/keys"
	mkdir -p "$KEYS"
	local k
	for k in good other; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEYS/$k.key" 2>/dev/null
		openssl pkey -in "$KEYS/$k.key" -pubout -out "$KEYS/$k.pub"
	done
	make_hello_template
	export SIGNED
	SIGNED=$(cr_sign "$DIGEST")
}

setup() {
	requires_root
	STORE="$BATS_TEST_TMPDIR/store"
	STATE="$BATS_TEST_TMPDIR/state"
	OWNLOG="$BATS_TEST_TMPDIR/own.log"
	BUNDLE="$BATS_TEST_TMPDIR/bundle"
	cp -a "$TMPL" "$BUNDLE"
	cr_config userspace reject
}

teardown() {
	if [ -e "$BATS_TEST_TMPDIR/pubdir" ]; then
		rm -rf --one-file-system "$(cat "$BATS_TEST_TMPDIR/pubdir")"
	fi
	if [ -e "$BATS_TEST_TMPDIR/racer" ]; then
		touch "$BATS_TEST_TMPDIR/stop"
		wait "$(cat "$BATS_TEST_TMPDIR/racer")" 2>/dev/null || true
	fi
	cleanup_containers
	# A failed test must not leave mounts behind (bats could not remove its
	# directory either).
	local m
	for m in $(cr_mounts "$BATS_TEST_TMPDIR" | sort -r); do
		umount -l "$m" || true
	done
}

# --- policy decisions -------------------------------------------------------

@test "no digest, unsigned = reject: refused, one JSON line in --log" {
	id=$(cid reject)
	log="$BATS_TEST_TMPDIR/runtime.log"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: no composefs digest: no $DIGEST_KEY annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $POLICY matches this container" ]
	cr_json_log "$log" "$stderr"
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_gone "$id"
}

@test "no digest, unsigned = allow: runs unverified from the bundle rootfs, with a warning" {
	cr_config userspace allow
	id=$(cid allow)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	[ "$stderr" = "" ]
	grep -q "level=WARN msg=\"starting unverified container\" .*id=$id" "$OWNLOG"
	# Pass-through: nothing imported, nothing mounted, root.path untouched.
	[ ! -e "$STORE/images" ] || [ -z "$(ls -A "$STORE/images")" ]
	[ "$(jq -r .root.path "$BUNDLE/config.json")" = rootfs ]
	cr_assert_gone "$id"
}

@test "allow_unsigned rule: a matching annotation runs, another value is refused" {
	cr_config userspace reject '[[allow_unsigned]]' 'name = "containerd-sandbox"' \
		'annotations = { "io.kubernetes.cri.container-type" = "sandbox" }'
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	cr_annotate "$BUNDLE" '{"io.kubernetes.cri.container-type": "sandbox"}'
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid sandbox)"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	grep -q 'level=WARN msg="starting unverified container"' "$OWNLOG"

	# The whole value must match: "sandbox-x" and "container" do not.
	for v in container sandbox-x; do
		cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
		cr_annotate "$BUNDLE" "{\"io.kubernetes.cri.container-type\": \"$v\"}"
		run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid "c-$v")"
		[ "$status" -eq 1 ]
		[ "$output" = "" ]
		[ "$stderr" = "cfs-runtime: no composefs digest: no $DIGEST_KEY annotation (nor another fsverity-{sha256|sha512}-{12|16} variant), and no [[allow_unsigned]] rule of $POLICY matches this container" ]
	done
}

@test "a signature by another key is refused" {
	cr_annotate "$BUNDLE" "$(cr_sign "$DIGEST" "$KEYS/other.key")"
	id=$(cid otherkey)
	log="$BATS_TEST_TMPDIR/runtime.log"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json create --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest" ]
	cr_json_log "$log" "$stderr"
	cr_assert_nothing_left
	[ ! -e "$STORE/images/$DIGEST" ]
}

@test "a signature over another digest is refused" {
	other=$(printf '%064d' 1)
	sig=$(cr_sign "$other" | jq -r --arg k "$DIGEST_KEY.cosign" '.[$k]')
	cr_annotate "$BUNDLE" "{\"$DIGEST_KEY\": \"$DIGEST\", \"$DIGEST_KEY.cosign\": \"$sig\"}"
	id=$(cid otherdigest)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: signature not trusted: cosign signature does not verify with any trusted public key (signers tried: \"test\"): made by another key, or over another digest" ]
	cr_assert_nothing_left
}

@test "a corrupted base64 signature is refused" {
	cr_annotate "$BUNDLE" "$(jq --arg k "$DIGEST_KEY.cosign" '.[$k] |= "!" + .' <<<"$SIGNED")"
	id=$(cid base64)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: malformed annotation $DIGEST_KEY.cosign: corrupted base64 at byte 0" ]
	cr_assert_nothing_left
}

@test "a group-writable policy file is refused, naming the file" {
	cr_annotate "$BUNDLE" "$SIGNED"
	chmod 0664 "$POLICY"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid gw)"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: policy $POLICY: insecure trust policy: $POLICY is writable by its group (mode -rw-rw-r--): only root may be able to change the trust policy" ]
	cr_assert_nothing_left
}

@test "a group-writable key file: unsigned containers the policy allows run, signed ones are refused naming it" {
	# create loads a signer's key when a signature is checked against it
	# (attest.DeferParsing); policy check loads everything.
	key="$BATS_TEST_TMPDIR/keys/good.pub"
	mkdir -p "$BATS_TEST_TMPDIR/keys"
	cp "$KEYS/good.pub" "$key"
	chmod 0664 "$key"
	printf 'enforcement = "userspace"\nunsigned = "allow"\n[[signer]]\nname = "test"\npublic_key = "%s"\n' "$key" >"$POLICY"
	msg="policy $POLICY: signer \"test\": insecure trust policy: $key is writable by its group (mode -rw-rw-r--): only root may be able to change the trust policy"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid unsigned)"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	cr_annotate "$BUNDLE" "$SIGNED"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid signed)"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: $msg" ]
	run --separate-stderr "$CFS_RUNTIME" policy check
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: policy check: $msg" ]
	cr_assert_nothing_left
}

@test "a policy in a group-writable directory is refused, naming the directory" {
	cr_annotate "$BUNDLE" "$SIGNED"
	dir="$BATS_TEST_TMPDIR/etc"
	mkdir -m 0775 "$dir"
	cr_policy "$dir/policy.toml" userspace reject
	sed -i "s|^policy = .*|policy = \"$dir/policy.toml\"|" "$CFS_RUNTIME_CONFIG"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid gwdir)"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: policy $dir/policy.toml: insecure trust policy: $dir is writable by its group (mode drwxrwxr-x): only root may be able to change the trust policy" ]
	cr_assert_nothing_left
}

@test "a missing policy file refuses every container, naming the file" {
	cr_annotate "$BUNDLE" "$SIGNED"
	rm "$POLICY"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid nopolicy)"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: no trust policy: $POLICY does not exist; every container is refused until it does (see policy.toml.example, check it with \`cfs-runtime policy check\`)" ]
	cr_assert_nothing_left
}

# --- import from the bundle's root filesystem -------------------------------

@test "signed digest of the bundle rootfs: imported into the store, runs and reads its file" {
	cr_annotate "$BUNDLE" "$SIGNED"
	[ ! -e "$STORE/images/$DIGEST" ]
	id=$(cid import)
	update_config "$BUNDLE" '.process.args = ["sh", "-c", "cat /data/hello.txt; grep \" / / \" /proc/self/mountinfo"]'
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "${lines[0]}" = "$HELLO" ]
	# The root is the composefs overlay, read-only (runc spec's default):
	# runc remounts it read-only after creating mount points in its upper
	# layer.
	[[ "${lines[1]}" == *" / / ro,"*" - overlay composefs rw,"*",upperdir=$STATE/$id/upper,"* ]]
	[ -f "$STORE/images/$DIGEST" ]
	[ "$(fsverity digest --compact "$STORE/images/$DIGEST")" = "$DIGEST" ]
	[ -f "$(cr_object_of "$BUNDLE/rootfs/data/hello.txt")" ]
	grep -q "msg=\"imported bundle root filesystem\" .*digest=$DIGEST" "$OWNLOG"
	grep -q "msg=mounted .*id=$id .*verity=off" "$OWNLOG"
	cr_assert_gone "$id"
}

@test "sha512: a bundle signed as fsverity-sha512-12 is imported as a SHA-512 image, runs, and a tampered object is refused" {
	D512=$("$CFS_RUNTIME" digest --hash sha512 "$BUNDLE/rootfs")
	[ "${#D512}" -eq 128 ]
	cr_annotate "$BUNDLE" "$("$CFS_RUNTIME" sign --key "$KEYS/good.key" --format json --algorithm fsverity-sha512-12 "$D512")"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid sha512)"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$output" = "$HELLO" ]
	[ "$(fsverity digest --compact --hash-alg=sha512 "$STORE/images/$D512")" = "$D512" ]
	d=$(fsverity digest --compact --hash-alg=sha512 "$BUNDLE/rootfs/data/hello.txt")
	obj="$STORE/objects/${d:0:2}/${d:2}"
	[ -f "$obj" ]
	printf 'J' | dd of="$obj" bs=1 seek=0 conv=notrunc status=none
	bad=$(fsverity digest --compact --hash-alg=sha512 "$obj")
	cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid sha512-tampered)"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest $D512: object $d (used by /data/hello.txt): digest mismatch: content hashes to $bad" ]
	cr_assert_nothing_left
}

@test "rootfs modified after signing: refused with both digests, nothing mounted" {
	cr_annotate "$BUNDLE" "$SIGNED"
	echo intruder >"$BUNDLE/rootfs/etc/intruder"
	got=$("$CFS_RUNTIME" digest "$BUNDLE/rootfs")
	[ "$got" != "$DIGEST" ]
	id=$(cid modified)
	log="$BATS_TEST_TMPDIR/runtime.log"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json create --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest mismatch: bundle root filesystem $BUNDLE/rootfs has composefs digest $got, but the signed digest is $DIGEST, which is not in the store $STORE: import the signed tree (cfs-runtime import --store $STORE TREE) or the sealed image (cfs-runtime import oci:DIR) first" ]
	cr_json_log "$log" "$stderr"
	[ ! -e "$STORE/images/$DIGEST" ]
	cr_assert_nothing_left
	[ ! -e "$STATE/$id" ]
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
}

# --- config.json: read as runc reads it --------------------------------------

# cr_create_bounded ID: create with a memory limit and a timeout, so that a
# wrapper that reads /dev/zero without end, or waits on a FIFO, fails the
# test instead of the machine.
cr_create_bounded() {
	run --separate-stderr bash -c 'ulimit -v 4000000; exec timeout 30 "$@"' _ "$CFS_RUNTIME" create --bundle "$BUNDLE" "$1"
}

@test "config.json that is a symlink to /dev/zero, a FIFO or too large: refused at once, naming what it is" {
	id=$(cid notregular)
	rm "$BUNDLE/config.json"
	ln -s /dev/zero "$BUNDLE/config.json"
	cr_create_bounded "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: invalid bundle config: $BUNDLE/config.json: not a regular file: a character device (via symlink to /dev/zero); the bundle's config must be a regular file" ]
	# A FIFO without a writer: the open must not wait for one.
	rm "$BUNDLE/config.json"
	mkfifo "$BUNDLE/config.json"
	cr_create_bounded "$id"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid bundle config: $BUNDLE/config.json: not a regular file: a FIFO; the bundle's config must be a regular file" ]
	rm "$BUNDLE/config.json"
	truncate -s 5M "$BUNDLE/config.json"
	cr_create_bounded "$id"
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid bundle config: $BUNDLE/config.json: file too large: 5242880 bytes, more than 4194304; cfs-runtime reads a config of at most 4 MiB" ]
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_nothing_left
}

@test "config.json with two \"linux\" objects and a signed digest: refused naming the key, nothing imported" {
	# runc decodes both into one struct (namespaces from the first, the
	# rest from the second); a rewrite that kept the last one started the
	# container in the host's namespaces.
	cr_annotate "$BUNDLE" "$SIGNED"
	ns=$(jq -c .linux.namespaces "$BUNDLE/config.json")
	rest=$(jq -c '.linux | del(.namespaces)' "$BUNDLE/config.json")
	body=$(jq -c 'del(.linux)' "$BUNDLE/config.json")
	printf '{"linux":{"namespaces":%s},"linux":%s,%s\n' "$ns" "$rest" "${body#\{}" >"$BUNDLE/config.json"
	[ "$(jq -c .linux.namespaces "$BUNDLE/config.json")" = null ] # jq keeps the last one too
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	id=$(cid duplinux)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: invalid bundle config: $BUNDLE/config.json: duplicate key \"linux\" at top level: runc would merge or overwrite the values; write each key once" ]
	cmp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	[ ! -e "$STORE/images/$DIGEST" ]
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_nothing_left
}

@test "root.path naming a root-only directory, any signed digest: refused, nothing of it in the store, which no other user can read" {
	# The store in a directory other users can reach (bats's own are
	# root's only), so that only the store's own modes keep them out.
	pub=$(mktemp -d /tmp/cfs-bats-store.XXXXXX)
	echo "$pub" >"$BATS_TEST_TMPDIR/pubdir"
	chmod 0755 "$pub"
	STORE=$pub/store
	cr_config userspace reject
	cr_annotate "$BUNDLE" "$SIGNED"
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid first)"
	[ "$status" -eq 0 ]
	listing() { (cd "$STORE" && find images objects provenance tmp ! -type d -printf '%p %s %l\n' | sort); }
	before=$(listing)

	# A directory only root may read, holding a 0600 secret.
	host="$BATS_TEST_TMPDIR/host"
	mkdir -m 0700 "$host"
	secret="root:$(head -c 48 /dev/urandom | base64 -w0):19000:0:99999:7:::"
	printf '%s\n' "$secret" >"$host/shadow"
	chmod 0600 "$host/shadow"
	other=$(printf '%064d' 7)
	evil="$BATS_TEST_TMPDIR/evil"
	cp -a "$TMPL" "$evil"
	update_config "$evil" ".root.path = \"$host\""
	cr_annotate "$evil" "$(cr_sign "$other")"
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$evil" "$(cid steal)"
	[ "$status" -eq 1 ]
	got=$("$CFS_RUNTIME" digest "$host")
	[ "$stderr" = "cfs-runtime: composefs digest mismatch: bundle root filesystem $host has composefs digest $got, but the signed digest is $other, which is not in the store $STORE: import the signed tree (cfs-runtime import --store $STORE TREE) or the sealed image (cfs-runtime import oci:DIR) first" ]
	# Nothing of the tree is left: not its image, not its objects.
	[ "$(listing)" = "$before" ]
	run grep -rlF "$secret" "$STORE"
	[ "$status" -eq 1 ]
	[ ! -e "$STORE/images/$got" ]
	cr_assert_nothing_left

	# The store is root's only: every directory 0700, and another user
	# can neither list it nor read an image or an object.
	[ -z "$(find "$STORE" -type d ! -perm 0700)" ]
	obj=$(cr_object_of "$BUNDLE/rootfs/data/hello.txt")
	[ -f "$obj" ]
	for p in "$STORE" "$STORE/images" "$STORE/objects"; do
		run setpriv --reuid=65534 --regid=65534 --clear-groups ls "$p"
		[ "$status" -ne 0 ]
	done
	for f in "$STORE/images/$DIGEST" "$obj"; do
		run setpriv --reuid=65534 --regid=65534 --clear-groups cat "$f"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Permission denied"* ]]
	done
}

@test "a signed image whose process runs as uid 1000 reads its files from the private store" {
	# overlayfs reads its layers (the EROFS, the 0700 store's objects) with
	# the mounter's credentials, and checks the image's own modes with the
	# process's: uid 1000 reads the image's world-readable files and its
	# own 0600 file, not root's 0600 file.
	b="$BATS_TEST_TMPDIR/b1000"
	cp -a "$TMPL" "$b"
	printf 'mine, %0100d\n' 0 >"$b/rootfs/data/mine"
	chown 1000:1000 "$b/rootfs/data/mine"
	chmod 0600 "$b/rootfs/data/mine"
	printf 'root only, %0100d\n' 0 >"$b/rootfs/data/roots"
	chmod 0600 "$b/rootfs/data/roots"
	digest=$("$CFS_RUNTIME" digest "$b/rootfs")
	cr_annotate "$b" "$(cr_sign "$digest")"
	update_config "$b" '.process.user = {"uid": 1000, "gid": 1000} | .process.args = ["sh", "-c", "id -u; cat /data/hello.txt /data/mine; cat /data/roots"]'
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$b" "$(cid uid1000)"
	[ "$status" -eq 1 ] # the last cat
	[ "${lines[0]}" = 1000 ]
	[ "${lines[1]}" = "$HELLO" ]
	[ "${lines[2]}" = "mine, $(printf '%0100d' 0)" ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$stderr" = "cat: can't open '/data/roots': Permission denied" ]
	grep -q "msg=mounted .*id=$(cid uid1000)" "$OWNLOG"
	[ -z "$(find "$STORE" -type d ! -perm 0700)" ]
	cr_assert_gone "$(cid uid1000)"
}

# --- userspace enforcement, end to end --------------------------------------

@test "userspace: an object tampered in the store is refused before start, naming object and path" {
	cr_annotate "$BUNDLE" "$SIGNED"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid first)"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]

	obj=$(cr_object_of "$BUNDLE/rootfs/data/hello.txt")
	size=$(stat -c %s "$obj")
	printf 'J' | dd of="$obj" bs=1 seek=0 conv=notrunc status=none
	[ "$(stat -c %s "$obj")" -eq "$size" ]
	bad=$(fsverity digest --compact "$obj")

	cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
	id=$(cid tampered)
	log="$BATS_TEST_TMPDIR/runtime.log"
	run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ] # the container never printed its file
	[ "$stderr" = "cfs-runtime: composefs digest $DIGEST: object $(basename "$(dirname "$obj")")$(basename "$obj") (used by /data/hello.txt): digest mismatch: content hashes to $bad" ]
	cr_json_log "$log" "$stderr"
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_nothing_left
}

@test "userspace: an object deleted from the store is refused as missing" {
	cr_annotate "$BUNDLE" "$SIGNED"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid first)"
	[ "$status" -eq 0 ]
	obj=$(cr_object_of "$BUNDLE/rootfs/data/hello.txt")
	rm "$obj"
	cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
	id=$(cid missing)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest $DIGEST: object $(basename "$(dirname "$obj")")$(basename "$obj") (used by /data/hello.txt): object missing from the store" ]
	cr_assert_nothing_left
}

@test "userspace: a replaced image file is refused" {
	cr_annotate "$BUNDLE" "$SIGNED"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid first)"
	[ "$status" -eq 0 ]
	img=$(readlink -f "$STORE/images/$DIGEST")
	printf 'J' | dd of="$img" bs=1 seek=2000 conv=notrunc status=none
	bad=$(fsverity digest --compact "$img")
	cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
	id=$(cid badimage)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest $DIGEST: image $DIGEST: digest mismatch: content hashes to $bad" ]
	cr_assert_nothing_left
}

@test "userspace: images swapped in the store while creates run never start the other image" {
	# Image B, a tree whose /data/hello.txt differs, in the same store.
	cp -a "$TMPL/rootfs" "$BATS_TEST_TMPDIR/rootfs-b"
	echo "the other image" >"$BATS_TEST_TMPDIR/rootfs-b/data/hello.txt"
	other=$("$CFS_RUNTIME" import --store "$STORE" "$BATS_TEST_TMPDIR/rootfs-b")
	cr_annotate "$BUNDLE" "$SIGNED"
	set_args "$BUNDLE" true
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid first)"
	[ "$status" -eq 0 ]
	obj_a=$(readlink -f "$STORE/images/$DIGEST")
	obj_b=$(readlink -f "$STORE/images/$other")
	cp "$obj_a" "$BATS_TEST_TMPDIR/a.cfs"
	cp "$obj_b" "$BATS_TEST_TMPDIR/b.cfs"
	# A store writer swaps the image file as fast as it can: B renamed
	# over A and back, and A's file rewritten in place with B's bytes and
	# back. (teardown stops it if the test fails early.)
	(
		while [ ! -e "$BATS_TEST_TMPDIR/stop" ]; do
			cp "$BATS_TEST_TMPDIR/b.cfs" "$obj_a.b" && mv -f "$obj_a.b" "$obj_a"
			cp "$BATS_TEST_TMPDIR/a.cfs" "$obj_a.a" && mv -f "$obj_a.a" "$obj_a"
			cat "$BATS_TEST_TMPDIR/b.cfs" >"$obj_a"
			cat "$BATS_TEST_TMPDIR/a.cfs" >"$obj_a"
		done
	) &
	echo $! >"$BATS_TEST_TMPDIR/racer"
	started=0 refused=0 wrong=0 failed=0
	id=$(cid race)
	for i in $(seq 40); do
		cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
		if "$CFS_RUNTIME" create --bundle "$BUNDLE" "$id-$i" </dev/null >"$BATS_TEST_TMPDIR/err" 2>&1; then
			started=$((started + 1))
			got=$(cat "$STATE/$id-$i/merged/data/hello.txt")
			[ "$got" = "$HELLO" ] || wrong=$((wrong + 1))
			"$CFS_RUNTIME" delete "$id-$i"
		elif grep -q "^cfs-runtime: composefs digest $DIGEST: image $DIGEST: digest mismatch: " "$BATS_TEST_TMPDIR/err"; then
			# The check saw B's bytes (or half of them).
			refused=$((refused + 1))
		else
			# Anything else: what was mounted is not what was checked
			# (e.g. half-written bytes that are no EROFS image).
			failed=$((failed + 1))
			cat "$BATS_TEST_TMPDIR/err"
		fi
	done
	touch "$BATS_TEST_TMPDIR/stop"
	wait "$(cat "$BATS_TEST_TMPDIR/racer")"
	echo "started $started (the other image: $wrong), refused by the check $refused, failed otherwise $failed"
	[ "$wrong" -eq 0 ]
	[ "$failed" -eq 0 ]
	[ "$started" -gt 0 ]
	cr_assert_nothing_left
}

# --- require on this host ---------------------------------------------------

@test "require (the default) on a kernel without fs-verity: refused, naming what is missing and what to change" {
	if [ -d /proc/sys/fs/verity ]; then
		skip "this kernel has fs-verity: the require level is proven by tests/vm"
	fi
	cr_annotate "$BUNDLE" "$SIGNED"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	for level in require "" measure; do
		cr_config "$level" reject
		cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
		id=$(cid "level${level}")
		log="$BATS_TEST_TMPDIR/runtime-$level.log"
		run --separate-stderr "$CFS_RUNTIME" --log "$log" --log-format json create --bundle "$BUNDLE" "$id"
		[ "$status" -eq 1 ]
		[ "$output" = "" ]
		[ "$stderr" = "cfs-runtime: cannot enforce fs-verity (enforcement ${level:-require}) in store $STORE: fs-verity in $STORE/objects: kernel built without fs-verity: boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $POLICY (weaker: each file is hashed once before the container starts; a change to the store after that is not detected)" ]
		cr_json_log "$log" "$stderr"
		run "$RUNC" state "$id"
		[ "$status" -eq 1 ]
		cr_assert_nothing_left
	done
}

# --- read-only and writable roots -------------------------------------------

@test "read-only root (root.readonly = true): writing fails" {
	cr_annotate "$BUNDLE" "$SIGNED"
	[ "$(jq .root.readonly "$BUNDLE/config.json")" = true ]
	update_config "$BUNDLE" '.process.args = ["sh", "-c", "cat /data/hello.txt; echo x >/data/new"]'
	id=$(cid ro)
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "$output" = "$HELLO" ]
	[ "$stderr" = "sh: can't create /data/new: Read-only file system" ]
	grep -q "msg=\"mounted composefs image\" .*root=$STATE/$id/merged .*options=\"metacopy=on,redirect_dir=on,[^ ]*$STORE/objects,upperdir=$STATE/$id/upper,workdir=$STATE/$id/work\"" "$OWNLOG"
	[ ! -e "$BUNDLE/rootfs/data/new" ]
	cr_assert_gone "$id"
}

@test "writable root: writing works and reaches neither the store nor the bundle rootfs" {
	cr_annotate "$BUNDLE" "$SIGNED"
	# Markers that occur nowhere else (busybox holds many common words).
	new="cfs-bats-new-$RANDOM$RANDOM" changed="cfs-bats-changed-$RANDOM$RANDOM"
	update_config "$BUNDLE" '.root.readonly = false | .process.args = ["sh", "-c", "echo '"$new"' >/data/new && echo '"$changed"' >/data/hello.txt && cat /data/new /data/hello.txt && sleep 100"]'
	id=$(cid rw)
	"$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$id" </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1
	cr_wait_status "$id" running
	for _ in $(seq 50); do
		[ "$(cat "$BATS_TEST_TMPDIR/out")" = "$new"$'\n'"$changed" ] && break
		sleep 0.1
	done
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "$new"$'\n'"$changed" ]
	# An upper and work directory in the state directory (the lower layers'
	# syntax depends on the kernel: lowerdir+/datadir+ or lowerdir=A::B).
	grep -q "msg=\"mounted composefs image\" .*options=\"metacopy=on,redirect_dir=on,.*,upperdir=$STATE/$id/upper,workdir=$STATE/$id/work\"" "$OWNLOG"
	# The writes are in the container's upper layer, in its state directory.
	[ "$(cat "$STATE/$id/upper/data/new")" = "$new" ]
	[ "$(cat "$STATE/$id/upper/data/hello.txt")" = "$changed" ]
	# ... and nowhere else.
	[ ! -e "$BUNDLE/rootfs/data/new" ]
	[ "$(cat "$BUNDLE/rootfs/data/hello.txt")" = "$HELLO" ]
	obj=$(cr_object_of "$TMPL/rootfs/data/hello.txt")
	[ "$(cat "$obj")" = "$HELLO" ]
	run ! grep -rqs -e "$new" -e "$changed" "$STORE" "$BUNDLE/rootfs"
	run "$CFS_RUNTIME" delete -f "$id"
	[ "$status" -eq 0 ]
	cr_assert_nothing_left
	[ "$(cat "$obj")" = "$HELLO" ]
}

# --- cleanup ----------------------------------------------------------------

@test "run without -d: the poststop hook removes mount and state directory" {
	cr_annotate "$BUNDLE" "$SIGNED"
	id=$(cid run)
	[ "$(jq -r '.hooks.poststop | length' "$BUNDLE/config.json")" = 0 ]
	run --separate-stderr "$CFS_RUNTIME" run --bundle "$BUNDLE" "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	# The hook create added: cfs-runtime cleanup ID with this configuration.
	[ "$(jq -c '.hooks.poststop[0].args' "$BUNDLE/config.json")" = "[\"cfs-runtime\",\"--cfs-config\",\"$CFS_RUNTIME_CONFIG\",\"cleanup\",\"$id\"]" ]
	[ "$(jq -r .root.path "$BUNDLE/config.json")" = "$STATE/$id/merged" ]
	cr_assert_nothing_left
}

@test "run --keep: the root stays mounted until delete" {
	cr_annotate "$BUNDLE" "$SIGNED"
	id=$(cid keep)
	run --separate-stderr "$CFS_RUNTIME" run --keep --bundle "$BUNDLE" "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	[ "$("$RUNC" state "$id" | jq -r .status)" = stopped ]
	[ "$(cr_mounts "$STATE/$id/merged")" = "$STATE/$id/merged" ]
	run "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 0 ]
	cr_assert_nothing_left
}

@test "create then delete leaves nothing" {
	cr_annotate "$BUNDLE" "$SIGNED"
	id=$(cid cd)
	"$CFS_RUNTIME" create --bundle "$BUNDLE" "$id" </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	[ "$("$RUNC" state "$id" | jq -r .status)" = created ]
	[ -f "$STATE/$id/state.json" ]
	[ "$(jq -r .digest "$STATE/$id/state.json")" = "$DIGEST" ]
	[ "$(cr_mounts "$STATE/$id/merged")" = "$STATE/$id/merged" ]
	run "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_nothing_left
}

@test "delete --force of a running container unmounts" {
	cr_annotate "$BUNDLE" "$SIGNED"
	set_args "$BUNDLE" sleep 100
	id=$(cid force)
	"$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>&1
	cr_wait_status "$id" running
	[ -n "$(cr_mounts "$STATE/$id/merged")" ]
	# Without --force runc refuses, and the mount stays.
	run "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot delete container $id that is not stopped: running"* ]]
	[ -n "$(cr_mounts "$STATE/$id/merged")" ]
	run "$CFS_RUNTIME" delete --force "$id"
	[ "$status" -eq 0 ]
	# cfs-runtime unmounted before handing off (the host's mount is not
	# busy: the container holds its own copy in its mount namespace).
	grep -q "level=INFO msg=\"unmounted on delete\" .*id=$id" "$OWNLOG"
	run grep 'mount still busy' "$OWNLOG"
	[ "$status" -eq 1 ]
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	cr_assert_nothing_left
}

@test "a create that fails after mounting (runc cannot exec the binary): nothing left, delete too" {
	cr_annotate "$BUNDLE" "$SIGNED"
	set_args "$BUNDLE" /no/such/binary
	id=$(cid fail)
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	# runc's own error, exactly as runc writes it (text format on stderr).
	[ "${stderr#time=\"*\" }" = 'level=error msg="runc create failed: unable to start container process: exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory"' ]
	# The image was verified and mounted before runc failed; runc destroyed
	# the container and ran the poststop hook.
	grep -q "msg=mounted .*id=$id" "$OWNLOG"
	cr_assert_nothing_left
	run --separate-stderr "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 1 ]
	[ "${stderr#time=\"*\" }" = 'level=error msg="container does not exist"' ]
	cr_assert_nothing_left
}

@test "a create that fails after mounting (runc rejects the config): unmounted without a delete" {
	cr_annotate "$BUNDLE" "$SIGNED"
	update_config "$BUNDLE" '.process.cwd = "relative"'
	id=$(cid reject)
	run --separate-stderr "$CFS_RUNTIME" create --bundle "$BUNDLE" "$id"
	[ "$status" -eq 1 ]
	[ "${stderr#time=\"*\" }" = 'level=error msg="runc create failed: Cwd must be an absolute path"' ]
	grep -q "msg=mounted .*id=$id" "$OWNLOG"
	# runc failed before it had a container, so no poststop hook runs: the
	# exit watcher started before the hand-off unmounts on its own.
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	for _ in $(seq 100); do
		[ -e "$STATE/$id" ] || break
		sleep 0.1
	done
	cr_assert_nothing_left
	grep -q "msg=\"runtime rejected the container after mount: unmounting\" .*id=$id" "$OWNLOG"
	# A delete afterwards is runc's answer and changes nothing.
	run --separate-stderr "$CFS_RUNTIME" delete "$id"
	[ "$status" -eq 1 ]
	[ "${stderr#time=\"*\" }" = 'level=error msg="container does not exist"' ]
	cr_assert_nothing_left
}

@test "cleanup ID removes what is left of a container runc no longer knows" {
	cr_annotate "$BUNDLE" "$SIGNED"
	id=$(cid lost)
	"$CFS_RUNTIME" create --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>&1
	# The poststop hook fails (unreadable configuration), so runc forgets
	# the container and the mount is left behind.
	mv "$CFS_RUNTIME_CONFIG" "$CFS_RUNTIME_CONFIG.off"
	echo 'not toml [' >"$CFS_RUNTIME_CONFIG"
	"$RUNC" delete -f "$id" >/dev/null 2>&1 || true
	mv "$CFS_RUNTIME_CONFIG.off" "$CFS_RUNTIME_CONFIG"
	run "$RUNC" state "$id"
	[ "$status" -eq 1 ]
	[ -n "$(cr_mounts "$STATE/$id/merged")" ]
	run --separate-stderr "$CFS_RUNTIME" cleanup "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	[ "$stderr" = "" ]
	cr_assert_nothing_left
	# Again: nothing to do is not an error.
	run "$CFS_RUNTIME" cleanup "$id"
	[ "$status" -eq 0 ]
}

@test "cleanup and hook: usage errors exit 2 with one line, --help is the tools binary's" {
	# The runtime binary parses these two commands' flags itself (it links
	# no urfave/cli); their help comes from cfs-runtime-tools.
	run --separate-stderr "$CFS_RUNTIME" cleanup --bogus
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: cleanup: flag provided but not defined: -bogus" ]
	run --separate-stderr "$CFS_RUNTIME" cleanup a b
	[ "$status" -eq 2 ]
	[ "$stderr" = "cfs-runtime: cleanup: at most one container id" ]
	run --separate-stderr "$CFS_RUNTIME" cleanup --after-exit x a
	[ "$status" -eq 2 ]
	[ "$stderr" = 'cfs-runtime: cleanup: invalid value "x" for flag -after-exit: parse error' ]
	run --separate-stderr "$CFS_RUNTIME" cleanup "../x"
	[ "$status" -eq 1 ]
	[ "$stderr" = 'cfs-runtime: cleanup: invalid container id "../x"' ]
	run --separate-stderr "$CFS_RUNTIME" hook poststop </dev/null
	[ "$status" -eq 2 ]
	[ "$stderr" = 'cfs-runtime: hook: want the stage createRuntime, got "poststop" (usage: cfs-runtime hook createRuntime <STATE)' ]
	run --separate-stderr "$CFS_RUNTIME" cleanup --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"cleanup - unmount and remove the composefs state of containers the runtime no longer knows"* ]]
	run --separate-stderr "$CFS_RUNTIME" hook -h
	[ "$status" -eq 0 ]
	[[ "$output" == *"hook - run as an OCI createRuntime hook"* ]]
}

@test "cleanup without ID removes leftovers older than a minute, keeps known and young ones" {
	cr_annotate "$BUNDLE" "$SIGNED"
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	known=$(cid known) old=$(cid old) young=$(cid young)
	for id in "$known" "$old" "$young"; do
		cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
		"$CFS_RUNTIME" create --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>&1
	done
	mv "$CFS_RUNTIME_CONFIG" "$CFS_RUNTIME_CONFIG.off"
	echo 'not toml [' >"$CFS_RUNTIME_CONFIG"
	for id in "$old" "$young"; do
		"$RUNC" delete -f "$id" >/dev/null 2>&1 || true
	done
	mv "$CFS_RUNTIME_CONFIG.off" "$CFS_RUNTIME_CONFIG"
	[ -d "$STATE/$old" ]
	[ -d "$STATE/$young" ]
	cr_age "$old" 120
	cr_age "$known" 120

	run --separate-stderr "$CFS_RUNTIME" cleanup
	[ "$status" -eq 0 ]
	[ "$output" = "removed $old" ]
	cr_assert_gone "$old"
	[ -n "$(cr_mounts "$STATE/$young/merged")" ]
	[ -n "$(cr_mounts "$STATE/$known/merged")" ]
	[ "$("$RUNC" state "$known" | jq -r .status)" = created ]

	run "$CFS_RUNTIME" cleanup "$young"
	[ "$status" -eq 0 ]
	run "$CFS_RUNTIME" delete "$known"
	[ "$status" -eq 0 ]
	cr_assert_nothing_left
}

@test "cleanup asks the runc --root given before it, and keeps that root's containers" {
	cr_annotate "$BUNDLE" "$SIGNED"
	root="$BATS_TMPDIR/runc-root"
	id=$(cid otherroot)
	"$CFS_RUNTIME" --root "$root" create --bundle "$BUNDLE" "$id" </dev/null >/dev/null 2>&1
	[ "$("$RUNC" --root "$root" state "$id" | jq -r .status)" = created ]
	cr_age "$id" 120
	run --separate-stderr "$CFS_RUNTIME" --root "$root" cleanup
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	[ "$(cr_mounts "$STATE/$id/merged")" = "$STATE/$id/merged" ]
	run "$CFS_RUNTIME" --root "$root" delete "$id"
	[ "$status" -eq 0 ]
	cr_assert_nothing_left
}

@test "reusing a bundle: refused while its container lives, fine afterwards, one hook" {
	cr_annotate "$BUNDLE" "$SIGNED"
	set_args "$BUNDLE" sleep 100
	first=$(cid first) second=$(cid second) third=$(cid third)
	"$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$first" </dev/null >/dev/null 2>&1
	cr_wait_status "$first" running
	run --separate-stderr "$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$second" </dev/null
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: bundle $BUNDLE is in use: its root.path is the composefs mount of container \"$first\" (one bundle directory serves one container at a time)" ]
	[ ! -e "$STATE/$second" ]
	# the first container keeps its root
	run "$CFS_RUNTIME" exec "$first" cat /data/hello.txt
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	run "$CFS_RUNTIME" delete -f "$first"
	[ "$status" -eq 0 ]
	cr_assert_nothing_left
	# Once it is gone the bundle serves a new container, and the config
	# carries exactly one cfs-runtime poststop hook (for the new id).
	"$CFS_RUNTIME" run -d --bundle "$BUNDLE" "$third" </dev/null >/dev/null 2>&1
	cr_wait_status "$third" running
	[ "$(jq '[.hooks.poststop[] | select(.args | index("cleanup"))] | length' "$BUNDLE/config.json")" -eq 1 ]
	[ "$(jq -r '.hooks.poststop[-1].args[-1]' "$BUNDLE/config.json")" = "$third" ]
	"$CFS_RUNTIME" delete -f "$third"
	cr_assert_nothing_left
}

# --- many and concurrent ----------------------------------------------------

@test "200 create/delete cycles leave no mounts, loop devices or state directories" {
	cr_annotate "$BUNDLE" "$SIGNED"
	set_args "$BUNDLE" true
	# Start from a fresh config.json each time, as podman does: the point is
	# the mount lifecycle, not a bundle growing a hook per container.
	cp "$BUNDLE/config.json" "$BATS_TEST_TMPDIR/config.json.orig"
	before=$(wc -l </proc/self/mountinfo)
	id=$(cid cycle)
	err="$BATS_TEST_TMPDIR/err"
	for i in $(seq 200); do
		cp "$BATS_TEST_TMPDIR/config.json.orig" "$BUNDLE/config.json"
		if ! "$CFS_RUNTIME" create --bundle "$BUNDLE" "$id-$i" </dev/null >"$err" 2>&1; then
			echo "create $i failed: $(cat "$err")"
			false
		fi
		if ! "$CFS_RUNTIME" delete "$id-$i" >"$err" 2>&1; then
			echo "delete $i failed: $(cat "$err")"
			false
		fi
	done
	[ "$(grep -c 'msg=mounted ' "$OWNLOG")" -eq 200 ]
	# create mounted 200 times; a plain delete leaves the unmount to the
	# poststop hook, which logs only trouble.
	run ! grep -E 'level=(ERROR|WARN) msg="(unmount|mount still busy)' "$OWNLOG"
	cr_assert_nothing_left
	[ "$(wc -l </proc/self/mountinfo)" -eq "$before" ]
	[ -z "$("$RUNC" list -q | grep "^$id-" || true)" ]
}

@test "10 concurrent creates of a new image: one image in the store, ten containers that run" {
	ids=()
	for i in $(seq 0 9); do
		cp -a "$TMPL" "$BATS_TEST_TMPDIR/b$i"
		cr_annotate "$BATS_TEST_TMPDIR/b$i" "$SIGNED"
		ids+=("$(cid "c$i")")
	done
	[ ! -e "$STORE/images/$DIGEST" ]
	for i in $(seq 0 9); do
		(
			"$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/b$i" "${ids[$i]}" \
				</dev/null >"$BATS_TEST_TMPDIR/out$i" 2>"$BATS_TEST_TMPDIR/err$i"
			echo $? >"$BATS_TEST_TMPDIR/rc$i"
		) &
	done
	wait
	for i in $(seq 0 9); do
		[ "$(cat "$BATS_TEST_TMPDIR/rc$i")" = 0 ] || { cat "$BATS_TEST_TMPDIR/err$i"; false; }
		[ "$("$RUNC" state "${ids[$i]}" | jq -r .status)" = created ]
	done
	[ "$(ls "$STORE/images")" = "$DIGEST" ]
	[ "$(fsverity digest --compact "$STORE/images/$DIGEST")" = "$DIGEST" ]
	# The store holds the image and the two objects (busybox, hello.txt),
	# nothing twice, no temporary leftovers.
	[ "$(find "$STORE/objects" -type f | wc -l)" -eq 3 ]
	[ -z "$(ls -A "$STORE/tmp")" ]
	for i in $(seq 0 9); do
		"$CFS_RUNTIME" start "${ids[$i]}"
	done
	for i in $(seq 0 9); do
		cr_wait_status "${ids[$i]}" stopped
		[ "$(cat "$BATS_TEST_TMPDIR/out$i")" = "$HELLO" ]
	done
	for i in $(seq 0 9); do
		"$CFS_RUNTIME" delete "${ids[$i]}"
	done
	cr_assert_nothing_left
}

@test "10 concurrent creates of a new image import its tree once" {
	for i in $(seq 0 9); do
		cp -a "$TMPL" "$BATS_TEST_TMPDIR/b$i"
		cr_annotate "$BATS_TEST_TMPDIR/b$i" "$SIGNED"
	done
	for i in $(seq 0 9); do
		"$CFS_RUNTIME" create --bundle "$BATS_TEST_TMPDIR/b$i" "$(cid "c$i")" </dev/null >/dev/null 2>&1 &
	done
	wait
	for i in $(seq 0 9); do
		[ "$("$RUNC" state "$(cid "c$i")" | jq -r .status)" = created ]
	done
	# One create imports the tree; the others wait for it and find the
	# signed image in the store (a 200 MB rootfs must not be hashed and
	# copied ten times over).
	[ "$(grep -c 'msg="imported bundle root filesystem"' "$OWNLOG")" -eq 1 ]
}

@test "concurrent creates from one bundle: one container gets it, the others are refused" {
	# create points the bundle's root.path at the container's mount: one
	# bundle directory serves one container at a time. Concurrent creates
	# must never share a root: each either gets its own or is refused.
	cr_annotate "$BUNDLE" "$SIGNED"
	update_config "$BUNDLE" '.root.readonly = false | .process.args = ["sleep", "100"]'
	ids=()
	for i in $(seq 0 5); do
		ids+=("$(cid "s$i")")
	done
	for i in "${!ids[@]}"; do
		"$CFS_RUNTIME" create --bundle "$BUNDLE" "${ids[$i]}" </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/err$i" &
	done
	wait
	created=()
	for i in "${!ids[@]}"; do
		if "$RUNC" state "${ids[$i]}" >/dev/null 2>&1; then
			created+=("${ids[$i]}")
		else
			grep -q "^cfs-runtime: bundle $BUNDLE is in use: its root.path is the composefs mount of container \"cfs-bats-" "$BATS_TEST_TMPDIR/err$i"
			[ ! -e "$STATE/${ids[$i]}" ]
		fi
	done
	[ "${#created[@]}" -eq 1 ]
	id=${created[0]}
	"$CFS_RUNTIME" start "$id"
	"$CFS_RUNTIME" exec "$id" sh -c "echo $id >/whoami"
	[ "$(cat "$STATE/$id/upper/whoami")" = "$id" ]
	"$CFS_RUNTIME" delete -f "$id"
	cr_assert_nothing_left
	# Once that container is gone the bundle can be used again.
	update_config "$BUNDLE" '.process.args = ["sh", "-c", "exit 3"]'
	run "$CFS_RUNTIME" run --bundle "$BUNDLE" "$(cid again)" </dev/null
	[ "$status" -eq 3 ]
	cr_assert_nothing_left
}
