// Package engineimage says which image a container engine runs a container
// from (FromAnnotations). It links nothing but fmt and errors, so that the
// front (internal/handoff) can use it too. Reading the image's manifest
// from the engine's store is the cfs-runtime-engine helper's job
// (protocol in Request and Manifest); combining the image's seal with the
// container's annotations is internal/wrapper's (sealedAnnotations).
package engineimage

import (
	"errors"
	"fmt"
)

// Engines, and the annotations by which they name a container's image.
const (
	// Containerd is containerd's CRI plugin. It sets the image name (as
	// the kubelet asked for it) on containers, never on sandboxes; it
	// passes no image id or digest (1.6, 1.7): the helper reads the id
	// from containerd's own record of the container.
	Containerd = "containerd"
	// CRIO is CRI-O: ImageName as asked for, ImageRef the image's id in
	// containers-storage.
	CRIO = "cri-o"
	// Podman names no image, but its container's record in
	// containers-storage does: create asks the helper to import a sealed
	// image's bytes from there (the seal itself comes in the container's
	// annotations, copied from the manifest).
	Podman = "podman"
	// ContainerManager is the annotation in which podman and CRI-O say
	// they made the container, with these values.
	ContainerManager = "io.container.manager"
	PodmanManager    = "libpod"
	CRIOManager      = "cri-o"

	ContainerdImageName     = "io.kubernetes.cri.image-name"
	ContainerdContainerType = "io.kubernetes.cri.container-type"
	CRIOImageName           = "io.kubernetes.cri-o.ImageName"
	CRIOImageRef            = "io.kubernetes.cri-o.ImageRef"
	CRIOContainerType       = "io.kubernetes.cri-o.ContainerType"
)

// ErrConflict: the container's annotations name another composefs digest
// than the seal of the image the engine runs it from.
var ErrConflict = errors.New("composefs annotation conflicts with the image's seal")

// Image is the image an engine names for a container.
type Image struct {
	Engine string `json:"engine"`
	// Name is the image as the user asked for it (a tag or a digest
	// reference); Ref, when the engine passes it, the image's id.
	Name string `json:"name,omitempty"`
	Ref  string `json:"ref,omitempty"`
}

func (i Image) String() string {
	if i.Ref != "" && i.Ref != i.Name {
		return fmt.Sprintf("%s image %s (%s)", i.Engine, i.Name, i.Ref)
	}
	return fmt.Sprintf("%s image %s", i.Engine, i.Name)
}

// FromAnnotations returns the image the engine names in a container's
// annotations, if any. podman (4.3) names none: it copies the image
// manifest's annotations into the container's instead. A pod's sandbox
// (pause) container is never taken to name an image: the policy lets it
// through by rule. Both engines set these keys themselves, after the
// annotations they pass through from the pod (whose lists in contrib/
// hold only the composefs keys).
//
// Each engine is known by the marks it sets on every container itself,
// after the annotations it passes through from the pod: containerd's
// container type "container", CRI-O's io.container.manager "cri-o". A
// bundle that only carries an image-name annotation (made by hand, or by
// another tool) names no image here.
func FromAnnotations(a map[string]string) (Image, bool) {
	if n := a[ContainerdImageName]; n != "" && a[ContainerdContainerType] == "container" {
		return Image{Engine: Containerd, Name: n}, true
	}
	if a[ContainerManager] != CRIOManager || a[CRIOContainerType] == "sandbox" {
		return Image{}, false
	}
	if n, r := a[CRIOImageName], a[CRIOImageRef]; n != "" || r != "" {
		return Image{Engine: CRIO, Name: n, Ref: r}, true
	}
	return Image{}, false
}

// HelperName is the helper executable that reads an image's manifest from
// the engine's store (cmd/cfs-runtime-engine); HelperEnv names another.
const (
	HelperName = "cfs-runtime-engine"
	HelperEnv  = "CFS_RUNTIME_ENGINE"
)

// Helper operations.
const (
	// OpManifest (the default) reads the image's manifest.
	OpManifest = "manifest"
	// OpImport imports the image's layers from the engine's store into
	// cfs-runtime's store (Store), committing the image only if it has
	// the digest Expect. The caller holds the store's import lock of
	// that digest.
	OpImport = "import"
)

// Request is what the runtime path asks the helper (JSON on its stdin).
type Request struct {
	Op    string `json:"op,omitempty"`
	Image Image  `json:"image"`
	// ContainerID is the container being created (containerd: its
	// record names the image id the CRI resolved).
	ContainerID string `json:"container_id"`
	// ContainerdAddress and ContainerdNamespace reach containerd's API.
	ContainerdAddress   string `json:"containerd_address,omitempty"`
	ContainerdNamespace string `json:"containerd_namespace,omitempty"`
	// StorageRoot is containers-storage's graph root (CRI-O, podman).
	StorageRoot string `json:"storage_root,omitempty"`
	// Store and Expect (hex) are OpImport's: cfs-runtime's store and the
	// sealed digest.
	Store  string `json:"store,omitempty"`
	Expect string `json:"expect,omitempty"`
}

// Manifest is the helper's answer: the image's manifest, checked against
// its digest, and what of it create needs.
type Manifest struct {
	// Digest is the manifest's digest, Config its config's (the image id).
	Digest string `json:"digest"`
	Config string `json:"config"`
	// Target (containerd) is the digest of the image record's target
	// the manifest was read from: the manifest's, or an index's.
	Target string `json:"target,omitempty"`
	// Annotations are the manifest's top-level annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Log is what OpImport did, one line per layer.
	Log []string `json:"log,omitempty"`
}
