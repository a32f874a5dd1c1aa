package ctrdapi_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfs-runtime/cfs-runtime/internal/containerd"
	"github.com/cfs-runtime/cfs-runtime/internal/ctrdapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// fakeContainerd is a grpc-go server answering Containers/Get and
// Images/Get from its maps (encoded with protowire, as containerd's
// generated code would), in namespace "k8s.io" only.
type fakeContainerd struct {
	containers map[string][]byte // id → Container message
	images     map[string][]byte // name → Image message
}

func bytesField(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// containerMsg is a Container record as containerd's CRI plugin makes it,
// with a spec of specSize bytes (long records span many frames).
func containerMsg(id, image, imageRef string, specSize int) []byte {
	var c []byte
	c = bytesField(c, 1, []byte(id))
	c = bytesField(c, 2, bytesField(bytesField(nil, 1, []byte("io.cri-containerd.kind")), 2, []byte("container")))
	c = bytesField(c, 3, []byte(image))
	c = bytesField(c, 4, bytesField(nil, 1, []byte("io.containerd.runc.v2")))
	spec := bytesField(bytesField(nil, 1, []byte("types.containerd.io/opencontainers/runtime-spec/1/Spec")), 2, []byte(strings.Repeat("s", specSize)))
	c = bytesField(c, 5, spec)
	c = bytesField(c, 6, []byte("overlayfs"))
	c = protowire.AppendVarint(protowire.AppendTag(c, 12, protowire.VarintType), 7) // a field unknown here
	meta, _ := json.Marshal(map[string]any{"Version": "v1", "Metadata": map[string]any{"ID": id, "ImageRef": imageRef}})
	ext := bytesField(bytesField(nil, 1, []byte("io.cri-containerd.container.metadata")), 2,
		bytesField(bytesField(nil, 1, []byte("github.com/containerd/cri/pkg/store/container/Metadata")), 2, meta))
	c = bytesField(c, 10, ext)
	return c
}

func imageMsg(name, target string, size uint64) []byte {
	d := bytesField(nil, 1, []byte("application/vnd.oci.image.index.v1+json"))
	d = bytesField(d, 2, []byte(target))
	d = protowire.AppendVarint(protowire.AppendTag(d, 3, protowire.VarintType), size)
	i := bytesField(nil, 1, []byte(name))
	return bytesField(i, 3, d)
}

func (f *fakeContainerd) handle(_ any, s grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(s)
	md, _ := metadata.FromIncomingContext(s.Context())
	if ns := md.Get("containerd-namespace"); len(ns) != 1 || ns[0] != "k8s.io" {
		return status.Errorf(codes.FailedPrecondition, "namespace %v", ns)
	}
	var in []byte
	if err := s.RecvMsg(&in); err != nil {
		return err
	}
	key, err := protowire.ConsumeBytes(in[1:])
	if in[0] != 0x0a || err < 0 {
		return status.Error(codes.InvalidArgument, "bad request")
	}
	var rec []byte
	var ok bool
	switch method {
	case ctrdapi.MethodGetContainer:
		rec, ok = f.containers[string(key)]
	case ctrdapi.MethodGetImage:
		rec, ok = f.images[string(key)]
	default:
		return status.Error(codes.Unimplemented, method)
	}
	if !ok {
		return status.Errorf(codes.NotFound, "%s %q: not found, 100%% sure: ünïcode", method, key)
	}
	out := bytesField(nil, 1, rec)
	return s.SendMsg(&out)
}

func serve(t *testing.T, f *fakeContainerd) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(f.handle))
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return sock
}

