#!/bin/bash
# Real-kernel tests: boot Debian trixie's cloud kernel (fs-verity, overlayfs
# verity=, file-backed EROFS) under qemu and run tests/vm/scenarios in it.
#
#   tests/vm/run.sh [SCENARIO...]     SCENARIO: NN-name, name or NN; default all
#
# Run as root on Debian 12. See tests/vm/README.md. Environment:
#   CFS_VM_CACHE             download cache (default /var/cache/cfs-runtime-vm)
#   CFS_VM_REFRESH=1         re-check the trixie kernel now (default: once a day)
#   CFS_VM_KERNEL_DIR        use this unpacked kernel package instead (boot/vmlinuz-*,
#                            usr/lib/modules/*)
#   CFS_VM_TIMEOUT           seconds for the whole VM run (default 600)
#   CFS_VM_SCENARIO_TIMEOUT  seconds per scenario inside the guest (default 300)
#   CFS_VM_VERBOSE=1         stream the guest console while it runs
#   CFS_VM_KEEP=1            keep the work directory (initramfs, disk, logs)
#   CFS_VM_BIN_DIR           take cfs-runtime, cfs-runtime-mount and
#                            cfs-runtime-tools from this directory (static
#                            builds, e.g. make build's bin/) instead of building
#   CFS_VM_CONSOLE_LOG=FILE  also keep the guest's console (boot, scenarios) in FILE
#   CFS_VM_STORY=1           print the scenarios' STORY lines (a narrative
#                            for people, demo/run.sh) on stdout
#   CFS_VM_CYCLES, CFS_BENCH_*  passed on to the guest's scenarios
#   CFS_VM_SHELL=1           after the scenarios, a shell on the guest console
#                            (interactive; no timeout, no console checks)
#   CFS_VM_ACCEL             qemu accelerator (default tcg)
#   CFS_VM_CPU               qemu -cpu model (default: qemu's)
#   CFS_VM_APPEND            extra kernel command line (e.g. loglevel=7)
#   CFS_VM_SCENARIOS         scenario directory (default tests/vm/scenarios;
#                            another one is for testing the harness itself)
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
VM_CACHE=${CFS_VM_CACHE:-/var/cache/cfs-runtime-vm}
VM_TIMEOUT=${CFS_VM_TIMEOUT:-600}
SCENARIO_DIR=$(cd "${CFS_VM_SCENARIOS:-$VM_DIR/scenarios}" && pwd)
SCENARIO_TIMEOUT=${CFS_VM_SCENARIO_TIMEOUT:-300}
# (openssl: the composefs vector recipes make file contents with it, and
# scenario hooks signing keys; jq edits OCI configs; fsverity is the
# reference for object digests and signatures; keyutils' keyctl loads
# certificates into the guest's .fs-verity keyring)
HOST_PACKAGES="qemu-system-x86 busybox-static e2fsprogs xz-utils cpio runc openssl jq fsverity keyutils"
# modules every run loads (dependencies are added): the data disk, and what
# composefs mounts need. ext4 is built into the cloud kernel.
BASE_MODULES="virtio_blk loop erofs overlay"
T0=$SECONDS
# go needs a cache directory; CI environments may not set HOME; mkfs.ext4
# and runc live in sbin
export HOME=${HOME:-/root}
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

