// Package store is cfs-runtime's content-addressed object store of
// composefs images, with fs-verity:
//
//   - objects: file contents and images under objects/XX/YYYY..., named by
//     their fs-verity digest (SHA-256, or SHA-512 for the images of a
//     store opened WithHash(verity.SHA512)), written complete or not at all and sealed
//     with fs-verity where the filesystem has it (Open, Store);
//   - images: imports of a directory tree, an image file or, through
//     StreamImport, streamed contents such as an OCI layer's
//     (ImportTree, ImportTreeExpecting, ImportImage, BeginStream), and the
//     check of an image and its objects before it is mounted (OpenImage,
//     CheckImageFile);
//   - provenance and refs: where an image's objects came from, and the
//     images kept by name with what each was imported from (SetProvenance;
//     SetRef, LookupRef, ListRefs, RemoveRef, ImportTreeAs), and the
//     lookup of what a user typed: a ref name, a digest or a unique digest
//     prefix (Resolve, ResolvePrefix);
//   - fsck, repair and gc: the check of every stored byte, the restoring
//     of damaged objects from their sources, and the removal of what no
//     ref or running container keeps (Fsck, Repair, GC);
//   - the store lock that imports, fsck, repair and users of an image
//     share and gc takes alone (Hold).
//
// The EROFS format is not here: building a tree, writing, reading and
// dumping images are package composefs, which this package uses through
// its public API (composefs.BuildTreeWith lets an import store each file
// while the scan hashes it, so that every file is read once).
//
//	s, err := store.Open("/var/lib/cfs-runtime")
//	digest, err := s.ImportTree("/path/to/rootfs")   // hex fs-verity digest
//	f, err := s.OpenImage(digest)                    // then check and mount f
//	_, err = s.CheckImageFile(f, digest, store.CheckMeasure)
package store
