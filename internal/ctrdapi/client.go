package ctrdapi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 (RFC 9113) as a gRPC unary client needs it: one connection, one
// stream per call, calls one after another. Frames larger than the
// default maximum (16384 bytes: this client advertises no other) and
// anything a unary call cannot carry (server push, a stream reset, a
// second response message, a compressed one) end the connection with an
// error.
const (
	preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	settingEnablePush = 0x2

	// maxFrame is HTTP/2's default SETTINGS_MAX_FRAME_SIZE.
	maxFrame = 16384
	// maxHeaderBlock bounds a header block (HEADERS and CONTINUATION
	// frames), maxMessage a response message (grpc-go's default maximum
	// receive size).
	maxHeaderBlock = 64 << 10
	maxMessage     = 4 << 20

	codeDeadlineExceeded = 4
)

// ErrProtocol: containerd's answer is not the HTTP/2 and gRPC this client
// reads.
var ErrProtocol = errors.New("unexpected answer on containerd's socket")

// Conn is a connection to containerd's API on its unix socket, in one
// namespace.
type Conn struct {
	c        net.Conn
	r        *bufio.Reader
	ns       string
	stream   uint32 // the next stream's id
	dec      *hpack.Decoder
	err      error // sticky: the connection is unusable after any error
	deadline time.Time
}

// Dial connects to containerd's socket addr for calls in namespace ns; every
// call through the connection ends by timeout after Dial.
func Dial(addr, ns string, timeout time.Duration) (*Conn, error) {
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("unix", addr, timeout)
	if err != nil {
		return nil, &Status{Code: CodeUnavailable, Message: err.Error()}
	}
	return newConn(c, ns, deadline)
}

// newConn starts HTTP/2 on c.
func newConn(c net.Conn, ns string, deadline time.Time) (*Conn, error) {
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	conn := &Conn{c: c, r: bufio.NewReaderSize(c, 32<<10), ns: ns, stream: 1, deadline: deadline}
	conn.dec = hpack.NewDecoder(4096, nil)
	conn.dec.SetMaxStringLength(maxHeaderBlock)
	// The preface and SETTINGS (no server push) start the connection; the
	// server's SETTINGS are acknowledged as they come.
	b := []byte(preface)
	b = appendFrame(b, frameSettings, 0, 0, []byte{0, settingEnablePush, 0, 0, 0, 0})
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, conn.ioError(err)
	}
	return conn, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

func appendFrame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

