//go:build linux

package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkMountUnmount is the mount package's share of create + delete:
// Mount and Unmount of a small image, file-backed and through a loop
// device, writable.
//
// The state root is on tmpfs, as /run/cfs-runtime is.
func BenchmarkMountUnmount(b *testing.B) {
	for _, loop := range []bool{false, true} {
		name := "file"
		if loop {
			name = "loop"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			shm, err := os.MkdirTemp("/dev/shm", "cfs-mount-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(shm)
			e.root = filepath.Join(shm, "run")
			defer Cleanup(e.root, func(string) bool { return false })
			if loop {
				forceLoop(b)
			}
			for b.Loop() {
				m, err := Mount(e.opts("bench"))
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Unmount(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
