// Package containerd reads images from containerd's content store through
// containerd's API on its socket: a container's record, an image's
// record, blobs. It speaks the API with hand-encoded messages
// (protowire) of the few fields it reads instead of linking containerd's
// client and its generated types. The runtime binaries do not link it
// (gRPC): cfs-runtime-engine and cfs-runtime-tools (fsck --repair) do.
package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// The field numbers are containerd's API (api/services/
// {containers,images,content}/v1, api/types/descriptor.proto), stable
// since 1.0.
const (
	methodGetContainer = "/containerd.services.containers.v1.Containers/Get"
	methodGetImage     = "/containerd.services.images.v1.Images/Get"
	methodReadContent  = "/containerd.services.content.v1.Content/Read"
	namespaceHeader    = "containerd-namespace"

	// criMetadata is the extension in which containerd's CRI plugin
	// keeps its record of a container, JSON with the image id (ImageRef).
	criMetadata = "io.cri-containerd.container.metadata"
)

// rawCodec passes hand-encoded messages through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// Descriptor is the part of a content descriptor read here.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

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
	return &Client{conn: conn, ctx: metadata.AppendToOutgoingContext(ctx, namespaceHeader, ns), cancel: cancel, Addr: addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	c.cancel()
	return c.conn.Close()
}

// call makes one unary call with a hand-encoded request.
func (c *Client) call(method string, in []byte) ([]byte, error) {
	var out []byte
	if err := c.conn.Invoke(c.ctx, method, &in, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Container returns the image name of a container's record and, when the
// CRI plugin made it, the image id it resolved.
func (c *Client) Container(id string) (name, imageID string, err error) {
	resp, err := c.call(methodGetContainer, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), id))
	if err != nil {
		return "", "", fmt.Errorf("containerd %s: container %s: %w", c.Addr, id, Describe(err))
	}
	rec := field(resp, 1) // GetContainerResponse.container
	name = string(field(rec, 3))
	for _, e := range fields(rec, 10) { // extensions: map<string, Any>
		if string(field(e, 1)) != criMetadata {
			continue
		}
		var meta struct {
			Metadata struct{ ImageRef string }
		}
		if err := json.Unmarshal(field(field(e, 2), 2), &meta); err != nil {
			return "", "", fmt.Errorf("containerd: container %s: CRI metadata: %w", id, err)
		}
		imageID = meta.Metadata.ImageRef
	}
	return name, imageID, nil
}

// Image returns an image record's target descriptor (a gRPC error:
// IsNotFound, Describe).
func (c *Client) Image(name string) (Descriptor, error) {
	resp, err := c.call(methodGetImage, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name))
	if err != nil {
		return Descriptor{}, err
	}
	t := field(field(resp, 1), 3) // GetImageResponse.image.target
	d := Descriptor{MediaType: string(field(t, 1)), Digest: string(field(t, 2))}
	if v, ok := varint(t, 3); ok {
		d.Size = int64(v)
	}
	return d, nil
}

// OpenBlob streams a blob from the content store (unchecked: the caller
// checks it against its digest as it reads); a missing blob reads as
// fs.ErrNotExist.
func (c *Client) OpenBlob(dgst string) (io.ReadCloser, error) {
	req := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), dgst)
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
		r.buf = field(msg, 2)
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
	req := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), d.Digest)
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
		data = append(data, field(msg, 2)...)
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
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// Describe words a gRPC error without its "rpc error: code = ..." frame.
func Describe(err error) error {
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.NotFound {
			return fmt.Errorf("not found (%s)", s.Message())
		}
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

// CheckDigest checks data against a sha256 digest.
func CheckDigest(digest string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("blob %s: content hashes to %s", digest, got)
	}
	return nil
}

// fields returns the values of every length-delimited field num in msg.
func fields(msg []byte, num protowire.Number) [][]byte {
	var out [][]byte
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return out
		}
		msg = msg[l:]
		vl := protowire.ConsumeFieldValue(n, typ, msg)
		if vl < 0 {
			return out
		}
		if n == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(msg)
			out = append(out, v)
		}
		msg = msg[vl:]
	}
	return out
}

// field returns the last value of length-delimited field num (nil if none).
func field(msg []byte, num protowire.Number) []byte {
	all := fields(msg, num)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// varint returns varint field num of msg.
func varint(msg []byte, num protowire.Number) (uint64, bool) {
	var out uint64
	found := false
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			break
		}
		msg = msg[l:]
		vl := protowire.ConsumeFieldValue(n, typ, msg)
		if vl < 0 {
			break
		}
		if n == num && typ == protowire.VarintType {
			out, _ = protowire.ConsumeVarint(msg)
			found = true
		}
		msg = msg[vl:]
	}
	return out, found
}
