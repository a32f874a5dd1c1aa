package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
)

// importLayout imports the image of l into the request's store, as
// `cfs-runtime import` does (every blob checked against its digest, every
// layer against its diff_id, layers with a record not read again), and
// commits it only if it has the sealed digest. It returns the per-layer
// log. The caller (create) holds the store's import lock of the digest.
func importLayout(req *engineimage.Request, l *ociimage.Layout) ([]string, error) {
	if req.Store == "" || req.Expect == "" {
		return nil, errors.New("import: no store or no expected digest in the request")
	}
	st, err := store.Open(req.Store)
	if err != nil {
		return nil, err
	}
	var log bytes.Buffer
	res, err := ociimage.ImportLayout(st, l, ociimage.Options{Expect: req.Expect, Log: &log})
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	return append(lines, fmt.Sprintf("imported %s: composefs digest %s, manifest %s, %d of %d layers read", l.Ref(), res.Digest, res.Manifest, res.Processed(), len(res.Layers))), nil
}
