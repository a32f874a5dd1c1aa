#!/usr/bin/env bats
# Which signed image may run where (issue 20), with runc: signer scopes
# against the image reference the engine's annotations name (set here in
# config.json as containerd's CRI plugin sets it), the revocation list
# (create, revoke, fsck, images), not_after and max_age, policy check's
# report, and the audit trail: every create of this file leaves exactly one
# line, which `cfs-runtime audit --json` reads back.
#
# The host has no fs-verity: the policy uses enforcement = "userspace".

# $output, $lines, $status and $stderr are set by bats' run.
# shellcheck disable=SC2154

load helpers
bats_require_minimum_version 1.5.0

HELLO="hello from a scoped image, $(printf '%0100d' 0)"
CRI_IMAGE=io.kubernetes.cri.image-name

# pol_config [EXTRA-POLICY-LINE...]: this test's configuration and policy:
# signer "app" (key app) scoped to registry.example.com/app, signer
# "other" (key other) scoped to quay.io/other, this test's revocation
# list, the file's audit trail. Extra lines go after the signers (so they
# belong to "other" unless they start a table).
pol_config() {
	POLICY="$BATS_TEST_TMPDIR/policy.toml"
	{
		echo 'enforcement = "userspace"'
		echo 'unsigned = "reject"'
		echo "revoked = \"$REVOKED\""
		echo '[[signer]]'
		echo 'name = "app"'
		echo "public_key = \"$KEYS/app.pub\""
		echo 'scopes = ["registry.example.com/app"]'
		echo "${APP_EXTRA:-}"
		echo '[[signer]]'
		echo 'name = "other"'
		echo "public_key = \"$KEYS/other.pub\""
		echo 'scopes = ["quay.io/other", "*.example.org"]'
		printf '%s\n' "$@"
	} >"$POLICY"
	chmod 0644 "$POLICY"
	export CFS_RUNTIME_CONFIG="$BATS_TEST_TMPDIR/config.toml"
	cat >"$CFS_RUNTIME_CONFIG" <<-EOF
		runtime = "$RUNC"
		store_dir = "$STORE"
		state_dir = "$STATE"
		log_file = "$LOGS/own-$BATS_TEST_NUMBER.log"
		policy = "$POLICY"
		audit_file = "$AUDIT"
	EOF
}

# pol_bundle KEY IMAGE: a fresh bundle signed by KEY whose annotations name
# IMAGE ("" = none) as containerd's CRI plugin does.
pol_bundle() {
	rm -rf "$BUNDLE"
	cp -a "$TMPL" "$BUNDLE"
	local ann
	ann=$("$CFS_RUNTIME" sign --key "$KEYS/$1.key" --format json "$DIGEST")
	if [ -n "$2" ]; then
		ann=$(jq --arg k "$CRI_IMAGE" --arg v "$2" '.[$k] = $v' <<<"$ann")
	fi
	update_config "$BUNDLE" ".annotations = $ann"
}

# pol_run NAME DECISION: run the bundle as container cid NAME; DECISION
# (allow or deny) is what the audit trail must record for it, once.
pol_run() {
	local id
	id=$(cid "$1")
	echo "$id $2" >>"$EXPECTED"
	run --separate-stderr "$CFS_RUNTIME" --log "$LOGS/runtime-$BATS_TEST_NUMBER.json" --log-format json run --bundle "$BUNDLE" "$id"
}

setup_file() {
	[ "$(id -u)" = 0 ] || return 0
	export KEYS="$BATS_FILE_TMPDIR/keys"
	mkdir -p "$KEYS"
	make_key "$KEYS" app
	make_key "$KEYS" other
	make_hello_template
	# The audit trail of every test of this file, and what it must hold.
	export AUDIT="$BATS_FILE_TMPDIR/audit/audit.jsonl"
	export EXPECTED="$BATS_FILE_TMPDIR/expected"
	: >"$EXPECTED"
	# cfs-runtime's own logs and the runtime's --log of every test: the
	# audit trail must not leak into them.
	export LOGS="$BATS_FILE_TMPDIR/logs"
	mkdir -p "$LOGS"
}

