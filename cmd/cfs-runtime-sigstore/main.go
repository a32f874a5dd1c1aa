// Command cfs-runtime-sigstore verifies keyless sigstore bundles for
// cfs-runtime. It is a separate executable so that cfs-runtime itself, exec'd
// for every runtime call, never links (and never initializes) sigstore-go,
// protobuf and grpc. cfs-runtime execs it, from the directory of its own
// executable (or the policy's sigstore_helper, or $CFS_RUNTIME_SIGSTORE),
// only when a container carries a .sigstore-bundle annotation and the trust
// policy has a sigstore signer, and when `cfs-runtime policy check` checks a
// policy with sigstore signers.
//
// Protocol: one JSON request on stdin, one JSON response on stdout (see
// package attest/internal/helperproto). Exit status 0 whenever a response
// was written, refusals included; 2 for usage errors, 1 for a request that
// cannot be read.
package main

import (
	"fmt"
	"os"

	"github.com/cfs-runtime/cfs-runtime/attest/sigstorebundle"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: cfs-runtime-sigstore < REQUEST.json (a helper of cfs-runtime; it takes no arguments)")
		os.Exit(2)
	}
	if err := sigstorebundle.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cfs-runtime-sigstore:", err)
		os.Exit(1)
	}
}
