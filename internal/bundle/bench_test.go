package bundle

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
)

// BenchmarkLoad is what every create pays to read a bundle: podman 4.3.1's
// config.json for `podman run --rootfs DIR true` (10.7 kB, seccomp profile
// inline).
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile("testdata/podman-config.json")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Load(dir, "config.json", bundlejson.JSON); err != nil {
			b.Fatal(err)
		}
	}
}