setup() {
	requires_root
	STORE="$BATS_TEST_TMPDIR/store"
	STATE="$BATS_TEST_TMPDIR/state"
	BUNDLE="$BATS_TEST_TMPDIR/bundle"
	REVOKED="$BATS_TEST_TMPDIR/revoked.txt"
	: >"$REVOKED"
	chmod 0644 "$REVOKED"
	APP_EXTRA=
	pol_config
}

teardown() {
	cleanup_containers
}

# --- scopes -------------------------------------------------------------

@test "a scoped signer runs an image of its repository" {
	pol_bundle app registry.example.com/app/web:v1
	pol_run app-in allow
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	[ "$stderr" = "" ]
	# Another namespace below the scope, by digest, and a wildcard host.
	pol_bundle app "registry.example.com/app/sub/web@sha256:$DIGEST"
	pol_run app-sub allow
	[ "$status" -eq 0 ]
	pol_bundle other a.b.example.org:5000/x/y
	pol_run other-wild allow
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
}

@test "a scoped signer's signature on another repository's image is refused, naming both" {
	pol_bundle app quay.io/other/x:1
	pol_run app-out deny
	[ "$status" -eq 1 ]
	[ "$output" = "" ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: image outside the signer's scopes: image quay.io/other/x:1 is outside the scopes of signer \"app\" (\"registry.example.com/app\")" ]
	[ ! -e "$STORE/images/$DIGEST" ]
	# A prefix that is not a whole path component is another repository.
	pol_bundle app registry.example.com/application
	pol_run app-prefix deny
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"image registry.example.com/application:latest is outside the scopes of signer \"app\""* ]]
	# The same image signed by its own signer runs.
	pol_bundle other quay.io/other/x:1
	pol_run other-in allow
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
}

@test "no image reference, or two that disagree: a scoped signer refuses (fail closed)" {
	pol_bundle app ""
	pol_run app-noref deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: image outside the signer's scopes: signer \"app\" is limited to scopes \"registry.example.com/app\", and no image reference is known for this container (the engine sets none of io.kubernetes.cri.image-name, io.kubernetes.cri-o.ImageName, org.opencontainers.image.ref.name)" ]
	pol_bundle app registry.example.com/app/web:v1
	update_config "$BUNDLE" '.annotations["io.kubernetes.cri-o.ImageName"] = "quay.io/other/x:1"'
	pol_run app-conflict deny
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"signer \"app\" is limited to scopes \"registry.example.com/app\", and the container's image reference cannot be told: conflicting image references: annotation io.kubernetes.cri.image-name names registry.example.com/app/web:v1, io.kubernetes.cri-o.ImageName names quay.io/other/x:1" ]]
}

# --- revocation -------------------------------------------------------------

@test "a revoked digest is refused with the reason; fsck and images flag it" {
	"$CFS_RUNTIME" import --store "$STORE" "$TMPL/rootfs" >/dev/null
	run --separate-stderr "$CFS_RUNTIME" revoke --comment "CVE-2026-1 in libfoo" "sha256:$DIGEST"
	[ "$status" -eq 0 ]
	[ "$output" = "revoked sha256:$DIGEST ($REVOKED)" ]
	[ "$(cat "$REVOKED")" = "sha256:$DIGEST # CVE-2026-1 in libfoo" ]
	# Again: not added twice.
	run --separate-stderr "$CFS_RUNTIME" revoke "sha256:$DIGEST"
	[ "$status" -eq 0 ]
	[ "$stderr" = "cfs-runtime: note: sha256:$DIGEST is already revoked by $REVOKED" ]
	[ "$(wc -l <"$REVOKED")" -eq 1 ]

	pol_bundle app registry.example.com/app/web:v1
	pol_run revoked-digest deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: revoked: composefs digest sha256:$DIGEST is revoked by $REVOKED line 1 (CVE-2026-1 in libfoo)" ]

	run --separate-stderr "$CFS_RUNTIME" fsck "$DIGEST"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$DIGEST: REVOKED: revoked by $REVOKED line 1 (CVE-2026-1 in libfoo)" ]
	[[ "${lines[1]}" == "$DIGEST: clean ("* ]]
	run "$CFS_RUNTIME" fsck --json "$DIGEST"
	[ "$(jq -r --arg d "$DIGEST" '.revoked[$d]' <<<"$output")" = "revoked by $REVOKED line 1 (CVE-2026-1 in libfoo)" ]
	run --separate-stderr "$CFS_RUNTIME" images
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"IN USE  REVOKED" ]]
	[[ "${lines[1]}" == "$DIGEST "*"revoked by $REVOKED line 1 (CVE-2026-1 in libfoo)" ]]
	run "$CFS_RUNTIME" images --json
	[ "$(jq -r '.[0].revoked' <<<"$output")" = "revoked by $REVOKED line 1 (CVE-2026-1 in libfoo)" ]

	# Removing the line lets it run again (the list is re-read each time).
	: >"$REVOKED"
	pol_run unrevoked allow
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	run "$CFS_RUNTIME" images
	[[ "${lines[0]}" != *REVOKED* ]]
}

