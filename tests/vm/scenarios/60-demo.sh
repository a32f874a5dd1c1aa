# shellcheck shell=sh
# The demo story on a kernel with fs-verity, enforcement = "require": a
# busybox image signed with a throwaway key runs through cfs-runtime; then
# it is tampered with three ways and each is caught. Human-readable steps go
# to the console (the guest log); every step is also a check. STORY lines
# are the short narrative demo/run.sh shows (CFS_VM_STORY=1 tests/vm/run.sh
# 60), each made from what actually happened. Two container starts.

# shellcheck disable=SC1091 # written by the host hook
. "$VM_DATA/digest" # DIGEST: of bundle/rootfs, signed on the host
B=$VM_DATA/bundle
S=$VM_DATA/store
E=/etc/cfs-runtime
objpath() { echo "$S/objects/$(echo "$1" | cut -c1-2)/$(echo "$1" | cut -c3-)"; }

step() { printf '\n== VM %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# cmd TEXT: show a command line as the user would type it
cmd() { printf '   $ %s\n' "$*"; }
# story TEXT: one line of demo/run.sh's narrative
story() { _vm_mark "STORY $*"; }
# refused TEXT: the story of the last check_fails: refused with TEXT, or not
# shellcheck disable=SC2154 # _vm_rc: set by guest-lib.sh's check_fails
refused() {
	if [ "$_vm_rc" -ne 0 ] && grep -qF -- "$1" "$VM_OUT"; then
		echo "refused before the container starts ($1)"
	else
		echo "NOT refused as expected (exit $_vm_rc; see the guest log)"
	fi
}

step "1. A Debian kernel with fs-verity: $(uname -r)"
say "The object store is on an ext4 made with 'mkfs.ext4 -O verity'; the policy"
say "trusts only the throwaway key the host signed the image with, and requires"
say "the kernel to check every byte (enforcement = \"require\")."
mkdir -p "$E/keys"
cp "$VM_DATA/demo.pub" "$E/keys/demo.pub"
cat >"$E/demo-policy.toml" <<EOF
enforcement = "require"
unsigned = "reject"
[[signer]]
name = "demo"
public_key = "$E/keys/demo.pub"
EOF
cat >"$E/demo.toml" <<EOF
runtime = "/usr/sbin/runc"
store_dir = "$S"
state_dir = "/run/cfs-runtime"
log_file = "$VM_WORK/cfs-runtime.log"
audit_file = "$VM_WORK/audit.jsonl"
policy = "$E/demo-policy.toml"
EOF
export CFS_RUNTIME_CONFIG="$E/demo.toml"
cmd "cat $E/demo-policy.toml"
sed 's/^/     /' "$E/demo-policy.toml"
say "The container's annotations (config.json), made by 'cfs-runtime sign':"
grep composefs "$B/config.json" | sed 's/^ */     /'
story "Linux $(uname -r) with fs-verity; the store on ext4 -O verity; enforcement = \"require\""

step "2. cfs-runtime run: verified, imported into the store, mounted with verity=require"
cmd "cfs-runtime run --bundle $B demo"
check_contains runs-signed "This is the original /etc/motd" cfs-runtime run --bundle "$B" demo
cp "$VM_OUT" "$VM_WORK/run1.out"
check_contains root-verity-require ",verity=require" grep "^root filesystem: overlay " "$VM_WORK/run1.out"
story "signed container, root mounted with verity=require, prints: $(grep -m1 -o 'This is the original[^.]*' "$VM_WORK/run1.out" || echo '(nothing: see the guest log)')"
say "The kernel itself measures the stored image: it is the signed digest."
cmd "vmtool measure $S/images/$DIGEST"
check_contains image-measures-signed-digest "sha256:$DIGEST $S/images/$DIGEST" vmtool measure "$S/images/$DIGEST"

step "3. Tamper with the disk: flip one byte of /etc/motd's stored object"
# the object of /etc/motd: the one of its size
size=$(stat -c %s "$B/rootfs/etc/motd")
obj=$(find "$S/objects" -type f -size "${size}c" | head -n 1)
say "Below the filesystem, on the block device, as someone with the disk would."
cmd "vmtool corrupt ${obj#"$S/"} 10 $VM_DATA_DEV"
check corrupt-motd-object vmtool corrupt "$obj" 10 "$VM_DATA_DEV"
say "The container still starts (the image is intact), but the kernel refuses"
say "to return the tampered bytes:"
cp "$VM_DATA/config.signed.json" "$B/config.json"
cmd "cfs-runtime run --bundle $B demo"
check_contains tampered-object-eio "cat: read error: Input/output error" cfs-runtime run --bundle "$B" demo
cp "$VM_OUT" "$VM_WORK/run2.out"
story "one byte of /etc/motd flipped on the raw disk; the kernel refuses to return it:"
story "    $(grep -m1 'Input/output error' "$VM_WORK/run2.out" || echo '(no I/O error: see the guest log)')"
check_fails tampered-motd-not-shown "" grep -q "Welcome" "$VM_WORK/run2.out"
say "and says why, in the kernel log:"
check_contains kernel-says-corrupted "FILE CORRUPTED" sh -c 'dmesg | grep "FILE CORRUPTED" | tail -n 1'

step "4. Tamper with the store: replace the signed image by the image of another tree"
cmd "cfs-runtime import --store $S $VM_DATA/evil/rootfs"
check_contains import-modified-tree "" cfs-runtime import --store "$S" "$VM_DATA/evil/rootfs"
evil=$(tail -n 1 "$VM_OUT")
say "Someone who can write the store puts it in place of the signed image's file:"
swap="ln $(objpath "$evil") $S/swap && mv -f $S/swap $(objpath "$DIGEST")"
cmd "$swap"
check swap-images sh -c "$swap"
cp "$VM_DATA/config.signed.json" "$B/config.json"
cmd "cfs-runtime run --bundle $B demo"
say "Refused before the container starts; the kernel measured the image:"
check_fails swapped-image-refused "composefs digest mismatch: image $S/images/$DIGEST measures $evil, but the signed digest is $DIGEST" \
	cfs-runtime run --bundle "$B" demo
story "the store's image swapped for another tree's: $(refused "composefs digest mismatch")"

step "5. Tamper with the container: claim the other tree's digest, keep the signature"
sed "s/$DIGEST/$evil/" "$VM_DATA/config.signed.json" >"$B/config.json"
cmd "cfs-runtime run --bundle $B demo   # annotation now names $evil"
check_fails changed-digest-refused "signature not trusted" cfs-runtime run --bundle "$B" demo
changed=$(refused "signature not trusted")

step "6. And a container without a signature at all"
sed '/"composefs\./d' "$VM_DATA/config.signed.json" >"$B/config.json"
cmd "cfs-runtime run --bundle $B demo   # no composefs annotations"
check_fails unsigned-refused "no composefs digest" cfs-runtime run --bundle "$B" demo
unsigned=$(refused "no composefs digest")
case $changed$unsigned in
"refused before"*"refused before"*) story "the digest annotation changed to that tree's, or no signature at all: refused too" ;;
*)
	story "the digest annotation changed to that tree's: $changed"
	story "no signature at all: $unsigned"
	;;
esac

step "Nothing is left mounted"
check_output nothing-mounted "" sh -c 'grep " /run/cfs-runtime/" /proc/self/mountinfo; ls -A /run/cfs-runtime; runc list -q'
