#!/usr/bin/env bash
# A real registry for the tests: Debian's docker-registry (the CNCF
# distribution registry 2.8) on 127.0.0.1, one per test file or test, with its
# access log on so that tests can count the blob GETs a pull made.
#
#   registry_start [--tls] [--auth USER:PASSWORD]
#       starts a registry under $BATS_FILE_TMPDIR (or $REGISTRY_ROOT) and sets
#       REGISTRY (127.0.0.1:PORT), REGISTRY_DIR, REGISTRY_STORAGE, REGISTRY_LOG,
#       REGISTRY_PID; with --tls also REGISTRY_CERT_DIR (ca.crt for clients'
#       --cert-dir, skopeo's and cfs-runtime's); with --auth also
#       REGISTRY_AUTHFILE (a containers auth.json holding those credentials).
#   registry_stop
#   registry_push SRC REPO:TAG   skopeo copy SRC (oci:DIR, ...) to the registry
#   registry_blob_gets DIGEST    how many successful GETs of that blob
#   registry_blob_file DIGEST    the file under the registry's storage

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

# registry_free_port prints a TCP port nothing listens on now.
registry_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

registry_start() {
	local tls="" auth=""
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=1 ;;
		--auth)
			auth=$2
			shift
			;;
		*)
			echo "registry_start: unknown option $1" >&2
			return 2
			;;
		esac
		shift
	done
	[ -x "$REGISTRY_BIN" ] || skip "docker-registry not installed (make deps-test)"
	REGISTRY_DIR=$(mktemp -d "${REGISTRY_ROOT:-${BATS_FILE_TMPDIR:-/tmp}}/registry.XXXXXX")
	REGISTRY_STORAGE=$REGISTRY_DIR/storage
	REGISTRY_LOG=$REGISTRY_DIR/access.log
	mkdir -p "$REGISTRY_STORAGE"
	local port
	port=$(registry_free_port)
	REGISTRY=127.0.0.1:$port
	local scheme=http curl_tls=()
	{
		echo "version: 0.1"
		echo "log: {level: info, formatter: text, accesslog: {disabled: false}}"
		echo "storage: {filesystem: {rootdirectory: $REGISTRY_STORAGE}, delete: {enabled: true}, cache: {}}"
		echo "http:"
		echo "  addr: $REGISTRY"
		echo "  secret: cfs-runtime-tests"
		if [ -n "$tls" ]; then
			REGISTRY_CERT_DIR=$REGISTRY_DIR/certs
			mkdir -p "$REGISTRY_CERT_DIR"
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
				-keyout "$REGISTRY_DIR/tls.key" -out "$REGISTRY_CERT_DIR/ca.crt" 2>/dev/null
			echo "  tls: {certificate: $REGISTRY_CERT_DIR/ca.crt, key: $REGISTRY_DIR/tls.key}"
			scheme=https
			curl_tls=(--cacert "$REGISTRY_CERT_DIR/ca.crt")
		fi
		if [ -n "$auth" ]; then
			htpasswd -Bbn "${auth%%:*}" "${auth#*:}" >"$REGISTRY_DIR/htpasswd"
			echo "auth: {htpasswd: {realm: cfs-runtime-tests, path: $REGISTRY_DIR/htpasswd}}"
			REGISTRY_AUTHFILE=$REGISTRY_DIR/auth.json
			printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$(printf %s "$auth" | base64 -w0)" >"$REGISTRY_AUTHFILE"
		fi
	} >"$REGISTRY_DIR/config.yml"
	# The registry writes its access log (combined format) and its own log to
	# stdout/stderr; both go to one file that the tests grep.
	# The registry takes REGISTRY_* environment variables as configuration
	# (REGISTRY_LOG would replace the log section): a second registry started
	# where the first one's variables are exported must not see them.
	local unset=() v
	for v in $(compgen -e REGISTRY_); do
		unset+=(-u "$v")
	done
	env "${unset[@]}" "$REGISTRY_BIN" serve "$REGISTRY_DIR/config.yml" >"$REGISTRY_LOG" 2>&1 &
	REGISTRY_PID=$!
	local i
	for i in $(seq 100); do
		if curl -s -o /dev/null "${curl_tls[@]}" "$scheme://$REGISTRY/v2/"; then
			export REGISTRY REGISTRY_DIR REGISTRY_STORAGE REGISTRY_LOG REGISTRY_PID REGISTRY_CERT_DIR REGISTRY_AUTHFILE
			return 0
		fi
		kill -0 "$REGISTRY_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "registry did not start; its log:" >&2
	cat "$REGISTRY_LOG" >&2
	return 1
}

registry_stop() {
	if [ -n "${REGISTRY_PID:-}" ]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		wait "$REGISTRY_PID" 2>/dev/null || true
	fi
	unset REGISTRY_PID
}

# registry_push SRC REPO:TAG [SKOPEO-ARGS...]
registry_push() {
	local src=$1 dst=$2
	shift 2
	local tls=(--dest-tls-verify=false)
	[ -n "${REGISTRY_CERT_DIR:-}" ] && tls=(--dest-cert-dir "$REGISTRY_CERT_DIR")
	local auth=()
	[ -n "${REGISTRY_AUTHFILE:-}" ] && auth=(--dest-authfile "$REGISTRY_AUTHFILE")
	skopeo copy -q "${tls[@]}" "${auth[@]}" "$@" "$src" "docker://$REGISTRY/$dst"
}

# registry_blob_gets DIGEST: successful (200) GETs of that blob in the access log.
registry_blob_gets() {
	grep -c "\"GET /v2/[^ ]*/blobs/$1 HTTP/[0-9.]*\" 200 " "$REGISTRY_LOG" || true
}

# registry_blob_file DIGEST: where the registry keeps that blob's bytes.
registry_blob_file() {
	local alg=${1%%:*} hex=${1#*:}
	echo "$REGISTRY_STORAGE/docker/registry/v2/blobs/$alg/${hex:0:2}/$hex/data"
}
