//go:build amd64 && !purego

package verity

import "sync"

//go:generate sh -c "python3 sha256x2_gen.py > sha256x2_amd64.s"

// sha256Blocks2x runs the SHA-256 compression function over n 64-byte
// blocks of a and, interleaved, of b; st[0:8] and st[8:16] are the two
// chaining states. Implemented with the x86 SHA extensions.
//
//go:noescape
func sha256Blocks2x(st *[16]uint32, a, b *byte, n int)

// cpuid executes CPUID with EAX=leaf and ECX=sub.
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// have2x: the CPU has the SHA extensions and the SSE levels the code uses
// (SSSE3, SSE4.1). It is detected on first use, not at package
// initialisation (as golang.org/x/sys/cpu does): in a VM every CPUID traps
// to the hypervisor, and each runtime call through cfs-runtime, which
// links this package but hashes nothing, would pay for it.
var have2x = sync.OnceValue(func() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	const ssse3, sse41, sha = 1 << 9, 1 << 19, 1 << 29
	return ecx1&ssse3 != 0 && ecx1&sse41 != 0 && ebx7&sha != 0
})
