// Package composefs is the composefs image format: it builds, writes,
// reads and dumps EROFS metadata images whose regular files redirect to
// content-addressed objects, mounted with overlayfs so that the kernel's
// fs-verity checks every byte read.
//
// It does not store images: the content-addressed object store (objects,
// imports, image checks, provenance, fsck, repair, gc, the store lock) is
// package composefs/store, which builds on this one; this package imports
// nothing of it.
//
// What gets signed is the composefs digest, the fs-verity digest of the
// image, so the writer produces byte for byte what mkcomposefs 1.0.8 writes
// for the same tree (format versions 0 and 1).
//
// Building an image:
//
//	t, err := composefs.BuildTree("/path/to/rootfs")   // scan a directory
//	t, err := composefs.ParseDump(r)                   // or read composefs-dump(5)
//	err = t.WriteImage(w)                               // the image bytes
//	d, err := t.Digest()                                // or just its digest
//	err = t.CopyObjects("/path/to/objects")             // mkcomposefs --digest-store
//	err = t.WalkObjects(func(o composefs.Object) error { ... }) // files for a store
//
// composefs.Digest(dir, opts...) is BuildTree + Tree.Digest, like
// `mkcomposefs --print-digest-only`. Options are mkcomposefs' flags:
// WithUseEpoch, WithSkipXattrs, WithUserXattrs, WithSkipDevices (scan only),
// WithMinVersion/WithMaxVersion (image format version; default 0..1 with
// version 1 only when the tree has whiteouts; giving one of them makes the
// other default to 0) and WithThreads (digest and copy parallelism; never
// changes the output).
//
// Tree.WriteComposefsRSImage and Tree.ComposefsRSDigest write another
// format of the same tree: composefs-rs' legacy V2 (composefsrs_v2.go),
// what `cfsctl --erofs-version 2` computes. composefs-rs' current V1 is
// libcomposefs' format: WriteImage with WithMinVersion(1).
//
// Reading an image: ParseImage and ReadImageFile check its header and
// superblock, Image.Walk checks and visits every inode, and WriteDump,
// WriteLs and Objects print what composefs-info dump, ls and objects print.
// AppendDumpLine and ParseDumpLine (dumpline.go) handle one dump line on
// its own, for records of entries that form no tree (ociimage's layers).
//
// A Tree holds metadata only: regular files up to 64 bytes (5000 from a
// dump) are inline, bigger ones are referenced by payload ("XX/YYYY...",
// their fs-verity digest) and read from Tree.SourceDir when hashed or
// copied. Children are kept sorted bytewise, as EROFS lookups require.
// The writer never modifies the Tree.
package composefs
