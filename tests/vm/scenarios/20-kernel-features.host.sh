# shellcheck shell=bash
# Stage composefs vector 03-small-files: its image (made by mkcomposefs
# 1.0.8), the tree it was made from (rebuilt by its recipe, for comparing
# contents), and three copies of its object store:
#   objects/          verity is enabled on every object in the guest
#   objects-noverity/ left without fs-verity
#   objects-wrong/    one object's content replaced (then verity enabled):
#                     its digest no longer matches the image's metacopy xattr
V=$REPO/testdata/vectors
OUT=$V/out/03-small-files
tree=$VM_DATA/tree
mkdir -p "$tree"
chmod 0755 "$tree"
# shellcheck disable=SC1091,SC2034 # T is the recipe's input
(cd "$V" && set -e && umask 022 && T=$tree && . ./lib.sh && . recipes/03-small-files.sh)
cp "$OUT/image.cfs" "$VM_DATA/image.cfs"
# objects are named by the fs-verity digest of their content; the file
# digests come from fsverity-utils (file-fsverity.txt)
while read -r digest path; do
	d=${digest#sha256:}
	obj=${d:0:2}/${d:2}
	grep -q "^$obj " "$OUT/store-list.txt" || continue # inline file, no object
	for store in objects objects-noverity objects-wrong; do
		mkdir -p "$VM_DATA/$store/${d:0:2}"
		cp "$tree/$path" "$VM_DATA/$store/$obj"
	done
done <"$OUT/file-fsverity.txt"
n=$(find "$VM_DATA/objects" -type f | wc -l)
want=$(wc -l <"$OUT/store-list.txt")
[ "$n" = "$want" ] || { echo "staged $n objects, store-list.txt has $want"; exit 1; }
# s1000's object, same size, other bytes
obj=$(awk '$2 == 1000 {print $1}' "$OUT/store-list.txt")
printf 'X' | dd of="$VM_DATA/objects-wrong/$obj" bs=1 seek=500 conv=notrunc status=none
cp "$OUT/store-list.txt" "$VM_DATA/store-list.txt"
# an ext4 without the verity feature, loop-mounted in the guest
mkfs.ext4 -q -F -b 4096 -O ^verity "$VM_DATA/noverity-ext4.img" 16M
