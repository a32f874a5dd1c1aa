package ctrdapi

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
)

// The methods and field numbers are containerd's API (api/services/
// {containers,images}/v1, api/types/descriptor.proto), stable since 1.0.
const (
	MethodGetContainer = "/containerd.services.containers.v1.Containers/Get"
	MethodGetImage     = "/containerd.services.images.v1.Images/Get"
	// NamespaceHeader is the metadata that names containerd's namespace.
	NamespaceHeader = "containerd-namespace"

	// criMetadata is the extension in which containerd's CRI plugin
	// keeps its record of a container, JSON with the image id (ImageRef).
	criMetadata = "io.cri-containerd.container.metadata"
)

// Caller makes one unary call of containerd's API with a hand-encoded
// request; a call containerd answered with an error status returns a
// *Status.
type Caller interface {
	Call(method string, req []byte) ([]byte, error)
}

// Descriptor is the part of a content descriptor read here.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// GetRequest encodes a Get request of either service: its one field is
// the id (containers) or the name (images).
func GetRequest(key string) []byte { return AppendString(nil, 1, key) }

// ParseContainer reads a GetContainerResponse: the image name of the
// container's record and, when the CRI plugin made it, the image id it
// resolved.
func ParseContainer(resp []byte) (name, imageID string, err error) {
	rec, err := Field(resp, 1) // GetContainerResponse.container
	if err != nil {
		return "", "", err
	}
	img, err := Field(rec, 3)
	if err != nil {
		return "", "", err
	}
	exts, err := Fields(rec, 10) // extensions: map<string, Any>
	if err != nil {
		return "", "", err
	}
	for _, e := range exts {
		k, err := Field(e, 1)
		if err != nil {
			return "", "", err
		}
		if string(k) != criMetadata {
			continue
		}
		anyMsg, err := Field(e, 2)
		if err != nil {
			return "", "", err
		}
		v, err := Field(anyMsg, 2) // Any.value
		if err != nil {
			return "", "", err
		}
		var meta struct {
			Metadata struct{ ImageRef string }
		}
		if err := json.Unmarshal(v, &meta); err != nil {
			return "", "", fmt.Errorf("CRI metadata: %w", err)
		}
		imageID = meta.Metadata.ImageRef
	}
	return string(img), imageID, nil
}

// ParseImage reads a GetImageResponse: the image record's target.
func ParseImage(resp []byte) (Descriptor, error) {
	img, err := Field(resp, 1) // GetImageResponse.image
	if err != nil {
		return Descriptor{}, err
	}
	t, err := Field(img, 3) // Image.target
	if err != nil {
		return Descriptor{}, err
	}
	mt, err := Field(t, 1)
	if err != nil {
		return Descriptor{}, err
	}
	dg, err := Field(t, 2)
	if err != nil {
		return Descriptor{}, err
	}
	size, _, err := Varint(t, 3)
	if err != nil {
		return Descriptor{}, err
	}
	return Descriptor{MediaType: string(mt), Digest: string(dg), Size: int64(size)}, nil
}

// ContainerImage is the image of a container's record.
type ContainerImage struct {
	// Name is the image name of the container's record, ImageID the image
	// id the CRI plugin resolved when it created the container ("" when
	// another client made it).
	Name, ImageID string
	// Lookup is the image record read (ImageID, else Name), Target its
	// target (a manifest, or an index).
	Lookup string
	Target Descriptor
}

// ImageOf reads the image of container id's record from containerd at addr
// (for messages): by the image id the CRI plugin resolved when it created
// the container (the record's ImageRef), so that a tag moved since then
// cannot change which image is checked; by name only for a record without
// one, or for an image the CRI plugin did not pull itself (ctr images
// import), which has no record named by its id. The record's image name
// must be name, the one the engine's annotation names.
func ImageOf(c Caller, addr, id, name string) (*ContainerImage, error) {
	resp, err := c.Call(MethodGetContainer, GetRequest(id))
	if err != nil {
		return nil, fmt.Errorf("containerd %s: container %s: %w", addr, id, Describe(err))
	}
	recName, imageID, err := ParseContainer(resp)
	if err != nil {
		return nil, fmt.Errorf("containerd: container %s: %w", id, err)
	}
	if recName != name {
		return nil, fmt.Errorf("containerd: container %s runs image %q, but its annotation %s says %q", id, recName, engineimage.ContainerdImageName, name)
	}
	lookup := recName
	if imageID != "" {
		lookup = imageID
	}
	resp, err = c.Call(MethodGetImage, GetRequest(lookup))
	if IsNotFound(err) && lookup != recName {
		lookup = recName
		resp, err = c.Call(MethodGetImage, GetRequest(lookup))
	}
	if err != nil {
		return nil, fmt.Errorf("containerd %s: image %s: %w", addr, lookup, Describe(err))
	}
	t, err := ParseImage(resp)
	if err != nil {
		return nil, fmt.Errorf("containerd: image %s: %w", lookup, err)
	}
	if t.Digest == "" {
		return nil, fmt.Errorf("containerd: image %s: its record has no target digest", lookup)
	}
	return &ContainerImage{Name: recName, ImageID: imageID, Lookup: lookup, Target: t}, nil
}

// Status is a gRPC status other than OK.
type Status struct {
	Code    int
	Message string
	// answered: containerd answered the call with this status (the
	// connection stays usable).
	answered bool
}

// gRPC's status codes, by number (google.golang.org/grpc/codes).
var codeNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

// Codes used here.
const (
	CodeUnknown     = 2
	CodeNotFound    = 5
	CodeInternal    = 13
	CodeUnavailable = 14
)

// CodeName is code's name as grpc-go spells it.
func CodeName(code int) string {
	if code >= 0 && code < len(codeNames) {
		return codeNames[code]
	}
	return fmt.Sprintf("Code(%d)", code)
}

func (s *Status) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", CodeName(s.Code), s.Message)
}

// IsNotFound says whether a call's error is containerd's "not found".
func IsNotFound(err error) bool {
	var s *Status
	return errors.As(err, &s) && s.Code == CodeNotFound
}

// Describe words a call's error without its "rpc error: code = ..." frame.
func Describe(err error) error {
	var s *Status
	if !errors.As(err, &s) {
		return err
	}
	if s.Code == CodeNotFound {
		return fmt.Errorf("not found (%s)", s.Message)
	}
	return fmt.Errorf("%s: %s", CodeName(s.Code), s.Message)
}
