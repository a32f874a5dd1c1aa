// Package containerd reads images from containerd's content store through
// containerd's API on its socket: a container's record, an image's
// record, blobs. It speaks the API with hand-encoded messages (package
// ctrdapi, which also makes the unary calls without grpc-go for the
// runtime path) of the few fields it reads instead of linking
// containerd's client and its generated types. The runtime binaries do not link it
// (gRPC): cfs-runtime-engine and cfs-runtime-tools (fsck --repair) do.
package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const methodReadContent = "/containerd.services.content.v1.Content/Read"

// rawCodec passes hand-encoded messages through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Descriptor is the part of a content descriptor read here.
type Descriptor = ctrdapi.Descriptor

// Client is a connection to containerd in one namespace.
type Client struct {
	conn   *grpc.ClientConn
	ctx    context.Context
	cancel func()
	// Addr is containerd's socket.
	Addr string
}

// Dial connects to containerd's socket addr, namespace ns; timeout > 0
// bounds every call made through the client.
func Dial(addr, ns string, timeout time.Duration) (*Client, error) {
	conn, err := grpc.NewClient("unix://"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, fmt.Errorf("containerd %s: %w", addr, err)
	}
	ctx, cancel := context.Background(), func() {}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	return &Client{conn: conn, ctx: metadata.AppendToOutgoingContext(ctx, ctrdapi.NamespaceHeader, ns), cancel: cancel, Addr: addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	c.cancel()
	return c.conn.Close()
}

// Call makes one unary call with a hand-encoded request (a
// ctrdapi.Caller): containerd's error status is a *ctrdapi.Status.
func (c *Client) Call(method string, in []byte) ([]byte, error) {
	var out []byte
	if err := c.conn.Invoke(c.ctx, method, &in, &out); err != nil {
		if s, ok := status.FromError(err); ok {
			return nil, &ctrdapi.Status{Code: int(s.Code()), Message: s.Message()}
		}
		return nil, err
	}
	return out, nil
}

// Container returns the image name of a container's record and, when the
// CRI plugin made it, the image id it resolved.
func (c *Client) Container(id string) (name, imageID string, err error) {
	resp, err := c.Call(ctrdapi.MethodGetContainer, ctrdapi.GetRequest(id))
	if err != nil {
		return "", "", fmt.Errorf("containerd %s: container %s: %w", c.Addr, id, Describe(err))
	}
	name, imageID, err = ctrdapi.ParseContainer(resp)
	if err != nil {
		return "", "", fmt.Errorf("containerd: container %s: %w", id, err)
	}
	return name, imageID, nil
}

// Image returns an image record's target descriptor (a call's error:
// IsNotFound, Describe).
func (c *Client) Image(name string) (Descriptor, error) {
	resp, err := c.Call(ctrdapi.MethodGetImage, ctrdapi.GetRequest(name))
	if err != nil {
		return Descriptor{}, err
	}
	return ctrdapi.ParseImage(resp)
}

// OpenBlob streams a blob from the content store (unchecked: the caller
// checks it against its digest as it reads); a missing blob reads as
// fs.ErrNotExist.
func (c *Client) OpenBlob(dgst string) (io.ReadCloser, error) {
	req := ctrdapi.GetRequest(dgst) // ReadContentRequest.digest
	ctx, cancel := context.WithCancel(c.ctx)
	s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, methodReadContent)
	if err == nil {
		err = s.SendMsg(&req)
	}
	if err == nil {
		err = s.CloseSend()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("content store: blob %s: %w", dgst, Describe(err))
	}
	return &contentReader{s: s, cancel: cancel, digest: dgst}, nil
}

// contentReader reads a Content/Read stream.
type contentReader struct {
	s      grpc.ClientStream
	cancel func()
	digest string
	buf    []byte
}

func (r *contentReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		var msg []byte
		err := r.s.RecvMsg(&msg)
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return 0, fmt.Errorf("content store: blob %s: %w", r.digest, fs.ErrNotExist)
			}
			return 0, fmt.Errorf("content store: blob %s: %w", r.digest, Describe(err))
		}
		if r.buf, err = ctrdapi.Field(msg, 2); err != nil { // ReadContentResponse.data
			return 0, fmt.Errorf("content store: blob %s: %w", r.digest, err)
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *contentReader) Close() error {
	r.cancel()
	return nil
}

// ReadBlob reads a blob of at most max bytes from the content store and
// checks it against its (sha256) digest.
func (c *Client) ReadBlob(d Descriptor, max int64) ([]byte, error) {
	if d.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes, more than a manifest may have (%d)", d.Digest, d.Size, max)
	}
	req := ctrdapi.GetRequest(d.Digest)
	desc := &grpc.StreamDesc{ServerStreams: true}
	s, err := c.conn.NewStream(c.ctx, desc, methodReadContent)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(&req); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	var data []byte
	for {
		var msg []byte
		err := s.RecvMsg(&msg)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("content store: blob %s: %w", d.Digest, Describe(err))
		}
		chunk, err := ctrdapi.Field(msg, 2)
		if err != nil {
			return nil, fmt.Errorf("content store: blob %s: %w", d.Digest, err)
		}
		data = append(data, chunk...)
		if int64(len(data)) > max {
			return nil, fmt.Errorf("blob %s: more than %d bytes", d.Digest, max)
		}
	}
	if err := CheckDigest(d.Digest, data); err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return data, nil
}

// IsNotFound says whether a call's error is containerd's "not found".
func IsNotFound(err error) bool {
	return ctrdapi.IsNotFound(err) || status.Code(err) == codes.NotFound
}

// Describe words a call's error without its "rpc error: code = ..." frame.
func Describe(err error) error {
	if s, ok := status.FromError(err); ok {
		return ctrdapi.Describe(&ctrdapi.Status{Code: int(s.Code()), Message: s.Message()})
	}
	return ctrdapi.Describe(err)
}

// CheckDigest checks data against a sha256 digest.
func CheckDigest(digest string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("blob %s: content hashes to %s", digest, got)
	}
	return nil
}