@test "a revoked key is refused with the reason; the other key's signature still runs" {
	run "$CFS_RUNTIME" policy check
	[ "$status" -eq 0 ]
	keyid=$(openssl pkey -pubin -in "$KEYS/app.pub" -outform der | sha256sum | cut -d' ' -f1)
	[[ "$output" == *"public key sha256:$keyid"* ]]
	run "$CFS_RUNTIME" revoke --comment "laptop lost" "key:$keyid"
	[ "$status" -eq 0 ]
	pol_bundle app registry.example.com/app/web:v1
	pol_run revoked-key deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: revoked: key $keyid of signer \"app\" is revoked by $REVOKED line 1 (laptop lost)" ]
	pol_bundle other quay.io/other/x:1
	pol_run other-key allow
	[ "$status" -eq 0 ]
	run "$CFS_RUNTIME" policy check
	[[ "$output" == *"#   key:$keyid (line 1: laptop lost): signer \"app\""* ]]
}

@test "a malformed revocation list, or one others can write, refuses every signed container" {
	echo "sha256:1234" >"$REVOKED"
	pol_bundle other quay.io/other/x:1
	pol_run badlist deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: invalid trust policy: revocation list $REVOKED:1: \"sha256:1234\": want 64 hex digits after sha256:, got 4" ]
	run "$CFS_RUNTIME" policy check
	[ "$status" -eq 1 ]
	: >"$REVOKED"
	chmod 0666 "$REVOKED"
	pol_run writablelist deny
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cfs-runtime: revocation list $REVOKED: insecure trust policy: $REVOKED is writable by its group and others"* ]]
	run "$CFS_RUNTIME" revoke "sha256:$DIGEST"
	[ "$status" -eq 1 ]
}

@test "concurrent revokes all land, each once" {
	for i in $(seq 1 20); do
		"$CFS_RUNTIME" revoke --comment "n$i" "sha256:$(printf '%064x' "$i")" >/dev/null &
	done
	wait
	[ "$(wc -l <"$REVOKED")" -eq 20 ]
	[ "$(sort -u "$REVOKED" | wc -l)" -eq 20 ]
	[ "$(stat -c %a "$REVOKED")" = 644 ]
}

# --- expiry -----------------------------------------------------------------

@test "an expired signer is refused; max_age refuses a signature without a signing time" {
	APP_EXTRA='not_after = "2020-01-01"'
	pol_config
	pol_bundle app registry.example.com/app/web:v1
	pol_run expired deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: signer expired: signer \"app\" is not trusted after 2020-01-01T00:00:00Z (not_after)" ]
	APP_EXTRA='max_age = "30d"'
	pol_config
	pol_run maxage deny
	[ "$status" -eq 1 ]
	[ "$stderr" = "cfs-runtime: composefs digest sha256:$DIGEST: signer expired: signer \"app\" has max_age 720h0m0s, but this .cosign proves no signing time (see docs/policy.md: only sigstore bundles and PKCS#7 signatures with a signingTime do)" ]
	APP_EXTRA='not_after = "2999-01-01"'
	pol_config
	pol_run notyet allow
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
}

