// Package statedir knows where a container's composefs root is mounted:
// <state_dir>/<id>/merged (package mount makes it). The runtime front
// needs that to tell whether a bundle is already in use, and links
// nothing of mount.
package statedir

import (
	"os"
	"path/filepath"
	"strings"
)

// Merged is the name of the overlay's mount point in a container's state
// directory.
const Merged = "merged"

// ContainerOf returns the id of the container whose composefs root root
// is, when root is the mount point Mount made under the state directory
// parent (parent/ID/merged) and that container's state directory exists.
func ContainerOf(parent, root string) (id string, ok bool) {
	rel, err := filepath.Rel(parent, root)
	if err != nil {
		return "", false
	}
	id, rest, found := strings.Cut(rel, string(filepath.Separator))
	if !found || rest != Merged || id == "" || id == "." || id == ".." || strings.ContainsRune(id, filepath.Separator) {
		return "", false
	}
	if fi, err := os.Stat(filepath.Join(parent, id)); err != nil || !fi.IsDir() {
		return "", false
	}
	return id, true
}