log() { echo "vm: [$((SECONDS - T0))s] $*" >&2; }
die() {
	echo "vm: error: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

# ---- host packages ----------------------------------------------------------

ensure_packages() {
	local missing="" p
	for p in $HOST_PACKAGES; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	log "installing$missing"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2 ||
		die "apt-get install$missing failed"
}

find_go() {
	if command -v go >/dev/null; then
		GO=$(command -v go)
	elif [ -x /usr/local/go/bin/go ]; then
		GO=/usr/local/go/bin/go
	else
		die "go not found (PATH or /usr/local/go/bin)"
	fi
}

# ---- kernel: Debian trixie's linux-image-cloud-amd64, never installed -------

APT_DIR=$VM_CACHE/apt

apt_trixie() {
	local cmd=$1
	shift
	"$cmd" -q \
		-o Dir::State::Lists="$APT_DIR/lists" \
		-o Dir::State::status=/dev/null \
		-o Dir::Etc::SourceList="$APT_DIR/trixie.sources" \
		-o Dir::Etc::SourceParts="$APT_DIR/sources.d" \
		-o Dir::Etc::Preferences=/dev/null \
		-o Dir::Etc::PreferencesParts="$APT_DIR/sources.d" \
		-o Dir::Cache="$APT_DIR/cache" \
		-o APT::Architecture=amd64 \
		-o APT::Sandbox::User=root \
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false \
		"$@"
}

# fetch_kernel: sets KDIR to an unpacked linux-image-*-cloud-amd64 package.
fetch_kernel() {
	if [ -n "${CFS_VM_KERNEL_DIR:-}" ]; then
		KDIR=$CFS_VM_KERNEL_DIR
		return
	fi
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/sources.d" "$APT_DIR/cache/archives/partial" \
		"$VM_CACHE/debs" "$VM_CACHE/kernel"
	local cur="" pkg="" fresh=""
	[ -f "$VM_CACHE/kernel/current" ] && cur=$(cat "$VM_CACHE/kernel/current")
	[ -n "$cur" ] && [ -f "$VM_CACHE/kernel/$cur/.complete" ] || cur=""
	# the lists are re-checked once a day: point releases replace the
	# versioned kernel package, and the old name disappears from the mirror
	if [ -n "$(find "$APT_DIR/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
		fresh=1
	fi
	if [ -n "$cur" ] && [ -n "$fresh" ] && [ -z "${CFS_VM_REFRESH:-}" ]; then
		KDIR=$VM_CACHE/kernel/$cur
		return
	fi

	# the mirror this host already uses (deb822 sources, else sources.list)
	local uri
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	cat >"$APT_DIR/trixie.sources" <<-EOF
		Types: deb
		URIs: $uri
		Suites: trixie
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	log "checking Debian trixie's cloud kernel ($uri)"
	if ! apt_trixie apt-get update -qq --error-on=any >&2; then
		if [ -n "$cur" ]; then
			log "warning: apt-get update for trixie failed; using cached $cur"
			KDIR=$VM_CACHE/kernel/$cur
			return
		fi
		die "apt-get update for trixie failed and no kernel is cached"
	fi
	touch "$APT_DIR"/lists/*_Packages* 2>/dev/null || true
	pkg=$(apt_trixie apt-cache depends linux-image-cloud-amd64 |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || die "apt-cache depends linux-image-cloud-amd64 named no versioned kernel package"
	if [ ! -f "$VM_CACHE/kernel/$pkg/.complete" ]; then
		log "downloading $pkg"
		rm -f "$VM_CACHE"/debs/*.deb
		if ! (cd "$VM_CACHE/debs" && apt_trixie apt-get download -qq "$pkg" >&2); then
			if [ -n "$cur" ]; then
				log "warning: apt-get download $pkg failed; using cached $cur"
				KDIR=$VM_CACHE/kernel/$cur
				return
			fi
			die "apt-get download $pkg failed"
		fi
		local tmp="$VM_CACHE/kernel/.unpack.$$"
		rm -rf "$tmp"
		dpkg -x "$VM_CACHE"/debs/"$pkg"_*.deb "$tmp" || die "dpkg -x $pkg failed"
		touch "$tmp/.complete"
		rm -rf "${VM_CACHE:?}/kernel/$pkg"
		mv "$tmp" "$VM_CACHE/kernel/$pkg"
		rm -f "$VM_CACHE"/debs/*.deb # the unpacked tree is the cache
	fi
	echo "$pkg" >"$VM_CACHE/kernel/current.tmp"
	mv "$VM_CACHE/kernel/current.tmp" "$VM_CACHE/kernel/current"
	# keep only the current kernel
	local d
	for d in "$VM_CACHE"/kernel/*/; do
		[ "$(basename "$d")" = "$pkg" ] || rm -rf "$d"
	done
	KDIR=$VM_CACHE/kernel/$pkg
}

# ---- modules ------------------------------------------------------------------

# stage_modules: resolve the names in $VM_MODULES (plus dependencies, read
# from each module's modinfo "depends=") against the kernel package, write
# them decompressed to $VM_ROOT/lib/modules and the load order to
# $VM_ROOT/vm/modules.list. Names the kernel has built in are skipped.
stage_modules() {
	local mdir
	mdir=$(echo "$KDIR"/usr/lib/modules/*/)
	[ -d "$mdir" ] || mdir=$(echo "$KDIR"/lib/modules/*/)
	[ -d "$mdir" ] || die "no modules directory in $KDIR"
	mkdir -p "$VM_ROOT/lib/modules"
	: >"$VM_ROOT/vm/modules.list"
	declare -A seen=()
	local m
	add_module() {
		local name=${1//-/_} f deps d
		[ -n "${seen[$name]:-}" ] && return 0
		seen[$name]=1
		f=$(find "$mdir/kernel" -name "$name.ko*" -print -quit)
		if [ -z "$f" ]; then
			f=$(find "$mdir/kernel" -name "${name//_/-}.ko*" -print -quit)
		fi
		if [ -z "$f" ]; then
			grep -q "/${name//_/[-_]}\.ko\$" "$mdir/modules.builtin" 2>/dev/null && return 0
			die "kernel module $name: neither a module nor built in"
		fi
		case $f in
		*.xz) xz -dc "$f" >"$VM_ROOT/lib/modules/$name.ko" ;;
		*.zst) zstd -qdc "$f" >"$VM_ROOT/lib/modules/$name.ko" ;;
		*.gz) gzip -dc "$f" >"$VM_ROOT/lib/modules/$name.ko" ;;
		*) cp "$f" "$VM_ROOT/lib/modules/$name.ko" ;;
		esac
		deps=$(tr '\0' '\n' <"$VM_ROOT/lib/modules/$name.ko" | sed -n 's/^depends=//p' | head -n1)
		for d in ${deps//,/ }; do add_module "$d"; done
		echo "$name" >>"$VM_ROOT/vm/modules.list"
	}
	# shellcheck disable=SC2013
	for m in $(cat "$VM_MODULES"); do add_module "$m"; done
	MODULES_LOADED=$(tr '\n' ' ' <"$VM_ROOT/vm/modules.list")
}