# --- policy check -----------------------------------------------------------

@test "policy check prints scopes, expiries, revocations and warns about an unscoped signer" {
	APP_EXTRA='not_after = "2020-01-01"'
	pol_config '[[signer]]' 'name = "any"' "public_key = \"$KEYS/other.pub\""
	echo "sha256:$DIGEST # bad image" >"$REVOKED"
	run --separate-stderr "$CFS_RUNTIME" policy check
	[ "$status" -eq 0 ]
	[[ "$output" == *"revoked = \"$REVOKED\" # 1 entry"* ]]
	[[ "$output" == *"#   sha256:$DIGEST (line 1: bad image): every signer"* ]]
	[[ "$output" == *'scopes = ["registry.example.com/app"] # the image reference must be within one of these'* ]]
	[[ "$output" == *'scopes = ["quay.io/other", "*.example.org"]'* ]]
	[[ "$output" == *'not_after = "2020-01-01T00:00:00Z" # EXPIRED: every signature it makes or made is refused'* ]]
	[[ "$output" == *'# scopes: none: this signer may vouch for any image'* ]]
	warning='signer "any" has no scopes: it may vouch for any image, also those the scopes of "app", "other" are meant for'
	[[ "$output" == *"# warning: $warning"* ]]
	[ "$stderr" = "cfs-runtime: warning: $warning" ]
	# What policy check prints loads as a policy.
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/effective.toml"
	run "$CFS_RUNTIME" policy check --policy "$BATS_TEST_TMPDIR/effective.toml"
	[ "$status" -eq 0 ]
	# A scope that is not fully expanded is an error naming what to write.
	pol_config '[[signer]]' 'name = "bb"' "public_key = \"$KEYS/other.pub\"" 'scopes = ["busybox"]'
	run --separate-stderr "$CFS_RUNTIME" policy check
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"key signer[2].scopes: scope 1: invalid image reference: scope \"busybox\": not a registry, repository or reference (write the full name, e.g. docker.io/library/busybox)" ]]
}

# --- audit trail (last: it checks the whole file's decisions) ----------------

@test "an unsigned container a rule allows is recorded as unsigned-allowed, with the rule" {
	pol_config '[[allow_unsigned]]' 'name = "containerd-sandbox"' 'annotations = { "io.kubernetes.cri.container-type" = "sandbox" }'
	rm -rf "$BUNDLE"
	cp -a "$TMPL" "$BUNDLE"
	update_config "$BUNDLE" '.annotations = {"io.kubernetes.cri.container-type": "sandbox"}'
	# The front starts it itself (a literal rule), without
	# cfs-runtime-mount, and records it.
	CFS_RUNTIME_MOUNT=/nonexistent/cfs-runtime-mount pol_run sandbox unsigned-allowed
	[ "$status" -eq 0 ]
	[ "$output" = "$HELLO" ]
	line=$(tail -n 1 "$AUDIT")
	[ "$(jq -r .rule <<<"$line")" = containerd-sandbox ]
	[ "$(jq -r .reason <<<"$line")" = 'no composefs digest: allowed unsigned by rule "containerd-sandbox"' ]
	# A pattern the front cannot read without regexps: cfs-runtime-mount
	# decides, and records.
	pol_config '[[allow_unsigned]]' 'name = "sandbox-re"' 'annotations = { "io.kubernetes.cri.container-type" = "sand.*" }'
	pol_run sandbox-re unsigned-allowed
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$AUDIT" | jq -r .rule)" = sandbox-re ]
	# Without the annotation: refused, and recorded.
	update_config "$BUNDLE" '.annotations = {}'
	pol_run unsigned deny
	[ "$status" -eq 1 ]
	[ "$(tail -n 1 "$AUDIT" | jq -r .reason)" = "${stderr#cfs-runtime: }" ]
}

