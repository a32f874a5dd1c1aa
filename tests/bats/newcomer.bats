#!/usr/bin/env bats
# shellcheck disable=SC2154 # bats sets $output, $status, $lines
# A newcomer's first hour (issue 19), from the README alone.
#
# The walk-through: each fenced ```sh block that follows a
# <!-- walkthrough:NAME --> marker in README.md is extracted (not copied)
# and run as a user pastes it, one block after the other in the same shell
# state (working directory, $digest). It runs hermetically: the paths the
# README names (/tmp/walk, /etc/cfs-runtime, /var/lib/cfs-runtime,
# /etc/containers/containers.conf.d) are rewritten into this run's temporary
# directory, and the README's `cfs-runtime` and `podman` are shell functions
# that add this run's configuration (--cfs-config; podman's CONTAINERS_CONF
# made of contrib's drop-in and the README's own default_ulimits block).
# What each block prints is compared with the ```text block the README
# shows after it, digests, keys and signatures aside.
#
# The mistakes: each test provokes one mistake a newcomer made and asserts
# that the message says what is wrong and what to do (says STATUS WRONG DO).
# Add a mistake as a test that sets up the mistake with the fixtures below
# (mistake_bundle, M_* variables), runs it with `run` and ends with `says`.
#
# Environment: CFS_RUNTIME, RUNC, BUSYBOX (helpers.bash). Needs root and
# podman (tests/install-deps.sh).

load helpers
bats_require_minimum_version 1.5.0

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
README=$REPO/README.md

# walkthrough NAME: the ```sh block after <!-- walkthrough:NAME -->.
walkthrough() {
	awk -v m="<!-- walkthrough:$1 -->" '
		$0 == m { f = 1; next }
		f == 1 && $0 == "```sh" { f = 2; next }
		f == 1 { exit }
		f == 2 && $0 == "```" { exit }
		f == 2 { print }
	' "$README"
}