# ---- scenarios ----------------------------------------------------------------

select_scenarios() {
	local all=() f arg s found
	for f in "$SCENARIO_DIR"/[0-9]*-*.sh; do
		case $f in *.host.sh) continue ;; esac
		all+=("$(basename "$f" .sh)")
	done
	SCENARIOS=()
	if [ $# -eq 0 ]; then
		SCENARIOS=("${all[@]}")
		return
	fi
	for arg in "$@"; do
		found=""
		for s in "${all[@]}"; do
			if [ "$arg" = "$s" ] || [ "$arg" = "${s#[0-9]*-}" ] || [ "$arg" = "${s%%-*}" ]; then
				SCENARIOS+=("$s")
				found=1
			fi
		done
		if [ -z "$found" ]; then
			echo "vm: unknown scenario '$arg'; have: ${all[*]}" >&2
			exit 2
		fi
	done
}

# ---- main -----------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (qemu, mkfs with -d of root-owned trees, runc in the guest)"
select_scenarios "$@"
ensure_packages
find_go

mkdir -p "$VM_CACHE"
exec 9>"$VM_CACHE/.lock"
flock 9 # concurrent runs share the cache
fetch_kernel
flock -u 9
VMLINUZ=$(echo "$KDIR"/boot/vmlinuz-*)
[ -f "$VMLINUZ" ] || die "no boot/vmlinuz-* in $KDIR"
log "kernel $(basename "$VMLINUZ")"

