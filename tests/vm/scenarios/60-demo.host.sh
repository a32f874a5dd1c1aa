# shellcheck shell=bash
# The demo's inputs (60-demo.sh tells the story in the guest; demo/run.sh
# shows its STORY lines: CFS_VM_STORY=1 tests/vm/run.sh 60):
#
#   bundle/rootfs       busybox and an /etc/motd (large enough to be stored as
#                       an object, not inline in the image)
#   bundle/config.json  runs `cat /etc/motd` and prints its root filesystem;
#                       annotations: the composefs digest of rootfs, signed
#                       with a throwaway key made here (the private key is
#                       deleted when this hook ends)
#   evil/rootfs         the same tree with another /etc/motd
#   demo.pub            the throwaway public key; digest: DIGEST=<hex> (sh)
C=$VM_ROOT/usr/local/bin/cfs-runtime
[ -x "$C" ] || {
	echo "no cfs-runtime in the guest root (did go build fail?)"
	exit 1
}
D=$VM_DATA
motd() {
	cat <<-EOF
		Welcome to the cfs-runtime demo container.

		$1
		Every byte of this root filesystem was signed with a throwaway key on
		the host; the kernel checks each read against that signature's digest
		(fs-verity, overlayfs verity=require).
	EOF
}
for t in bundle evil; do
	vm_busybox_rootfs "$D/$t/rootfs"
	chmod 0755 "$D/$t/rootfs"
done
motd "This is the original /etc/motd, exactly as it was signed." >"$D/bundle/rootfs/etc/motd"
motd "This /etc/motd was changed after signing. You should never see it." >"$D/evil/rootfs/etc/motd"
# mkfs.ext4 -d keeps whole seconds of mtimes, which the digest covers
find "$D/bundle" "$D/evil" -exec touch -h -d @1700000000 {} +
digest=$("$C" digest "$D/bundle/rootfs")
echo "DIGEST=$digest" >"$D/digest"

k=$(mktemp -d)
trap 'rm -rf "$k"' EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/demo.key" 2>/dev/null
openssl pkey -in "$k/demo.key" -pubout -out "$D/demo.pub"
"$C" sign --key "$k/demo.key" --format json "$digest" >"$k/annotations.json"
runc spec --bundle "$k"
# shellcheck disable=SC2016 # $5, $0: awk's
jq --slurpfile a "$k/annotations.json" \
	--arg cmd 'cat /etc/motd; echo; awk '\''$5 == "/" {sub(/.* - /, ""); print "root filesystem: " $0}'\'' /proc/self/mountinfo' \
	'.process.terminal = false | .process.args = ["sh", "-c", $cmd] | .annotations = $a[0]' \
	"$k/config.json" >"$D/bundle/config.json"
cp "$D/bundle/config.json" "$D/config.signed.json"
