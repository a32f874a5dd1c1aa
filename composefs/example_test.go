package composefs_test

import (
	"fmt"
	"os"

	"github.com/cfs-runtime/cfs-runtime/composefs"
)

// The composefs digest of a tree given in the composefs-dump(5) format: the
// fs-verity digest of the EROFS image the tree makes. The dump and the
// digest are one of the reference vectors, made by mkcomposefs
// --from-file.
func ExampleParseDump() {
	f, err := os.Open("../testdata/vectors/out/03-small-files/dump.txt")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	tree, err := composefs.ParseDump(f)
	if err != nil {
		panic(err)
	}
	digest, err := tree.Digest()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", digest)
	// Output: f2fa27fc2957dc23b81018c067d3cc1e913547ed5e24039520a28b4742dba18d
}
