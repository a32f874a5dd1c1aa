//go:build amd64 && !purego

package verity

import "golang.org/x/sys/cpu"

//go:generate sh -c "python3 sha256x2_gen.py > sha256x2_amd64.s"

// sha256Blocks2x runs the SHA-256 compression function over n 64-byte
// blocks of a and, interleaved, of b; st[0:8] and st[8:16] are the two
// chaining states. Implemented with the x86 SHA extensions.
//
//go:noescape
func sha256Blocks2x(st *[16]uint32, a, b *byte, n int)

func cpuidSHA() bool

// have2x: the CPU has the SHA extensions (and the SSE levels the code uses).
var have2x = cpu.X86.HasSSSE3 && cpu.X86.HasSSE41 && cpuidSHA()
