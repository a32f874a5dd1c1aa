package attest_test

import (
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/attest"
)

// A composefs digest as annotations and `cfs-runtime sign` print it: the
// fs-verity algorithm and block size of the image, then the digest.
func ExampleParseDigest() {
	d, err := attest.ParseDigest("sha256:9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa")
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Algorithm, d.BlockSize, d.Hex())
	// Output: sha256 4096 9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa
}