# shown NAME: the ```text block the README shows after block NAME, before
# the next command block or step (nothing when there is none).
shown() {
	awk -v m="<!-- walkthrough:$1 -->" '
		$0 == m { f = 1; next }
		f == 1 && $0 == "```" { f = 2; next }
		f == 2 && $0 == "```text" { f = 3; next }
		f == 2 && ($0 ~ /^<!-- walkthrough:/ || $0 == "```sh" || $0 ~ /^\*\*[0-9]+\./ || $0 ~ /^#/) { exit }
		f == 3 && $0 == "```" { exit }
		f == 3 { print }
	' "$README"
}

# hermetic: the README's paths and image name, moved into this run.
hermetic() {
	sed -e "s|/tmp/walk|$W/walk|g" \
		-e "s|/etc/cfs-runtime|$W/etc|g" \
		-e "s|/var/lib/cfs-runtime|$W/store|g" \
		-e "s|/etc/containers/containers.conf.d|$W/containers.conf.d|g" \
		-e "s|localhost/walk:1|$WALK_IMAGE|g"
}

# normal: what differs from run to run (digests, key fingerprints,
# signatures) replaced by placeholders.
normal() {
	sed -E -e 's/[0-9a-f]{64}/HEX/g' -e 's/(\.cosign=)[A-Za-z0-9+\/]+=*/\1SIG/g'
}

# step NAME: run README block NAME in the walk-through's shell.
step() {
	local script
	script=$(walkthrough "$1" | hermetic)
	if [ -z "$script" ]; then
		echo "README.md has no <!-- walkthrough:$1 --> block" >&2
		return 1
	fi
	# shellcheck disable=SC2016 # expanded by the walk-through's shell
	run env W="$W" CFS_RUNTIME="$CFS_RUNTIME" bash -c '
		cfs-runtime() { "$CFS_RUNTIME" --cfs-config "$W/config.toml" "$@"; }
		podman() { CONTAINERS_CONF=$W/containers.conf command podman --runtime-flag "cfs-config=$W/config.toml" "$@"; }
		cd "$(cat "$W/cwd")" && . "$W/vars"
		'"$script"'
		rc=$?
		pwd >"$W/cwd" && declare -p digest >"$W/vars" 2>/dev/null
		exit $rc'
	echo "$output"
}

# step_shows NAME: block NAME's output is what the README shows.
step_shows() {
	local want
	want=$(shown "$1" | hermetic | normal)
	[ -n "$want" ] || {
		echo "README.md shows no output after block $1" >&2
		return 1
	}
	diff -u <(echo "$want") <(echo "$output" | normal)
}

# says STATUS WRONG DO: the last `run` exited STATUS, and its message says
# what is wrong (contains WRONG) and what to do (contains DO).
says() {
	echo "$output"
	if [ "$status" -ne "$1" ]; then
		echo "exit status $status, want $1" >&2
		return 1
	fi
	if [[ "$output" != *"$2"* ]]; then
		echo "the message does not say what is wrong: want \"$2\"" >&2
		return 1
	fi
	if [[ "$output" != *"$3"* ]]; then
		echo "the message does not say what to do: want \"$3\"" >&2
		return 1
	fi
}

# mistake_bundle NAME ANNOTATIONS-JSON: a bundle of tree A (imported) with
# these annotations; prints its directory.
mistake_bundle() {
	local b=$BATS_TEST_TMPDIR/$1
	mkdir -p "$b"
	cp -a "$M/a" "$b/rootfs"
	(cd "$b" && "$RUNC" spec)
	jq --argjson a "$2" '.process.terminal = false | .process.args = ["true"] | .annotations = $a' \
		"$b/config.json" >"$b/config.json.new" && mv "$b/config.json.new" "$b/config.json"
	echo "$b"
}

# mistake_config NAME ENFORCEMENT UNSIGNED: the mistakes' configuration
# (same key, store and state) with a policy of this level; prints its path.
mistake_config() {
	local d=$BATS_TEST_TMPDIR/$1
	mkdir -p "$d"
	write_policy "$d/policy.toml" "$2" "$3" "$M/good.pub"
	sed "s|^policy = .*|policy = \"$d/policy.toml\"|" "$M/config.toml" >"$d/config.toml"
	echo "$d/config.toml"
}

# signed_a: the annotations `cfs-runtime sign --format json` prints for
# tree A.
signed_a() {
	"$CFS_RUNTIME" sign --key "$M/good.key" --format json "$M_DIGEST_A"
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	if ! command -v podman >/dev/null; then
		if [ -n "${CI:-}" ]; then
			echo "podman not installed (tests/install-deps.sh)" >&2
			return 1
		fi
		skip "podman not installed (tests/install-deps.sh)"
	fi
	if [ ! -x "$CFS_RUNTIME" ]; then
		echo "cfs-runtime binary $CFS_RUNTIME not found: build it or set CFS_RUNTIME" >&2
		return 1
	fi
	# The walk-through's world. /tmp/walk must not exist in it yet.
	export W=$BATS_FILE_TMPDIR/w WALK_IMAGE=localhost/cfs-bats-newcomer-$$/walk:1
	mkdir -p "$W/etc" "$W/containers.conf.d"
	echo / >"$W/cwd"
	: >"$W/vars"
	# podman's configuration: contrib's drop-in, as the README installs it,
	# pointed at the binary under test; step 4 adds the README's ulimits.
	sed "s|\"/usr/local/bin/cfs-runtime\"|\"$CFS_RUNTIME\"|" "$REPO/contrib/containers.conf.d/cfs-runtime.conf" >"$W/containers.conf"
	grep -qF "cfs = [\"$CFS_RUNTIME\"]" "$W/containers.conf" || {
		echo "contrib/containers.conf.d/cfs-runtime.conf: no cfs = [\"/usr/local/bin/cfs-runtime\"]" >&2
		return 1
	}
	cat >"$W/config.toml" <<-EOF
		runtime = "$RUNC"
		policy = "$W/etc/policy.toml"
		store_dir = "$W/store"
		state_dir = "$W/state"
		log_file = "$W/own.log"
		audit_file = "$W/audit.jsonl"
	EOF

	# The mistakes' world: key, policy, store with tree A; tree B signed
	# but never imported.
	export M=$BATS_FILE_TMPDIR/m
	mkdir -p "$M"
	make_key "$M" good
	write_policy "$M/policy.toml" userspace reject "$M/good.pub"
	cat >"$M/config.toml" <<-EOF
		runtime = "$RUNC"
		policy = "$M/policy.toml"
		store_dir = "$M/store"
		state_dir = "$M/state"
		log_file = "$M/own.log"
		audit_file = "$M/audit.jsonl"
	EOF
	make_rootfs "$M/a"
	make_rootfs "$M/b"
	echo "only in B" >"$M/b/etc/b"
	M_DIGEST_A=$("$CFS_RUNTIME" --cfs-config "$M/config.toml" import "$M/a")
	M_DIGEST_B=$("$CFS_RUNTIME" digest "$M/b")
	export M_DIGEST_A M_DIGEST_B
}

teardown_file() {
	[ "$(id -u)" = 0 ] || return 0
	[ -z "${WALK_IMAGE:-}" ] || podman rmi -f "$WALK_IMAGE" >/dev/null 2>&1 || true
}

setup() {
	requires_root
	cleanup_containers
}

# ---- the walk-through, as the README has it ----------------------------

@test "README: the walk-through has every step's commands between markers" {
	local s
	for s in step1 step2 step3 step4 ulimits step5 step6 step7 step8 step8b step9; do
		[ -n "$(walkthrough "$s")" ] || {
			echo "README.md: no <!-- walkthrough:$s --> before a \`\`\`sh block" >&2
			return 1
		}
	done
}

@test "walk-through 1: a root filesystem and a podman image of it" {
	step step1
	[ "$status" -eq 0 ]
	[ -x "$W/walk/rootfs/bin/busybox" ]
	podman image exists "$WALK_IMAGE"
}

@test "walk-through 2: a key and a policy; policy check prints it as the README shows" {
	step step2
	[ "$status" -eq 0 ]
	step_shows step2
}

@test "walk-through 3: import and sign print what the README shows" {
	step step3
	[ "$status" -eq 0 ]
	step_shows step3
}

@test "walk-through 4: podman runs it, with the README's default_ulimits for this host" {
	step ulimits
	[ "$status" -eq 0 ]
	# podman reads the drop-ins the README installs: contrib's and this one.
	cat "$W/containers.conf.d/ulimits.conf" >>"$W/containers.conf"
	step step4
	[ "$status" -eq 0 ]
	step_shows step4
}

@test "walk-through 5: without a signature it does not start, with the README's message" {
	step step5
	[ "$status" -ne 0 ]
	step_shows step5
}

@test "walk-through 6: a key the policy does not trust is refused, with the README's message" {
	step step6
	[ "$status" -ne 0 ]
	step_shows step6
}

@test "walk-through 7: tampered store content is refused, naming the file" {
	step step7
	[ "$status" -ne 0 ]
	step_shows step7
}

@test "walk-through 8: fsck finds the damage, import repairs it, the container runs again" {
	step step8
	[ "$status" -ne 0 ]
	step_shows step8
	step step8b
	[ "$status" -eq 0 ]
	step_shows step8b
}

@test "walk-through 9: clean up leaves nothing of the walk-through" {
	step step9
	[ "$status" -eq 0 ]
	[ ! -e "$W/walk" ] && [ ! -e "$W/etc/policy.toml" ]
	run podman image exists "$WALK_IMAGE"
	[ "$status" -ne 0 ]
}

# ---- mistakes: each message says what is wrong and what to do -----------

@test "mistake: podman's rlimit error is answered in the README's Troubleshooting, with the fix" {
	local text="error setting rlimit type 7: operation not permitted" trouble
	trouble=$(awk '/^## /{f = ($0 == "## Troubleshooting")} f' "$README")
	[[ "$trouble" == *"\`$text\`"* ]]
	[[ "$(tr '\n' ' ' <<<"$trouble" | tr -s ' ')" == *"--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"* ]]
	# and at walk-through step 4, where it happens
	[[ "$(awk '/^\*\*4\./{f = 1} /^\*\*5\./{f = 0} f' "$README")" == *"$text"* ]]
	# The text is podman's own on this host when it lacks CAP_SYS_RESOURCE
	# (podman with runc, no limits): the README quotes it exactly.
	local img=localhost/cfs-bats-newcomer-$$/rlimit:1
	tar -C "$M/a" -cf "$BATS_TEST_TMPDIR/a.tar" .
	podman import -q "$BATS_TEST_TMPDIR/a.tar" "$img" >/dev/null
	CONTAINERS_CONF=/dev/null run podman run --rm "$img" /bin/true
	podman rmi -f "$img" >/dev/null 2>&1 || true
	if [ "$status" -eq 0 ]; then
		skip "podman sets its rlimits on this host (CAP_SYS_RESOURCE)"
	fi
	[[ "$output" == *"$text"* ]]
}

@test "mistake: signed but not imported: the digest is not in the store, import it" {
	b=$(mistake_bundle notimported "$("$CFS_RUNTIME" sign --key "$M/good.key" --format json "$M_DIGEST_B")")
	run "$CFS_RUNTIME" --cfs-config "$M/config.toml" run --bundle "$b" "$(cid notimported)"
	says 1 "but the signed digest is $M_DIGEST_B, which is not in the store $M/store" \
		"import the signed tree (cfs-runtime import --store $M/store TREE)"
}

@test "mistake: the digest annotation written as sha256:HEX says to write the bare hex" {
	b=$(mistake_bundle prefixed "$("$CFS_RUNTIME" sign --key "$M/good.key" --format json "$M_DIGEST_A" |
		jq --arg d "sha256:$M_DIGEST_A" '.["composefs.merged.erofs.v1.fsverity-sha256-12"] = $d')")
	run "$CFS_RUNTIME" --cfs-config "$M/config.toml" run --bundle "$b" "$(cid prefixed)"
	says 1 "digest \"sha256:$M_DIGEST_A\" has the prefix \"sha256:\"" \
		"the value is the bare lowercase hex digest ($M_DIGEST_A)"
}

@test "mistake: a truncated signature is malformed, not another key's; pass what sign printed" {
	b=$(mistake_bundle truncated "$("$CFS_RUNTIME" sign --key "$M/good.key" --format json "$M_DIGEST_A" |
		jq '.["composefs.merged.erofs.v1.fsverity-sha256-12.cosign"] |= .[0:40]')")
	run "$CFS_RUNTIME" --cfs-config "$M/config.toml" run --bundle "$b" "$(cid truncated)"
	says 1 "malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12.cosign" \
		"pass the value \`cfs-runtime sign\` printed"
	[[ "$output" != *"made by another key"* ]]
}

@test "mistake: enforcement = \"require\" on a host without fs-verity: policy check and create say what to change" {
	[ ! -d /proc/sys/fs/verity ] || skip "this kernel has fs-verity: tests/vm proves require"
	local cfg policy=$BATS_TEST_TMPDIR/require/policy.toml
	cfg=$(mistake_config require require reject)
	local fix="boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $policy (weaker:"
	run "$CFS_RUNTIME" --cfs-config "$cfg" policy check
	says 1 "cannot enforce fs-verity (enforcement require) in store $M/store: fs-verity in $M/store/objects: kernel built without fs-verity" "$fix"
	# create, with the signed image already imported (as the walk-through
	# does it): the kernel is asked to measure it.
	b=$(mistake_bundle require "$(signed_a)")
	run "$CFS_RUNTIME" --cfs-config "$cfg" run --bundle "$b" "$(cid require)"
	says 1 "cannot enforce fs-verity (enforcement require) in store $M/store: composefs digest $M_DIGEST_A: image $M/store/images/$M_DIGEST_A: kernel built without fs-verity" "$fix"
}

@test "mistake: a signature annotation ending .cosgin is refused, naming the suffixes expected" {
	cfg=$(mistake_config cosgin userspace allow)
	b=$(mistake_bundle cosgin "$(signed_a | jq 'with_entries(.key |= sub("\\.cosign$"; ".cosgin"))')")
	run "$CFS_RUNTIME" --cfs-config "$cfg" run --bundle "$b" "$(cid cosgin)"
	says 1 'malformed annotation "composefs.merged.erofs.v1.fsverity-sha256-12.cosgin": unknown signature suffix ".cosgin"' \
		"(want .sig, .cosign or .sigstore-bundle)"
}

@test "mistake: a typo in the annotation key is refused, not run unsigned, naming the wrong part" {
	# unsigned = "allow": a key not recognised would start the container
	# unsigned.
	cfg=$(mistake_config fsverty userspace allow)
	b=$(mistake_bundle fsverty "$(signed_a | jq 'with_entries(.key |= sub("fsverity-"; "fsverty-"))')")
	run "$CFS_RUNTIME" --cfs-config "$cfg" run --bundle "$b" "$(cid fsverty)"
	says 1 'malformed annotation "composefs.merged.erofs.v1.fsverty-sha256-12": looks like a mistyped composefs annotation: "fsverty-sha256-12" does not start with "fsverity-"' \
		"composefs annotation keys are composefs.merged.erofs.v1.fsverity-{sha256|sha512}-{12|16}, followed by .sig, .cosign or .sigstore-bundle"
}

@test "mistake: a wrong COSIGN_PASSWORD is worded alike for PKCS#8 and legacy PEM encrypted keys" {
	local k=$BATS_TEST_TMPDIR
	openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:s3cret -in "$M/good.key" -out "$k/pkcs8.key"
	openssl ec -aes256 -passout pass:s3cret -in "$M/good.key" -out "$k/legacy.key" 2>/dev/null
	grep -q '^-----BEGIN ENCRYPTED PRIVATE KEY-----$' "$k/pkcs8.key"
	grep -q '^Proc-Type: 4,ENCRYPTED$' "$k/legacy.key"
	for key in pkcs8 legacy; do
		COSIGN_PASSWORD=wrong run "$CFS_RUNTIME" sign --key "$k/$key.key" "$M_DIGEST_A"
		says 1 "cfs-runtime: sign: $k/$key.key: private key: wrong password" "(from \$COSIGN_PASSWORD)"
		# the right one signs
		COSIGN_PASSWORD=s3cret run "$CFS_RUNTIME" sign --key "$k/$key.key" "$M_DIGEST_A"
		[ "$status" -eq 0 ]
	done
}

@test "mistake: a typo in the configuration is printed once through podman, with its file and line" {
	local cfg img=localhost/cfs-bats-newcomer-$$/typo:1 n
	cfg=$(mistake_config typo userspace reject)
	echo 'stor_dir = "/x"' >>"$cfg"
	n=$(grep -n '^stor_dir' "$cfg" | cut -d: -f1)
	tar -C "$M/a" -cf "$BATS_TEST_TMPDIR/a.tar" .
	podman import -q "$BATS_TEST_TMPDIR/a.tar" "$img" >/dev/null
	# As the README runs podman: contrib's drop-in names the runtime cfs.
	CONTAINERS_CONF=$W/containers.conf run podman --runtime-flag "cfs-config=$cfg" run --rm --runtime cfs \
		--ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "$img" /bin/true
	podman rmi -f "$img" >/dev/null 2>&1 || true
	says 126 "key stor_dir: unknown key" "cfs-runtime: invalid configuration: $cfg:$n:"
	# once: the refused create says it, the delete podman runs after it
	# does not say it again.
	[ "$(grep -c "key stor_dir: unknown key" <<<"$output")" = 1 ]
}

@test "mistake: cfs-runtime doctor on this host names fs-verity as missing and what to do" {
	[ ! -d /proc/sys/fs/verity ] || skip "this kernel has fs-verity"
	local cfg
	cfg=$(mistake_config doctor require reject)
	run "$CFS_RUNTIME" --cfs-config "$cfg" doctor
	says 1 "FAIL  fs-verity (kernel): kernel built without fs-verity (CONFIG_FS_VERITY)" \
		"      to fix: boot a kernel built with CONFIG_FS_VERITY, or set enforcement = \"userspace\" in $BATS_TEST_TMPDIR/doctor/policy.toml"
	[[ "${lines[-1]}" == *" checks failed: containers would be refused on this host" ]]
}

# Usage mistakes: ARGS|WRONG|DO, one a line (ARGS split on spaces; KEY is
# the test key). Each exits 2, as runc and the other CLIs do.
USAGE_MISTAKES='sign DIGEST|Required flag "key" not set|"key"
sign --key KEY|want exactly one DIGEST, IMAGE or TREE argument|usage: cfs-runtime sign --key KEY
import|want exactly one TREE, oci:DIR[:NAME] or docker://REF argument|usage: cfs-runtime import
verify|want exactly one of --bundle DIR or --annotations FILE|usage: cfs-runtime verify
policy chek|unknown command "chek"|want check'

@test "mistake: usage errors exit 2 and say what was wrong and how it is used" {
	local args wrong todo
	while IFS='|' read -r args wrong todo; do
		args=${args//DIGEST/$M_DIGEST_A}
		# shellcheck disable=SC2086 # ARGS are words
		run "$CFS_RUNTIME" ${args//KEY/$M/good.key}
		says 2 "$wrong" "$todo" || {
			echo "for: cfs-runtime $args" >&2
			return 1
		}
	done <<<"$USAGE_MISTAKES"
}

# ---- import on a terminal ------------------------------------------------

@test "import draws its progress on a terminal, for a tree and an oci: layout; nothing of it when piped" {
	local store=$BATS_TEST_TMPDIR/store layout=$BATS_TEST_TMPDIR/layout img=localhost/cfs-bats-newcomer-$$/progress:1 blob
	# script(1) gives the command a terminal. A tree: the bytes stored and
	# the rate (the total is not known before the scan ends), then cleared.
	run -0 script -qec "'$CFS_RUNTIME' import --store '$store' '$M/b'" /dev/null
	[[ "$output" == *"import ("[1-9]*" MB, "*"B/s)"* ]]
	[[ "$output" == *$'\r'"$M_DIGEST_B"* ]]
	# An oci: layout (as podman save writes it): a bar per layer read,
	# named by the start of its blob digest, as for docker://.
	tar -C "$M/a" -cf "$BATS_TEST_TMPDIR/a.tar" .
	podman import -q "$BATS_TEST_TMPDIR/a.tar" "$img" >/dev/null
	podman save -q --format oci-dir -o "$layout" "$img"
	podman rmi -f "$img" >/dev/null 2>&1 || true
	blob=$(jq -r '.layers[0].digest' "$layout/blobs/sha256/$(jq -r '.manifests[0].digest' "$layout/index.json" | cut -d: -f2)")
	run -0 script -qec "'$CFS_RUNTIME' import --store '$store' oci:$layout" /dev/null
	[[ "$output" == *"${blob:0:19} 100% |"* ]]
	# Piped: the lines alone.
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$store" "$M/b"
	[ "$output" = "$M_DIGEST_B" ] && [ "$stderr" = "" ]
	run -0 --separate-stderr "$CFS_RUNTIME" import --store "$store" "oci:$layout"
	[[ "$stderr" != *"%"* && "$stderr" != *$'\r'* ]]
	[ "${#stderr_lines[@]}" = 2 ]
}

# ---- make install / uninstall ---------------------------------------------

@test "make uninstall removes everything make install put into DESTDIR" {
	[ "$CFS_RUNTIME" -ef "$REPO/bin/cfs-runtime" ] || skip "CFS_RUNTIME is not this checkout's bin/cfs-runtime"
	local d=$BATS_TEST_TMPDIR/destdir
	# -o build: install the binaries under test, do not rebuild them.
	run make -C "$REPO" -s -o build install DESTDIR="$d"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -x "$d/usr/local/bin/cfs-runtime" ]
	[ -f "$d/usr/local/share/man/man8/cfs-runtime.8" ]
	[ -f "$d/usr/local/share/bash-completion/completions/cfs-runtime" ]
	[ -f "$d/etc/cfs-runtime/policy.toml.example" ]
	# An administrator's file in the configuration directory stays.
	echo 'enforcement = "require"' >"$d/etc/cfs-runtime/policy.toml"
	run make -C "$REPO" -s uninstall DESTDIR="$d"
	echo "$output"
	[ "$status" -eq 0 ]
	run find "$d" -not -type d
	[ "$output" = "$d/etc/cfs-runtime/policy.toml" ]
	rm "$d/etc/cfs-runtime/policy.toml"
	make -C "$REPO" -s uninstall DESTDIR="$d"
	[ ! -e "$d/etc/cfs-runtime" ]
}

# ---- make demo ----------------------------------------------------------------

@test "make demo: the VM part is a short story with the kernel's refusal once, plain text when piped, the guest log in a file" {
	[ "$CFS_RUNTIME" -ef "$REPO/bin/cfs-runtime" ] || skip "CFS_RUNTIME is not this checkout's bin/cfs-runtime"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu not installed (make deps)"
	local log=$BATS_TEST_TMPDIR/vm.log vm
	# piped: bats captures the output
	CFS_DEMO_VM_LOG=$log run "$REPO/demo/run.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *$'\033'* ]]
	vm=$(awk '/^== 8\. /{f = 1; next} /^demo finished$/{f = 0} f && NF' <<<"$output")
	[ "$(wc -l <<<"$vm")" -ge 6 ] && [ "$(wc -l <<<"$vm")" -le 8 ]
	[ "$(grep -c 'Input/output error' <<<"$vm")" = 1 ]
	[[ "$vm" == *"   every check held ("*" passed); the guest's full log: $log" ]]
	run grep -cE '^(PASS|FAIL) |SeaBIOS|can.t open /proc/uptime|^vm: ' <<<"$vm"
	[ "$output" = 0 ]
	# the full log has what the story leaves out
	grep -q "PASS demo/tampered-object-eio" "$log"
	run grep -c "can't open /proc/uptime" "$log"
	[ "$output" = 0 ]
}
