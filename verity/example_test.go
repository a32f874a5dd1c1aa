package verity_test

import (
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// The fs-verity digest of some bytes, as `fsverity digest` prints it for a
// file holding them (SHA-256, 4096-byte blocks, no salt).
func ExampleHasher() {
	h, err := verity.NewHasher()
	if err != nil {
		panic(err)
	}
	h.Write([]byte("hello\n"))
	fmt.Printf("sha256:%x\n", h.Sum())
	// Output: sha256:9c76eecc7b76fcb46199cb27b90cf59a660e10575bb0412128905129d5b1c2aa
}
