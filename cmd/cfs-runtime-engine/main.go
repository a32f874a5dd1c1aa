// Command cfs-runtime-engine reads the manifest of the image a container
// engine runs a container from, out of the engine's own store: containerd's
// content store through containerd's API, or containers-storage (CRI-O,
// podman). cfs-runtime-mount runs it at create when the engine names the
// image (package internal/engineimage): the gRPC client lives here so that
// the runtime path stays small.
//
// It reads one engineimage.Request (JSON) on stdin and writes one
// engineimage.Manifest (JSON) on stdout; on failure a one-line reason on
// stderr and exit status 1.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
)

// maxRequest bounds the request read from stdin.
const maxRequest = 64 << 10

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: cfs-runtime-engine < REQUEST.json (a helper of cfs-runtime; it takes no arguments)")
		os.Exit(2)
	}
	m, err := run(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(m); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(r io.Reader) (*engineimage.Manifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxRequest+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	if len(data) > maxRequest {
		return nil, fmt.Errorf("request larger than %d bytes", maxRequest)
	}
	var req engineimage.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("invalid request: %w", err)
	}
	switch req.Image.Engine {
	case engineimage.Containerd:
		return containerdManifest(&req)
	case engineimage.CRIO, engineimage.Podman:
		if req.Op == engineimage.OpImport {
			return storageImport(&req)
		}
		if req.Image.Engine == engineimage.Podman {
			return nil, errors.New("podman names no image: only an import is asked for")
		}
		return storageManifest(&req)
	}
	return nil, fmt.Errorf("unknown engine %q", req.Image.Engine)
}
