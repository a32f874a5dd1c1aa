// Package atomicfile writes files so that readers see either the old or the
// new content, never a mix, even across a crash (in the style of
// containerd's pkg/atomicfile).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Option configures WriteFile.
type Option func(*options)

type options struct{ noDirSync bool }

// NoDirSync leaves out the fsync of the directory after the rename, as
// containerd's atomicfile does. Readers still see the old or the new
// content, never a mix, also after a crash; only which of the two survives
// a crash is left open. For files that do not outlive a reboot in any
// meaningful way (an OCI bundle's config.json, state under /run), where the
// directory fsync would only add a journal commit to every container start.
func NoDirSync() Option { return func(o *options) { o.noDirSync = true } }

// WriteFile writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory (see NoDirSync). The
// file gets perm unless it already exists, in which case its mode is kept.
func WriteFile(path string, data []byte, perm os.FileMode, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("atomic write %s: fsync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	ok = true
	if o.noDirSync {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir makes a rename or create in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
