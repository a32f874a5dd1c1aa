// Package environ reads the environment this process was started with, as
// os.Environ and os.Getenv return it while nothing has changed it, which
// no cfs-runtime program does (TestNothingChangesTheEnvironment).
//
// It exists for the front, exec'd for every runtime call: the first
// os.Getenv or os.Environ of a process builds package syscall's table of
// every variable (a map, grown entry by entry), which cost a fresh
// process 10 to 15 us here, and the front needs one variable and the
// list it passes on to exec. This reads the runtime's copy of the
// environment instead, with the same rules: the first of duplicate keys
// counts, later ones are left out, as are empty entries.
package environ

import (
	"strings"
	_ "unsafe" // go:linkname
)

// runtimeEnvs is the Go runtime's copy of the environment the process was
// started with, the one package syscall starts from. The runtime exports
// it to syscall under this name (runtime.syscall_runtime_envs); a Go
// release that stops it would fail the build here, not read wrongly.
//
//go:linkname runtimeEnvs syscall.runtime_envs
func runtimeEnvs() []string

// Environ returns what os.Environ returns in a process that has not changed
// its environment: every entry in order, without the later entries of a key
// given twice and without empty ones.
func Environ() []string {
	envs := runtimeEnvs()
	// Each entry's key length (-1: no "="), so that looking for an
	// earlier entry with the same key compares strings only when the
	// lengths agree: a few dozen entries, each against those before it.
	var small [64]int
	klen := small[:0]
	if len(envs) > len(small) {
		klen = make([]int, 0, len(envs))
	}
	out := make([]string, 0, len(envs))
	for _, s := range envs {
		n := strings.IndexByte(s, '=')
		klen = append(klen, n)
		if s == "" || n >= 0 && shadowed(envs[:len(klen)-1], klen[:len(klen)-1], s[:n]) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Getenv returns what os.Getenv returns in a process that has not changed
// its environment: the value of the first entry for key ("" for the empty
// key).
func Getenv(key string) string {
	if key == "" {
		return ""
	}
	for _, s := range runtimeEnvs() {
		if k, v, ok := strings.Cut(s, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// shadowed: one of the entries before (whose key lengths are klen) has key
// k.
func shadowed(before []string, klen []int, k string) bool {
	for i, n := range klen {
		if n == len(k) && before[i][:n] == k {
			return true
		}
	}
	return false
}