@test "every decision of this file is in the audit trail exactly once, and audit reads it back" {
	[ -s "$EXPECTED" ]
	[ "$(stat -c %a "$AUDIT")" = 600 ]
	# Valid JSON, one object a line.
	jq -e -c . "$AUDIT" >/dev/null
	[ "$(wc -l <"$AUDIT")" -eq "$(jq -c . "$AUDIT" | wc -l)" ]
	# Exactly the expected (container, decision) pairs, each once.
	diff <(sort "$EXPECTED") <(jq -r '"\(.container_id) \(.decision)"' "$AUDIT" | sort)
	[ -z "$(jq -r .container_id "$AUDIT" | sort | uniq -d)" ]
	# What each line says of a known decision.
	out_id=$(awk '$1 ~ /-app-out$/ { print $1 }' "$EXPECTED")
	in_id=$(awk '$1 ~ /-app-in$/ { print $1 }' "$EXPECTED")
	line=$(jq -c --arg id "$out_id" 'select(.container_id == $id)' "$AUDIT")
	[ "$(jq -r .image <<<"$line")" = quay.io/other/x:1 ]
	[ "$(jq -r .digest <<<"$line")" = "sha256:$DIGEST" ]
	[ "$(jq -r .enforcement <<<"$line")" = userspace ]
	[[ "$(jq -r .reason <<<"$line")" == *"is outside the scopes of signer \"app\""* ]]
	# The signer whose scope refused the image, and its key.
	keyid=$(openssl pkey -pubin -in "$KEYS/app.pub" -outform der | sha256sum | cut -d' ' -f1)
	[ "$(jq -r .signer <<<"$line")" = app ]
	[ "$(jq -r .key_id <<<"$line")" = "$keyid" ]
	line=$(jq -c --arg id "$in_id" 'select(.container_id == $id)' "$AUDIT")
	[ "$(jq -r .decision <<<"$line")" = allow ]
	[ "$(jq -r .signer <<<"$line")" = app ]
	[ "$(jq -r .key_id <<<"$line")" = "$keyid" ]
	[ "$(jq -r .image <<<"$line")" = registry.example.com/app/web:v1 ]

	export CFS_RUNTIME_CONFIG="$BATS_TEST_TMPDIR/config.toml"
	run --separate-stderr "$CFS_RUNTIME" audit --json
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat "$AUDIT")" ]
	run --separate-stderr "$CFS_RUNTIME" audit
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq "$(wc -l <"$EXPECTED")" ]
	[[ "$output" == *" deny container=$out_id image=\"quay.io/other/x:1\" digest=\"sha256:$DIGEST\" signer=\"app\" key=\"$keyid\" enforcement=\"userspace\": composefs digest sha256:$DIGEST: image outside the signer's scopes: image quay.io/other/x:1 is outside the scopes of signer \"app\" (\"registry.example.com/app\")"* ]]
	[[ "$output" == *" allow container=$in_id image=\"registry.example.com/app/web:v1\" digest=\"sha256:$DIGEST\" signer=\"app\" key=\"$keyid\" enforcement=\"userspace\": composefs digest sha256:$DIGEST: cosign signature trusted by signer \"app\""* ]]
	run "$CFS_RUNTIME" audit --since 1h --json
	[ "$output" = "$(cat "$AUDIT")" ]
	run "$CFS_RUNTIME" audit --since 2999-01-01 --json
	[ "$status" -eq 0 ]
	[ "$output" = "" ]
	run --separate-stderr "$CFS_RUNTIME" audit --since yesterday
	[ "$status" -eq 2 ]
	[[ "$stderr" == *'--since: "yesterday" is neither a duration'* ]]
	# Nothing of it in the runtime's --log or cfs-runtime's own log (which
	# do have the refusals).
	grep -q "is outside the scopes of signer" "$LOGS"/runtime-*.json
	ls "$LOGS"/own-*.log >/dev/null
	run ! grep -rq -e '"decision"' -e 'decision=' -e 'unsigned-allowed' "$LOGS"
}
