//go:build !amd64 || purego

package verity

// Without the assembly, leaves are hashed one by one with crypto/sha256.
func have2x() bool { return false }

// sha256Blocks2x is never called when have2x is false.
func sha256Blocks2x(st *[16]uint32, a, b *byte, n int) {}
