#!/usr/bin/env bash
# Wrapper core benchmark: `run` of a trivial container three ways,
# interleaved: runc directly, a bare exec shim (the floor: a Go process that
# only execs runc) and cfs-runtime in pass-through. Prints medians and the
# ratio cfs-runtime / bare shim (target <= 1.02).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
ROUNDS=${ROUNDS:-25}
RUNC=${RUNC:-/usr/sbin/runc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

make -s build >/dev/null
# shellcheck source=tests/bench/lib.sh
. tests/bench/lib.sh
build_shim "$work/bare-shim" "$RUNC"

mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
(cd "$work/bundle" && "$RUNC" spec)
jq '.process.terminal = false | .process.args = ["/bin/busybox", "true"]' "$work/bundle/config.json" >"$work/c.json"
mv "$work/c.json" "$work/bundle/config.json"
# Pass-through of an unsigned container: the policy allows it (create still
# loads the bundle and the policy, and verifies that there is no digest).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/k.key" 2>/dev/null
openssl pkey -in "$work/k.key" -pubout -out "$work/k.pub"
printf 'unsigned = "allow"\n[[signer]]\nname = "bench"\npublic_key = "%s"\n' "$work/k.pub" >"$work/policy.toml"
chmod 0755 "$work"
printf 'runtime = "%s"\nlog_file = ""\npolicy = "%s"\nstore_dir = "%s/store"\nstate_dir = "%s/state"\n' "$RUNC" "$work/policy.toml" "$work" "$work" >"$work/config.toml"
export CFS_RUNTIME_CONFIG=$work/config.toml

declare -A times
variants=(runc shim cfs)
cmd_for() {
	case $1 in
	runc) echo "$RUNC" ;;
	shim) echo "$work/bare-shim" ;;
	cfs) echo "$PWD/bin/cfs-runtime" ;;
	esac
}
one() { # variant round
	local bin start end
	bin=$(cmd_for "$1")
	start=$EPOCHREALTIME
	"$bin" run --bundle "$work/bundle" "bench-$1-$2" >/dev/null
	end=$EPOCHREALTIME
	times[$1]+="$(echo "($end - $start) * 1000" | bc -l) "
}
# warm-up
for v in "${variants[@]}"; do one "$v" warm; done
times=()
for r in $(seq "$ROUNDS"); do
	# rotate the order so that no variant always runs first
	for k in 0 1 2; do
		one "${variants[$(((r + k) % 3))]}" "$r"
	done
done
m_runc=$(median <<<"${times[runc]}")
m_shim=$(median <<<"${times[shim]}")
m_cfs=$(median <<<"${times[cfs]}")
printf 'wrapper: run of a trivial container, medians over %d interleaved rounds\n' "$ROUNDS"
printf '  runc directly        %7.2f ms\n' "$m_runc"
printf '  bare exec shim       %7.2f ms  (+%.2f ms over runc)\n' "$m_shim" "$(echo "$m_shim - $m_runc" | bc -l)"
printf '  cfs-runtime          %7.2f ms  (+%.2f ms over runc)\n' "$m_cfs" "$(echo "$m_cfs - $m_runc" | bc -l)"
ratio=$(echo "$m_cfs / $m_shim" | bc -l)
printf '  cfs-runtime / bare shim = %.3f (target <= 1.02): %s\n' "$ratio" "$(echo "$ratio <= 1.02" | bc -l | sed 's/1/met/;s/0/NOT met/')"
# The same rounds as paired differences (cfs-runtime minus the shim of the
# same round): less sensitive to the machine drifting during the run. The
# quartiles show how noisy this machine is against a target of about 1 ms.
read -ra cfs_t <<<"${times[cfs]}"
read -ra shim_t <<<"${times[shim]}"
diffs=""
for i in "${!cfs_t[@]}"; do diffs+="$(echo "${cfs_t[$i]} - ${shim_t[$i]}" | bc -l) "; done
tr ' ' '\n' <<<"$diffs" | grep . | sort -n | awk '{a[NR]=$1} END {
	printf "  per round, cfs-runtime - shim: median %+.2f ms, quartiles %+.2f .. %+.2f ms\n", a[int((NR+1)/2)], a[int((NR+3)/4)], a[int((3*NR+1)/4)]
}'
