package oci

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExecFn returns the path this process was exec'd by (AT_EXECFN of the
// auxiliary vector, which the kernel sets from execve's first argument,
// unlike argv[0]), or "" when there is none.
//
// The front names itself to Locate by it, /proc/self/exe only as the
// fallback: both stat to the same file, but the kernel builds the
// /proc/PID entries anew for each process, so that stat costs a new
// process several microseconds more than a plain path walk, on every
// runtime call. The path may be relative (to the working directory at
// exec, which the front never changes) or name a descriptor closed on
// exec (fexecve's /dev/fd/N), which is why the fallback stays.
func ExecFn() string {
	const (
		atExecFn = 31   // AT_EXECFN, <linux/auxvec.h>
		pathMax  = 4096 // PATH_MAX, <linux/limits.h>
	)
	auxv, err := unix.Auxv()
	if err != nil {
		return ""
	}
	for _, kv := range auxv {
		if kv[0] != atExecFn || kv[1] == 0 {
			continue
		}
		// kv[1] is the address of a NUL-terminated string the kernel
		// put at the top of the initial stack, which no Go code moves
		// or frees: read it in place, up to PATH_MAX bytes.
		p := *(*unsafe.Pointer)(unsafe.Pointer(&kv[1]))
		for n := 0; n < pathMax; n++ {
			if *(*byte)(unsafe.Add(p, n)) == 0 {
				return string(unsafe.Slice((*byte)(p), n))
			}
		}
		return ""
	}
	return ""
}