W=$(mktemp -d "${TMPDIR:-/tmp}/cfs-vm.XXXXXX")
cleanup() {
	if [ -n "${CFS_VM_KEEP:-}" ]; then
		echo "vm: kept $W" >&2
	elif [ -n "${KEEP_LOGS:-}" ]; then
		rm -rf "$W/root" "$W/data" "$W/initrd.cpio" "$W/data.img"
		echo "vm: logs kept in $W" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
VM_ROOT=$W/root
VM_MODULES=$W/modules.want
DATA=$W/data
mkdir -p "$VM_ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,run,tmp,root,mnt,data,vm/scenarios} "$DATA"
chmod 1777 "$VM_ROOT/tmp"
# shellcheck disable=SC2086
printf '%s\n' $BASE_MODULES >"$VM_MODULES"
export REPO VM_DIR VM_ROOT VM_CACHE VM_MODULES GO

# the guest root: busybox, our binaries, runc
log "building the guest tools${CFS_VM_BIN_DIR:+ (cfs-runtime from $CFS_VM_BIN_DIR)}"
cp /bin/busybox "$VM_ROOT/bin/busybox"
for a in $(/bin/busybox --list-full); do
	[ -e "$VM_ROOT/$a" ] || ln -s /bin/busybox "$VM_ROOT/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$VM_ROOT/etc/passwd"
echo 'root:x:0:' >"$VM_ROOT/etc/group"
# a cfs-runtime that does not build fails the run but not the scenarios
# that do not use it (they still tell whether the kernel side works)
BUILD_FAIL=""
(
	cd "$REPO"
	# shellcheck source=host-lib.sh
	. "$VM_DIR/host-lib.sh"
	vm_go build -o "$VM_ROOT/usr/local/bin/vmtool" ./tests/vm/tools/vmtool &&
		vm_stage_bin "$(command -v runc)" /usr/sbin/runc
) >"$W/build.log" 2>&1 || {
	cat "$W/build.log" >&2
	die "building the guest tools failed"
}
if [ -n "${CFS_VM_BIN_DIR:-}" ]; then
	for b in cfs-runtime cfs-runtime-mount cfs-runtime-tools; do
		# the guest has no libc: only static binaries run there
		if [ ! -x "$CFS_VM_BIN_DIR/$b" ] || ldd "$CFS_VM_BIN_DIR/$b" >/dev/null 2>&1; then
			BUILD_FAIL="CFS_VM_BIN_DIR: $CFS_VM_BIN_DIR/$b is not a static executable (make build makes one)"
			break
		fi
		install -m 0755 "$CFS_VM_BIN_DIR/$b" "$VM_ROOT/usr/local/bin/$b"
	done
elif ! (cd "$REPO" && . "$VM_DIR/host-lib.sh" && vm_go build -o "$VM_ROOT/usr/local/bin/cfs-runtime" . && vm_go build -o "$VM_ROOT/usr/local/bin/cfs-runtime-mount" ./cmd/cfs-runtime-mount && vm_go build -o "$VM_ROOT/usr/local/bin/cfs-runtime-tools" ./cmd/cfs-runtime-tools) >"$W/build-cfs.log" 2>&1; then
	sed 's/^/    | /' "$W/build-cfs.log" >&2
	BUILD_FAIL="go build failed: $(grep -v '^#' "$W/build-cfs.log" | head -n 1 | cut -c1-200)"
fi
install -m 0755 "$VM_DIR/init" "$VM_ROOT/init"
install -m 0755 "$VM_DIR/init" "$VM_ROOT/vm/init"
install -m 0644 "$VM_DIR/guest-lib.sh" "$VM_ROOT/vm/guest-lib.sh"
{
	echo "SCENARIO_TIMEOUT=$SCENARIO_TIMEOUT"
	echo "VM_SHELL=${CFS_VM_SHELL:-}"
	# settings for the scenarios themselves (CFS_VM_CYCLES, CFS_BENCH_*)
	env | grep -E '^(CFS_VM_CYCLES|CFS_BENCH_[A-Z0-9_]+)=[A-Za-z0-9_./-]*$' | sed 's/^/export /' || true
} >"$VM_ROOT/vm/config"

# host hooks; a scenario whose hook fails is reported and not booted
declare -A HOST_FAIL=()
RUN=()
for s in "${SCENARIOS[@]}"; do
	mkdir -p "$DATA/$s"
	cp "$SCENARIO_DIR/$s.sh" "$VM_ROOT/vm/scenarios/$s.sh"
	hook=$SCENARIO_DIR/$s.host.sh
	if [ -f "$hook" ]; then
		log "host prep $s"
		rc=0
		(cd "$REPO" && VM_DATA=$DATA/$s bash -euo pipefail -c \
			'. "$VM_DIR/host-lib.sh"; . "$1"' hook "$hook") >"$W/$s.host.log" 2>&1 || rc=$?
		if [ "$rc" != 0 ]; then
			sed 's/^/    | /' "$W/$s.host.log" >&2
			HOST_FAIL[$s]="host prep $(basename "$hook") exited $rc"
			if [ -s "$W/$s.host.log" ]; then
				HOST_FAIL[$s]+=": $(tail -n 1 "$W/$s.host.log" | cut -c1-200)"
			fi
			continue
		fi
	fi
	RUN+=("$s")
done
BOOT=""
[ ${#RUN[@]} -gt 0 ] && BOOT=1
: >"$W/results.log"
: >"$W/console.log"
# ---- initramfs, data disk, boot ---------------------------------------------------

if [ -n "$BOOT" ]; then
	printf '%s\n' "${RUN[@]}" >"$VM_ROOT/vm/scenarios.list"
	stage_modules
	log "modules: $MODULES_LOADED"

	# initramfs (uncompressed: decompressing under TCG costs more than it saves)
	(cd "$VM_ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$W/initrd.cpio"

	# the data disk: ext4 with the verity feature, 4 KiB blocks (= page size)
	kb=$(du -sk "$DATA" | cut -f1)
	mb=$((kb * 2 / 1024 + 512))
	# inodes: twice what the scenarios bring, and never fewer than mkfs's default
	inodes=$(($(find "$DATA" | wc -l) * 2 + mb * 64))
	mkfs.ext4 -q -F -O verity -b 4096 -N "$inodes" -L cfsdata -d "$DATA" "$W/data.img" "${mb}M" >"$W/mkfs.log" 2>&1 || {
		cat "$W/mkfs.log" >&2
		die "mkfs.ext4 -O verity -d failed"
	}
	log "initramfs $(($(stat -c %s "$W/initrd.cpio") / 1048576)) MiB, data disk ${mb} MiB; booting ${#RUN[@]} scenario(s)"

	# boot; console on ttyS0 (stdout), results channel on ttyS1
	qemu_cmd=(
		qemu-system-x86_64 -machine q35 -accel "${CFS_VM_ACCEL:-tcg}" -smp 1 -m 1024
		${CFS_VM_CPU:+-cpu "$CFS_VM_CPU"}
		-nographic -no-reboot -monitor none -nic none
		-kernel "$VMLINUZ" -initrd "$W/initrd.cpio"
		-append "console=ttyS0 panic=-1 oops=panic loglevel=5 8250.nr_uarts=2 rdinit=/init mitigations=off cryptomgr.notests ${CFS_VM_APPEND:-}"
		-drive "file=$W/data.img,format=raw,if=virtio,cache=unsafe"
		-serial stdio -serial "file:$W/results.log"
	)
	boot_start=$SECONDS
	set +e
	if [ -n "${CFS_VM_SHELL:-}" ]; then
		"${qemu_cmd[@]}"
		qemu_rc=$?
	elif [ -n "${CFS_VM_VERBOSE:-}" ]; then
		# the firmware resets and clears the terminal (ESC c, CSI 2J): strip
		# control sequences from what is shown, so that the caller's screen
		# (e.g. demo/run.sh's earlier output) survives; console.log stays raw
		timeout --kill-after=10 "$VM_TIMEOUT" "${qemu_cmd[@]}" </dev/null 2>&1 | tee "$W/console.log" |
			sed -u -e 's/\x1bc/\n/g' -e 's/\x1b[][()#%]*[0-9;?]*[A-Za-z@`]//g' -e 's/\x1b[78=>]//g' -e 's/\r$//'
		qemu_rc=${PIPESTATUS[0]}
	else
		timeout --kill-after=10 "$VM_TIMEOUT" "${qemu_cmd[@]}" </dev/null >"$W/console.log" 2>&1
		qemu_rc=$?
	fi
	set -e
	log "guest ran $((SECONDS - boot_start))s (qemu exit $qemu_rc)"
fi

# ---- verdict --------------------------------------------------------------------

# qemu exits 0 on a guest panic too (-no-reboot): the console decides.
tr -d '\r' <"$W/results.log" >"$W/results.txt"
tr -d '\r' <"$W/console.log" >"$W/console.txt"
if [ -n "${CFS_VM_CONSOLE_LOG:-}" ]; then
	cp "$W/console.txt" "$CFS_VM_CONSOLE_LOG"
fi
passed=0
failed=0
report() { # report PASS|FAIL TEXT
	echo "$1 $2"
	if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
if [ -n "$BUILD_FAIL" ]; then
	report FAIL "build/cfs-runtime: $BUILD_FAIL"
fi
for s in "${SCENARIOS[@]}"; do
	if [ -n "${HOST_FAIL[$s]:-}" ]; then
		report FAIL "${s#[0-9]*-}: ${HOST_FAIL[$s]}"
	fi
done
while IFS= read -r line; do
	case $line in
	"PASS "*) report PASS "${line#PASS }" ;;
	"FAIL "*) report FAIL "${line#FAIL }" ;;
	"END "*) echo "vm: scenario ${line#END }" >&2 ;;
	"INFO "*) echo "${line#INFO }" ;; # measurements (benchmarks), not results
	"STORY "*) if [ -n "${CFS_VM_STORY:-}" ]; then echo "$line"; fi ;;
	esac