const (
	target = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	id1    = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

// The mini client reads what grpc-go's client reads, record for record
// and error for error, from one grpc-go server.
func TestImageOfAgainstGrpcGo(t *testing.T) {
	f := &fakeContainerd{
		containers: map[string][]byte{
			"small":    containerMsg("small", "reg/app:1", id1, 100),
			"big":      containerMsg("big", "reg/app:1", id1, 300<<10), // > the 64 KiB windows
			"imported": containerMsg("imported", "reg/ctr:1", "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 10),
			"noimg":    containerMsg("noimg", "reg/none:1", "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", 10),
			"other":    containerMsg("other", "reg/other:1", "", 10),
		},
		images: map[string][]byte{
			id1:           imageMsg(id1, target, 1234),
			"reg/ctr:1":   imageMsg("reg/ctr:1", target, 99),
			"reg/other:1": imageMsg("reg/other:1", target, 5),
		},
	}
	f.containers["bad"] = []byte{0x1a, 0x05, 'x'} // image: 5 bytes claimed, 1 there
	sock := serve(t, f)
	g, err := containerd.Dial(sock, "k8s.io", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := ctrdapi.Dial(sock, "k8s.io", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, tc := range []struct{ id, name, wantErr string }{
		{id: "small", name: "reg/app:1"},
		{id: "big", name: "reg/app:1"},
		{id: "imported", name: "reg/ctr:1"},
		{id: "other", name: "reg/other:1"},
		{id: "small", name: "reg/else:1", wantErr: `containerd: container small runs image "reg/app:1", but its annotation io.kubernetes.cri.image-name says "reg/else:1"`},
		{id: "gone", name: "reg/app:1", wantErr: `containerd SOCK: container gone: not found (/containerd.services.containers.v1.Containers/Get "gone": not found, 100% sure: ünïcode)`},
		{id: "noimg", name: "reg/none:1", wantErr: `containerd SOCK: image reg/none:1: not found (/containerd.services.images.v1.Images/Get "reg/none:1": not found, 100% sure: ünïcode)`},
		{id: "bad", name: "x", wantErr: "containerd: container bad: malformed protobuf message"},
	} {
		want, werr := ctrdapi.ImageOf(g, sock, tc.id, tc.name)
		got, gerr := ctrdapi.ImageOf(m, sock, tc.id, tc.name)
		if tc.wantErr != "" {
			w := strings.ReplaceAll(tc.wantErr, "SOCK", sock)
			if werr == nil || gerr == nil || werr.Error() != w || gerr.Error() != w {
				t.Errorf("%s: grpc-go %v\nmini    %v\nwant    %s", tc.id, werr, gerr, w)
			}
			continue
		}
		if werr != nil || gerr != nil || *got != *want {
			t.Errorf("%s: mini %+v, %v\ngrpc-go %+v, %v", tc.id, got, gerr, want, werr)
		}
	}
	// The connection serves calls after an error status, too.
	if got, err := ctrdapi.ImageOf(m, sock, "small", "reg/app:1"); err != nil || got.Target.Digest != target || got.ImageID != id1 || got.Lookup != id1 {
		t.Fatalf("after errors: %+v, %v", got, err)
	}
	// Another namespace is containerd's error, with its code.
	o, err := ctrdapi.Dial(sock, "default", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var s *ctrdapi.Status
	if _, err := o.Call(ctrdapi.MethodGetImage, ctrdapi.GetRequest(id1)); !errors.As(err, &s) || s.Code != 9 || ctrdapi.Describe(err).Error() != "FailedPrecondition: namespace [default]" {
		t.Fatalf("other namespace: %v", err)
	}
}

// rawServer accepts one connection on a unix socket and runs fn on it.
func rawServer(t *testing.T, fn func(c net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "raw.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fn(c)
	}()
	return sock
}

// readPreface reads the client's preface, SETTINGS, HEADERS and DATA.
func readPreface(c net.Conn) {
	buf := make([]byte, 24+9+6)
	io.ReadFull(c, buf)
	for i := 0; i < 2; i++ {
		var h [9]byte
		io.ReadFull(c, h[:])
		io.ReadFull(c, make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2])))
	}
}

func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags}
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

// What the client cannot read exactly is an error, never an answer.
func TestCallFailsClosed(t *testing.T) {
	call := func(sock string, timeout time.Duration) error {
		c, err := ctrdapi.Dial(sock, "k8s.io", timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Call(ctrdapi.MethodGetImage, ctrdapi.GetRequest("x"))
		if err == nil {
			return errors.New("no error")
		}
		if _, again := c.Call(ctrdapi.MethodGetImage, ctrdapi.GetRequest("x")); again == nil || again.Error() != err.Error() {
			t.Errorf("the connection is used after %v: %v", err, again)
		}
		return err
	}
	// a literal header block: :status 200, content-type application/grpc
	ok200 := []byte{0x88, 0x00, 12}
	ok200 = append(ok200, "content-type"...)
	ok200 = append(ok200, 16)
	ok200 = append(ok200, "application/grpc"...)
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
		want  string
	}{
		{"closed", func(c net.Conn) {}, "Unavailable: containerd closed the connection"},
		{"closed mid-answer", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 4, 1, ok200))
		}, "Unavailable: containerd closed the connection"},
		{"oversized frame", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(0, 0, 1, make([]byte, 16385)))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: frame of 16385 bytes, more than 16384"},
		{"no answer", func(c net.Conn) {
			readPreface(c)
			time.Sleep(2 * time.Second)
		}, "DeadlineExceeded: no answer from containerd by the deadline"},
		{"not HTTP/2", func(c net.Conn) {
			readPreface(c)
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, "unexpected answer on containerd's socket: frame of 4740180 bytes, more than 16384"},
		{"trailers missing", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 4, 1, ok200))
			c.Write(frame(0, 1, 1, []byte{0, 0, 0, 0, 0}))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: response to /containerd.services.images.v1.Images/Get ended without gRPC's trailers"},
		{"no grpc-status", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 5, 1, ok200))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: response to /containerd.services.images.v1.Images/Get without grpc-status"},
		{"another stream", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 4, 3, ok200))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: frame type 1 on stream 3 during a call on stream 1"},
		{"HTTP status", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 4, 1, []byte{0x8d})) // :status 404
			time.Sleep(time.Second)
		}, `unexpected answer on containerd's socket: HTTP status "404"`},
		{"reset", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(3, 0, 1, []byte{0, 0, 0, 8}))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: containerd reset the stream of /containerd.services.images.v1.Images/Get (HTTP/2 error code 8)"},
		{"message length", func(c net.Conn) {
			readPreface(c)
			c.Write(frame(1, 4, 1, ok200))
			c.Write(frame(0, 0, 1, []byte{0, 0, 0, 0, 9, 1, 2}))
			tr := append([]byte{0x00, 11}, "grpc-status"...)
			c.Write(frame(1, 5, 1, append(tr, 1, '0')))
			time.Sleep(time.Second)
		}, "unexpected answer on containerd's socket: response to /containerd.services.images.v1.Images/Get: a message of 9 bytes in 2 bytes of data"},
	} {
		err := call(rawServer(t, tc.serve), 500*time.Millisecond)
		if got := ctrdapi.Describe(err).Error(); got != tc.want {
			t.Errorf("%s: %s\nwant %s", tc.name, got, tc.want)
		}
	}
	err := call(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if got := ctrdapi.Describe(err).Error(); !strings.HasPrefix(got, "Unavailable: dial unix ") || !strings.HasSuffix(got, "none.sock: connect: no such file or directory") {
		t.Errorf("no socket: %s", got)
	}
}