// appendHpackInt appends an HPACK integer with an n-bit prefix (RFC 7541,
// 5.1) whose other bits are first.
func appendHpackInt(b []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	for v -= max; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

// appendHeader appends a literal header field without indexing, its name
// and value as plain strings (RFC 7541, 6.2.2): nothing of the dynamic
// table or Huffman's code is needed to send.
func appendHeader(b []byte, name, value string) []byte {
	b = append(b, 0)
	b = appendHpackInt(b, 0, 7, uint64(len(name)))
	b = append(b, name...)
	b = appendHpackInt(b, 0, 7, uint64(len(value)))
	return append(b, value...)
}

// Call makes one unary call: method's request req (a hand-encoded
// message), its response message. A gRPC status other than OK is a
// *Status; a protocol error wraps ErrProtocol. After any error the
// connection is unusable.
func (c *Conn) Call(method string, req []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	resp, err := c.call(method, req)
	var s *Status
	if err != nil && !(errors.As(err, &s) && s.answered) {
		c.err = err
	}
	return resp, err
}

func (c *Conn) call(method string, req []byte) ([]byte, error) {
	id := c.stream
	c.stream += 2
	var hdr []byte
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method},
		{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"},
		{NamespaceHeader, c.ns}} {
		hdr = appendHeader(hdr, f[0], f[1])
	}
	if len(hdr) > maxFrame || len(req) > maxFrame-5 {
		return nil, fmt.Errorf("%w: request to %s too large for one frame", ErrProtocol, method)
	}
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req)))
	msg = append(msg, req...)
	b := appendFrame(nil, frameHeaders, flagEndHeaders, id, hdr)
	b = appendFrame(b, frameData, flagEndStream, id, msg)
	if _, err := c.c.Write(b); err != nil {
		return nil, c.ioError(err)
	}

	var body []byte
	gotHeaders := false
	for {
		typ, flags, sid, payload, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if sid != 0 && sid < id && sid%2 == 1 && (typ == frameRSTStream || typ == frameWindowUpdate || typ == framePriority) {
			continue // about a stream of an earlier call, closed
		}
		if typ <= frameContinuation && typ != frameSettings && typ != framePing && typ != frameGoAway && typ != frameWindowUpdate && sid != id {
			return nil, fmt.Errorf("%w: frame type %d on stream %d during a call on stream %d", ErrProtocol, typ, sid, id)
		}
		switch typ {
		case frameData:
			if !gotHeaders {
				return nil, fmt.Errorf("%w: data before headers", ErrProtocol)
			}
			n := len(payload)
			if payload, err = unpad(flags, payload); err != nil {
				return nil, err
			}
			if len(body)+len(payload) > maxMessage+5 {
				return nil, fmt.Errorf("%w: response to %s larger than %d bytes", ErrProtocol, method, maxMessage)
			}
			body = append(body, payload...)
			if flags&flagEndStream != 0 {
				return nil, fmt.Errorf("%w: response to %s ended without gRPC's trailers", ErrProtocol, method)
			}
			if n > 0 {
				// Flow control: give back what was read.
				inc := binary.BigEndian.AppendUint32(nil, uint32(n))
				w := appendFrame(nil, frameWindowUpdate, 0, 0, inc)
				w = appendFrame(w, frameWindowUpdate, 0, id, inc)
				if _, err := c.c.Write(w); err != nil {
					return nil, c.ioError(err)
				}
			}
		case frameHeaders:
			fields, err := c.readHeaders(flags, id, payload)
			if err != nil {
				return nil, err
			}
			if !gotHeaders {
				gotHeaders = true
				if st := fields[":status"]; st != "200" {
					return nil, fmt.Errorf("%w: HTTP status %q", ErrProtocol, st)
				}
				if ct := fields["content-type"]; ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") && !strings.HasPrefix(ct, "application/grpc;") {
					return nil, fmt.Errorf("%w: content-type %q", ErrProtocol, ct)
				}
			} else if flags&flagEndStream == 0 {
				return nil, fmt.Errorf("%w: a second header block that does not end the stream", ErrProtocol)
			}
			if flags&flagEndStream != 0 {
				return finish(method, fields, body)
			}
		case frameRSTStream:
			if len(payload) != 4 {
				return nil, fmt.Errorf("%w: RST_STREAM of %d bytes", ErrProtocol, len(payload))
			}
			return nil, fmt.Errorf("%w: containerd reset the stream of %s (HTTP/2 error code %d)", ErrProtocol, method, binary.BigEndian.Uint32(payload))
		case framePriority:
		case frameSettings:
			if err := c.settings(sid, flags, payload); err != nil {
				return nil, err
			}
		case framePing:
			if sid != 0 || len(payload) != 8 {
				return nil, fmt.Errorf("%w: PING of %d bytes on stream %d", ErrProtocol, len(payload), sid)
			}
			if flags&flagAck == 0 {
				if _, err := c.c.Write(appendFrame(nil, framePing, flagAck, 0, payload)); err != nil {
					return nil, c.ioError(err)
				}
			}
		case frameGoAway:
			if len(payload) < 8 {
				return nil, fmt.Errorf("%w: GOAWAY of %d bytes", ErrProtocol, len(payload))
			}
			return nil, &Status{Code: CodeUnavailable, Message: fmt.Sprintf("containerd closed the connection (HTTP/2 GOAWAY, error code %d: %q)", binary.BigEndian.Uint32(payload[4:]), payload[8:])}
		case frameWindowUpdate:
			if len(payload) != 4 {
				return nil, fmt.Errorf("%w: WINDOW_UPDATE of %d bytes", ErrProtocol, len(payload))
			}
		case framePushPromise, frameContinuation:
			return nil, fmt.Errorf("%w: unexpected frame type %d", ErrProtocol, typ)
		default:
			// Unknown frame types are ignored (RFC 9113, 4.1).
		}
	}
}

// settings acknowledges the server's SETTINGS (none of them changes what
// this client sends: its frames are small, its one stream at a time).
func (c *Conn) settings(sid uint32, flags byte, payload []byte) error {
	if sid != 0 || len(payload)%6 != 0 || (flags&flagAck != 0 && len(payload) != 0) {
		return fmt.Errorf("%w: SETTINGS of %d bytes on stream %d", ErrProtocol, len(payload), sid)
	}
	if flags&flagAck != 0 {
		return nil
	}
	if _, err := c.c.Write(appendFrame(nil, frameSettings, flagAck, 0, nil)); err != nil {
		return c.ioError(err)
	}
	return nil
}

