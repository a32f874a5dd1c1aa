package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
	"github.com/cfs-runtime/cfs-runtime/ociimage"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// containerd's API is spoken with hand-encoded messages (protowire) of the
// few fields read here, instead of linking containerd's client and its
// generated types: the field numbers are containerd's API (api/services/
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

	// maxBlob bounds a manifest or index read from the content store.
	maxBlob = 4 << 20
	timeout = 30 * time.Second
)

// rawCodec passes hand-encoded messages through gRPC.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type containerdClient struct {
	conn *grpc.ClientConn
	ctx  context.Context
	addr string
}

func containerdManifest(req *engineimage.Request) (*engineimage.Manifest, error) {
	if req.ContainerdAddress == "" || req.ContainerdNamespace == "" {
		return nil, errors.New("containerd: no address or namespace in the request")
	}
	conn, err := grpc.NewClient("unix://"+req.ContainerdAddress,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, fmt.Errorf("containerd %s: %w", req.ContainerdAddress, err)
	}
	defer conn.Close()
	// An import reads whole layers: its caller bounds it.
	ctx, cancel := context.Background(), func() {}
	if req.Op != engineimage.OpImport {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	c := &containerdClient{conn: conn, addr: req.ContainerdAddress,
		ctx: metadata.AppendToOutgoingContext(ctx, namespaceHeader, req.ContainerdNamespace)}
	m, target, err := c.manifest(req)
	if err != nil || req.Op != engineimage.OpImport {
		return m, err
	}
	ref := ociimage.Ref{Transport: "containerd", Path: req.Image.Name}
	l, err := ociimage.OpenBlobs(ref, c.openBlob, v1.Descriptor{MediaType: target.MediaType, Digest: digest.Digest(target.Digest), Size: target.Size})
	if err != nil {
		return nil, err
	}
	if m.Log, err = importLayout(req, l); err != nil {
		return nil, err
	}
	return m, nil
}

// manifest reads the image of the container's record: by the image id
// the CRI plugin resolved when it created the container (the record's
// ImageRef), so that a tag moved since then cannot change which image is
// checked; by name only for a record without one. It also returns the
// image record's target.
func (c *containerdClient) manifest(req *engineimage.Request) (*engineimage.Manifest, descriptor, error) {
	var none descriptor
	name, imageID, err := c.container(req.ContainerID)
	if err != nil {
		return nil, none, err
	}
	if name != req.Image.Name {
		return nil, none, fmt.Errorf("containerd: container %s runs image %q, but its annotation %s says %q", req.ContainerID, name, engineimage.ContainerdImageName, req.Image.Name)
	}
	lookup := name
	if imageID != "" {
		lookup = imageID
	}
	target, err := c.image(lookup)
	if status.Code(err) == codes.NotFound && lookup != name {
		// Images the CRI plugin did not pull itself (ctr images
		// import) have no record named by their id: the name's record
		// then, held to the id below.
		lookup = name
		target, err = c.image(lookup)
	}
	if err != nil {
		return nil, none, fmt.Errorf("containerd %s: image %s: %w", c.addr, lookup, describe(err))
	}
	m, err := resolveManifest(c.blob, target)
	if err != nil {
		return nil, none, fmt.Errorf("containerd: image %s: %w", lookup, err)
	}
	if imageID != "" && m.Config != imageID {
		return nil, none, fmt.Errorf("containerd: image %s: manifest %s has config %s", imageID, m.Digest, m.Config)
	}
	return m, target, nil
}

// call makes one unary call with a hand-encoded request.
func (c *containerdClient) call(method string, in []byte) ([]byte, error) {
	var out []byte
	if err := c.conn.Invoke(c.ctx, method, &in, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// container returns the image name of a container's record and, when the
// CRI plugin made it, the image id it resolved.
func (c *containerdClient) container(id string) (name, imageID string, err error) {
	resp, err := c.call(methodGetContainer, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), id))
	if err != nil {
		return "", "", fmt.Errorf("containerd %s: container %s: %w", c.addr, id, describe(err))
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

// image returns an image record's target descriptor (a gRPC error).
func (c *containerdClient) image(name string) (descriptor, error) {
	resp, err := c.call(methodGetImage, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name))
	if err != nil {
		return descriptor{}, err
	}
	t := field(field(resp, 1), 3) // GetImageResponse.image.target
	d := descriptor{MediaType: string(field(t, 1)), Digest: string(field(t, 2))}
	if v, ok := varint(t, 3); ok {
		d.Size = int64(v)
	}
	return d, nil
}

// openBlob streams a blob from the content store (ociimage checks it
// against its digest as it reads).
func (c *containerdClient) openBlob(dgst string) (io.ReadCloser, error) {
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
		return nil, fmt.Errorf("content store: blob %s: %w", dgst, describe(err))
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
			return 0, fmt.Errorf("content store: blob %s: %w", r.digest, describe(err))
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

// blob reads a blob of at most maxBlob bytes from the content store and
// checks it against its digest.
func (c *containerdClient) blob(d descriptor) ([]byte, error) {
	if d.Size > maxBlob {
		return nil, fmt.Errorf("blob %s: %d bytes, more than a manifest may have (%d)", d.Digest, d.Size, maxBlob)
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
			return nil, fmt.Errorf("content store: blob %s: %w", d.Digest, describe(err))
		}
		data = append(data, field(msg, 2)...)
		if len(data) > maxBlob {
			return nil, fmt.Errorf("blob %s: more than %d bytes", d.Digest, maxBlob)
		}
	}
	if err := checkDigest(d.Digest, data); err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return data, nil
}

// describe words a gRPC error without its "rpc error: code = ..." frame.
func describe(err error) error {
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.NotFound {
			return fmt.Errorf("not found (%s)", s.Message())
		}
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

// checkDigest checks data against a sha256 digest.
func checkDigest(digest string, data []byte) error {
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
