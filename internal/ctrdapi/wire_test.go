package ctrdapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The hand-written decoder reads a message as protowire does, field for
// field; it refuses what protowire refuses, groups, and field numbers
// beyond protobuf's range (which protowire's ConsumeTag reads).
func FuzzWalkAgainstProtowire(f *testing.F) {
	for _, seed := range [][]byte{
		nil,
		AppendString(nil, 1, "sha256:abc"),
		AppendString(AppendString(nil, 3, "reg/app:1"), 10, string(AppendString(nil, 1, "k"))),
		{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // varint, 10 bytes
		{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, // overflow
		{0x0a, 0x05, 'x'}, // short
		{0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4}, // fixed64, fixed32
		{0x0b, 0x0c},                         // a group
		{0x00, 0x01},                         // field 0
		{0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01}, // field 2^29-1
		{0x80, 0x80, 0x80, 0x80, 0x10, 0x01}, // field 2^29
		{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 'x'}, // huge length
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		type fld struct {
			num, typ int
			b        string
			u        uint64
		}
		var mine []fld
		err := walk(msg, func(num, typ int, b []byte, u uint64) error {
			mine = append(mine, fld{num, typ, string(b), u})
			return nil
		})
		var theirs []fld
		rest, groups := msg, false
		var perr error
		for len(rest) > 0 {
			num, typ, n := protowire.ConsumeTag(rest)
			if n < 0 {
				perr = protowire.ParseError(n)
				break
			}
			rest = rest[n:]
			m := protowire.ConsumeFieldValue(num, typ, rest)
			if m < 0 {
				perr = protowire.ParseError(m)
				break
			}
			x := fld{num: int(num), typ: int(typ)}
			if num > protowire.MaxValidNumber {
				groups = true // invalid, read all the same by protowire
			}
			switch typ {
			case protowire.BytesType:
				v, _ := protowire.ConsumeBytes(rest)
				x.b = string(v)
			case protowire.VarintType:
				x.u, _ = protowire.ConsumeVarint(rest)
			case protowire.Fixed32Type:
				v, _ := protowire.ConsumeFixed32(rest)
				x.u = uint64(v)
			case protowire.Fixed64Type:
				x.u, _ = protowire.ConsumeFixed64(rest)
			default:
				groups = true
			}
			theirs = append(theirs, x)
			rest = rest[m:]
		}
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			if perr == nil && !groups {
				t.Fatalf("%x: refused (%v), protowire reads %v", msg, err, theirs)
			}
			return
		}
		if perr != nil || groups {
			t.Fatalf("%x: read as %v, protowire: %v (groups %v)", msg, mine, perr, groups)
		}
		if len(mine) != len(theirs) {
			t.Fatalf("%x: %v, protowire %v", msg, mine, theirs)
		}
		for i := range mine {
			if mine[i] != theirs[i] {
				t.Fatalf("%x: field %d: %v, protowire %v", msg, i, mine[i], theirs[i])
			}
		}
	})
}

// appendHpackInt encodes as RFC 7541, C.1 shows.
func TestAppendHpackInt(t *testing.T) {
	for _, tc := range []struct {
		n    uint
		v    uint64
		want []byte
	}{{5, 10, []byte{10}}, {5, 1337, []byte{31, 154, 10}}, {8, 42, []byte{42}}, {7, 127, []byte{127, 0}}} {
		if got := appendHpackInt(nil, 0, tc.n, tc.v); string(got) != string(tc.want) {
			t.Errorf("%d in %d bits: %x, want %x", tc.v, tc.n, got, tc.want)
		}
	}
}

// Whatever containerd's socket answers, a call ends (by the deadline at
// the latest) with a response or an error, never a panic; a response is
// only ever the one message of a well-formed answer.
func FuzzCall(f *testing.F) {
	hdr := append(appendHeader(nil, ":status", "200"), appendHeader(nil, "content-type", "application/grpc")...)
	ok := appendHeader(nil, "grpc-status", "0")
	msg := []byte{0, 0, 0, 0, 3, 0x0a, 1, 'x'}
	valid := appendFrame(nil, frameSettings, 0, 0, []byte{0, 4, 0, 0, 0xff, 0xff})
	valid = appendFrame(valid, framePing, 0, 0, make([]byte, 8))
	valid = appendFrame(valid, frameHeaders, flagEndHeaders, 1, hdr)
	valid = appendFrame(valid, frameData, 0, 1, msg)
	valid = appendFrame(valid, frameHeaders, flagEndHeaders|flagEndStream, 1, ok)
	f.Add(valid)
	if resp, err := answer(valid); err != nil || string(resp) != "\x0a\x01x" {
		f.Fatalf("a well-formed answer: %x, %v", resp, err)
	}
	f.Add(appendFrame(nil, frameHeaders, flagEndStream, 1, hdr[:3]))
	f.Add(appendFrame(appendFrame(nil, frameHeaders, flagPadded|flagPriority, 1, append([]byte{2, 0, 0, 0, 0, 0}, hdr...)), frameContinuation, flagEndHeaders, 1, []byte{0, 0}))
	f.Add(appendFrame(nil, frameGoAway, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 2, 'b', 'y', 'e'}))
	f.Fuzz(func(t *testing.T, a []byte) {
		resp, err := answer(a)
		if err == nil && !bytes.Contains(a, resp) {
			t.Fatalf("response %x is not in the answer", resp)
		}
	})
}

// answer makes a call that containerd's socket answers with a, the
// connection left open (an answer cut short ends by the deadline).
func answer(a []byte) ([]byte, error) {
	client, server := net.Pipe()
	defer server.Close()
	go io.Copy(io.Discard, server)
	go server.Write(a)
	c, err := newConn(client, "k8s.io", time.Now().Add(50*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Call(MethodGetImage, GetRequest("x"))
}
