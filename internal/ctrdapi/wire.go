// Package ctrdapi speaks the few calls of containerd's API that create
// needs on every containerd container (a container's record, an image's
// record) without grpc-go or the protobuf libraries, so that the runtime
// path (cfs-runtime-mount) can make them without the ~8 ms start-up of the
// cfs-runtime-engine helper: the messages' protobuf encoding by hand
// (this file), their fields (records.go), and a gRPC unary client over
// HTTP/2 on a unix socket (client.go). internal/containerd, which streams
// blobs through grpc-go for the helper and the tools, shares the messages.
//
// Everything here fails closed: a message or frame it cannot read exactly
// is an error, never a guess.
package ctrdapi

import (
	"errors"
	"fmt"
)

// Wire types of the protobuf encoding.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// errMalformed: a message is not a valid protobuf encoding (as read here:
// groups, long deprecated, are refused too).
var errMalformed = errors.New("malformed protobuf message")

// AppendString appends field num of a message as a length-delimited value.
func AppendString(b []byte, num int, s string) []byte {
	b = appendVarint(b, uint64(num)<<3|wireBytes)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// consumeVarint reads a varint as protowire.ConsumeVarint does (at most 10
// bytes, the last one at most 1); n < 0 on error.
func consumeVarint(b []byte) (v uint64, n int) {
	for i := 0; i < 10 && i < len(b); i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

// walk calls fn for each field of msg in order: its number, wire type, and
// value (the bytes of a length-delimited field, the number of the others,
// fixed ones little-endian).
func walk(msg []byte, fn func(num, typ int, b []byte, u uint64) error) error {
	for len(msg) > 0 {
		tag, n := consumeVarint(msg)
		if n < 0 {
			return errMalformed
		}
		msg = msg[n:]
		num, typ := tag>>3, int(tag&7)
		if num == 0 || num > 1<<29-1 {
			return fmt.Errorf("%w: field number %d", errMalformed, num)
		}
		var b []byte
		var u uint64
		switch typ {
		case wireVarint:
			if u, n = consumeVarint(msg); n < 0 {
				return errMalformed
			}
		case wireFixed64, wireFixed32:
			n = 8
			if typ == wireFixed32 {
				n = 4
			}
			if len(msg) < n {
				return errMalformed
			}
			for i := n - 1; i >= 0; i-- {
				u = u<<8 | uint64(msg[i])
			}
		case wireBytes:
			l, m := consumeVarint(msg)
			if m < 0 || l > uint64(len(msg)-m) {
				return errMalformed
			}
			b, n = msg[m:m+int(l)], m+int(l)
		default:
			return fmt.Errorf("%w: field %d has wire type %d", errMalformed, num, typ)
		}
		msg = msg[n:]
		if err := fn(int(num), typ, b, u); err != nil {
			return err
		}
	}
	return nil
}

// Fields returns the values of every occurrence of length-delimited field
// num of msg; a malformed message, or field num with another wire type, is
// an error.
func Fields(msg []byte, num int) ([][]byte, error) {
	var out [][]byte
	err := walk(msg, func(n, typ int, b []byte, _ uint64) error {
		if n != num {
			return nil
		}
		if typ != wireBytes {
			return fmt.Errorf("%w: field %d has wire type %d, want %d", errMalformed, num, typ, wireBytes)
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

// Field returns the last value of length-delimited field num (nil if
// none: protobuf's rule for a repeated singular field).
func Field(msg []byte, num int) ([]byte, error) {
	all, err := Fields(msg, num)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return all[len(all)-1], nil
}

// Varint returns the last value of varint field num, and whether there is
// one.
func Varint(msg []byte, num int) (uint64, bool, error) {
	var out uint64
	found := false
	err := walk(msg, func(n, typ int, _ []byte, u uint64) error {
		if n != num {
			return nil
		}
		if typ != wireVarint {
			return fmt.Errorf("%w: field %d has wire type %d, want %d", errMalformed, num, typ, wireVarint)
		}
		out, found = u, true
		return nil
	})
	return out, found, err
}
