// Package decompress opens the compressed tar archives that fsck --repair
// reads: gzip, bzip2, or none, told apart by their magic bytes.
//
// It is a package of its own so that the runtime binary, which links
// composefs, does not link compress/gzip and compress/bzip2: their package
// initialisers (CRC and Huffman tables) cost every runtime call.
package decompress

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// ErrUnsupportedCompression is returned for a stream compressed with
// something other than gzip or bzip2.
var ErrUnsupportedCompression = errors.New("unsupported compression")

// Reader returns the decompressed stream of br and a function that
// releases it. A stream without a known magic is returned as it is.
func Reader(br *bufio.Reader) (io.Reader, func() error, error) {
	magic, _ := br.Peek(6)
	none := func() error { return nil }
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, none, err
		}
		return gz, gz.Close, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), none, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, none, fmt.Errorf("%w: zstd (decompress it first: zstd -d)", ErrUnsupportedCompression)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, none, fmt.Errorf("%w: xz (decompress it first: xz -d)", ErrUnsupportedCompression)
	}
	return br, none, nil
}