done <"$W/results.txt"
for s in "${RUN[@]}"; do
	if ! grep -qx "BEGIN $s" "$W/results.txt"; then
		report FAIL "${s#[0-9]*-}: never started"
	elif ! grep -q "^END $s " "$W/results.txt"; then
		report FAIL "${s#[0-9]*-}: did not finish (guest crashed or timed out)"
	fi
done
if grep -qE 'Kernel panic|Oops|BUG:|WARNING: CPU' "$W/console.txt"; then
	report FAIL "vm: kernel: $(grep -m1 -E 'Kernel panic|Oops|BUG:|WARNING: CPU' "$W/console.txt" | cut -c1-200)"
fi
if [ -z "$BOOT" ]; then
	: # nothing to boot: every selected scenario's host hook failed
elif ! grep -qx VM-DONE "$W/results.txt"; then
	if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
		report FAIL "vm: guest did not finish within ${VM_TIMEOUT}s (CFS_VM_TIMEOUT)"
	else
		report FAIL "vm: guest never printed its end marker (qemu exit $qemu_rc)"
	fi
elif [ "$qemu_rc" != 0 ]; then
	report FAIL "vm: qemu exited $qemu_rc"
fi
if [ "$failed" -gt 0 ]; then
	KEEP_LOGS=1
	if [ -z "${CFS_VM_VERBOSE:-}" ]; then
		echo "vm: ---- last 80 console lines ($W/console.log) ----" >&2
		tail -n 80 "$W/console.txt" >&2
		echo "vm: ----" >&2
	fi
fi
log "done"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