// readHeaders reads a header block: payload of a HEADERS frame, then
// CONTINUATION frames of stream id until END_HEADERS.
func (c *Conn) readHeaders(flags byte, id uint32, payload []byte) (map[string]string, error) {
	block, err := unpad(flags, payload)
	if err != nil {
		return nil, err
	}
	if flags&flagPriority != 0 {
		if len(block) < 5 {
			return nil, fmt.Errorf("%w: HEADERS too short for its priority", ErrProtocol)
		}
		block = block[5:]
	}
	block = append([]byte(nil), block...)
	for f := flags; f&flagEndHeaders == 0; {
		typ, cf, sid, p, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if typ != frameContinuation || sid != id {
			return nil, fmt.Errorf("%w: frame type %d on stream %d within a header block", ErrProtocol, typ, sid)
		}
		if len(block)+len(p) > maxHeaderBlock {
			return nil, fmt.Errorf("%w: header block larger than %d bytes", ErrProtocol, maxHeaderBlock)
		}
		block = append(block, p...)
		f = cf
	}
	hf, err := c.dec.DecodeFull(block)
	if err != nil {
		return nil, fmt.Errorf("%w: header block: %w", ErrProtocol, err)
	}
	fields := make(map[string]string, len(hf))
	for _, h := range hf {
		if _, dup := fields[h.Name]; dup {
			return nil, fmt.Errorf("%w: header %s twice", ErrProtocol, h.Name)
		}
		fields[h.Name] = h.Value
	}
	return fields, nil
}

// finish reads a call's outcome from its trailers and the response body.
func finish(method string, trailers map[string]string, body []byte) ([]byte, error) {
	st, ok := trailers["grpc-status"]
	if !ok {
		return nil, fmt.Errorf("%w: response to %s without grpc-status", ErrProtocol, method)
	}
	code, err := strconv.Atoi(st)
	if err != nil || code < 0 {
		return nil, fmt.Errorf("%w: grpc-status %q", ErrProtocol, st)
	}
	if code != 0 {
		return nil, &Status{Code: code, Message: percentDecode(trailers["grpc-message"]), answered: true}
	}
	if len(body) < 5 {
		return nil, fmt.Errorf("%w: response to %s without a message", ErrProtocol, method)
	}
	if body[0] != 0 {
		return nil, fmt.Errorf("%w: compressed response to %s", ErrProtocol, method)
	}
	if n := binary.BigEndian.Uint32(body[1:5]); uint64(n) != uint64(len(body)-5) {
		return nil, fmt.Errorf("%w: response to %s: a message of %d bytes in %d bytes of data", ErrProtocol, method, n, len(body)-5)
	}
	return body[5:], nil
}

// readFrame reads one frame, at most maxFrame bytes of payload.
func (c *Conn) readFrame() (typ, flags byte, stream uint32, payload []byte, err error) {
	var h [9]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, 0, 0, nil, c.ioError(err)
	}
	n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if n > maxFrame {
		return 0, 0, 0, nil, fmt.Errorf("%w: frame of %d bytes, more than %d", ErrProtocol, n, maxFrame)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		return 0, 0, 0, nil, c.ioError(err)
	}
	return h[3], h[4], binary.BigEndian.Uint32(h[5:]) &^ (1 << 31), payload, nil
}

// unpad strips a PADDED frame's padding.
func unpad(flags byte, p []byte) ([]byte, error) {
	if flags&flagPadded == 0 {
		return p, nil
	}
	if len(p) < 1 || int(p[0]) > len(p)-1 {
		return nil, fmt.Errorf("%w: padding longer than its frame", ErrProtocol)
	}
	return p[1 : len(p)-int(p[0])], nil
}

// ioError words a socket error as grpc-go's status would: the deadline
// DeadlineExceeded, a closed or failed connection Unavailable.
func (c *Conn) ioError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &Status{Code: codeDeadlineExceeded, Message: "no answer from containerd by the deadline"}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &Status{Code: CodeUnavailable, Message: "containerd closed the connection"}
	}
	return &Status{Code: CodeUnavailable, Message: err.Error()}
}

// percentDecode decodes grpc-message (gRPC's percent-encoding).
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
