package mount_test

import (
	"fmt"
	"os"

	"github.com/cfs-runtime/cfs-runtime/mount"
)

// Mounting a composefs image opened once (for example after measuring it
// with verity.MeasureFile): the overlay is mounted with verity=require, so
// the kernel checks every object's fs-verity digest against the image as
// it is read. Needs root and Linux >= 6.6 (run nothing here).
func ExampleMount() {
	img, err := os.Open("/var/lib/cfs-runtime/images/f2fa27fc2957dc23b81018c067d3cc1e913547ed5e24039520a28b4742dba18d")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer img.Close()
	m, err := mount.Mount(mount.Options{
		Image:      mount.ImageFile(img),
		ObjectsDir: "/var/lib/cfs-runtime/objects",
		StateDir:   "/run/cfs-runtime/example",
		Verity:     mount.VerityRequire,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Unmount()
	fmt.Println("root filesystem at", m.Root())
}

// What a mount verifies, as state records and logs print it.
func ExampleVerityMode() {
	fmt.Println(mount.VerityRequire, mount.VerityOff)
	// Output: require off
}
