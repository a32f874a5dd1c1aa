# shellcheck shell=sh
# The kernel features the enforcing path needs, proven with busybox and
# vmtool only (no cfs-runtime code): file-backed EROFS, fs-verity on ext4,
# and overlayfs with a data-only lower layer and verity=require, mounted both
# with the legacy option string and with the new mount API.
D=$VM_DATA
M=/mnt/kf
mkdir -p $M/erofs $M/erofs2 $M/plain $M/legacy $M/api $M/noverity $M/wrong $M/off

# same_tree DIR: every file of the original tree reads back identically
# through DIR, and DIR lists exactly the tree's names (all plain names)
same_tree() {
	# shellcheck disable=SC2012
	[ "$(ls -A "$1")" = "$(ls -A "$D/tree")" ] || {
		echo "listing differs: $(ls -A "$1" | tr '\n' ' ')"
		return 1
	}
	for f in "$D"/tree/*; do
		cmp "$1/${f##*/}" "$f" || return 1
	done
}

# objects DIR: the object paths (XX/YYYY...) of a store, sorted
objects() {
	(cd "$1" && find . -type f | sed 's|^\./||' | sort)
}

# measured_names DIR: every object's kernel-measured digest equals its name
measured_names() {
	# shellcheck disable=SC2046 # object names have no spaces
	(cd "$1" && vmtool measure $(objects .)) >"$VM_WORK/measure.txt" || return 1
	cat "$VM_WORK/measure.txt"
	sed -n 's|^sha256:\(..\)\([0-9a-f]*\) \(.*\)$|\1/\2 \3|p' "$VM_WORK/measure.txt" |
		awk '$1 != $2 {print "mismatch: " $0; bad=1} END {exit bad}'
	[ "$(wc -l <"$VM_WORK/measure.txt")" = "$(wc -l <"$D/store-list.txt")" ]
}

# -- file-backed EROFS: the composefs image mounted straight from its file,
# with mount(2) and with the new mount API (busybox mount would set up a
# loop device for a regular file, so vmtool mounts)
check erofs-file-mount vmtool mount -r erofs "$D/image.cfs" $M/erofs
check erofs-file-fsmount vmtool fsmount -r erofs "$D/image.cfs" $M/erofs2
check_output erofs-no-loop-device "" losetup -a
check_contains erofs-source-is-file " - erofs $D/image.cfs ro" grep " $M/erofs " /proc/self/mountinfo
check_output erofs-inline-file hello cat $M/erofs/hello.txt
check_output erofs-fsmount-inline-file hello cat $M/erofs2/hello.txt

# -- fs-verity on the ext4 data disk (made with mkfs.ext4 -O verity)
check verity-enable sh -c "cd '$D/objects' && vmtool enable \$(find . -type f)"
check verity-measure-equals-name measured_names "$D/objects"
first=$D/objects/$(objects "$D/objects" | head -n1)
check_fails verity-enable-again EEXIST vmtool enable "$first"
check_fails verity-open-for-write "Operation not permitted" sh -c "echo x >>'$first'"
check verity-enable-wrong sh -c "cd '$D/objects-wrong' && vmtool enable \$(find . -type f)"

# -- an ext4 made without the verity feature refuses: EOPNOTSUPP (Go and
# x/sys name errno 95 ENOTSUP)
check plain-ext4-mount mount -o loop "$D/noverity-ext4.img" $M/plain
echo data >$M/plain/f
check_fails plain-ext4-enable-refused "ENOTSUP (operation not supported)" vmtool enable $M/plain/f
umount $M/plain

# -- overlayfs, legacy syntax: lowerdir=LAYER::DATA (data-only lower layer)
opts=metacopy=on,redirect_dir=on,verity=require
check overlay-legacy-mount mount -t overlay overlay -o "ro,$opts,lowerdir=$M/erofs::$D/objects" $M/legacy
check_contains overlay-legacy-mountinfo "verity=require" grep " $M/legacy " /proc/self/mountinfo
check overlay-legacy-read-all same_tree $M/legacy

# -- overlayfs, new mount API: lowerdir+ / datadir+ through fsconfig
check overlay-fsconfig-mount vmtool fsmount -r overlay overlay $M/api \
	metacopy=on redirect_dir=on verity=require "lowerdir+=$M/erofs" "datadir+=$D/objects"
check_contains overlay-fsconfig-mountinfo "verity=require" grep " $M/api " /proc/self/mountinfo
check overlay-fsconfig-read-all same_tree $M/api

# -- verity=require refuses what the kernel cannot vouch for
check overlay-noverity-mount mount -t overlay overlay -o "ro,$opts,lowerdir=$M/erofs::$D/objects-noverity" $M/noverity
check_output noverity-inline-still-reads hello cat $M/noverity/hello.txt
check_fails noverity-read-eio "Input/output error" cat $M/noverity/s100
check_fails noverity-read-eio-4095 "Input/output error" cat $M/noverity/s4095
check_contains noverity-kernel-reason "has no fs-verity digest" sh -c "dmesg | grep overlayfs:"

check overlay-wrong-mount mount -t overlay overlay -o "ro,$opts,lowerdir=$M/erofs::$D/objects-wrong" $M/wrong
check_fails wrong-digest-read-eio "Input/output error" cat $M/wrong/s1000
check_contains wrong-digest-kernel-reason "has the wrong fs-verity digest" sh -c "dmesg | grep overlayfs:"
check wrong-other-files-read cmp $M/wrong/s2048 "$D/tree/s2048"

# the same object store without verity=require reads fine: the EIO above is
# the verity check, not a broken store
check overlay-verity-off-mount mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=on,lowerdir=$M/erofs::$D/objects-noverity" $M/off
check verity-off-reads-unverified cmp $M/off/s100 "$D/tree/s100"

# -- an object changed on disk behind the file system's back after verity
# was enabled (its digest still matches the image): reads fail with EIO
obj=$(awk '$2 == 2049 {print $1}' "$D/store-list.txt")
check corrupt-object-on-disk vmtool corrupt "$D/objects/$obj" 100 "$VM_DATA_DEV"
check_fails corrupted-read-eio "Input/output error" cat $M/legacy/s2049
check_fails corrupted-direct-read-eio "Input/output error" cat "$D/objects/$obj"
check_contains corrupted-kernel-reason "FILE CORRUPTED" sh -c "dmesg | grep fs-verity"
check corrupted-others-still-read cmp $M/legacy/s3000 "$D/tree/s3000"

for m in off wrong noverity api legacy erofs2 erofs; do
	umount $M/$m 2>/dev/null
done
check_output no-mounts-left "" sh -c "grep ' $M/' /proc/self/mountinfo || true"
