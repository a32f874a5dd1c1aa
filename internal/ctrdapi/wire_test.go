package ctrdapi

import (
	"errors"
	"testing"

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
