package composefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/verity"
)

// ErrNoSource is returned by CopyObjects for a tree that was not scanned
// from a directory (a dump has no file contents).
var ErrNoSource = errors.New("tree has no source directory")

// CopyObjects puts the content of every external regular file of t into
// storeDir under its object path "XX/YYYY...", the way
// `mkcomposefs --digest-store` does: reflink (FICLONE) or copy into a
// temporary file in storeDir, chmod 0644, fsync, try to enable fs-verity,
// rename into place. Objects that already exist are left alone, so a
// killed copy never leaves a partial object under its final name. Files
// are copied by WithThreads workers (default GOMAXPROCS).
//
// It trusts the digests computed by BuildTree; the object store
// (store.go) is the place for checking existing objects.
func (t *Tree) CopyObjects(storeDir string, opts ...Option) error {
	if t.SourceDir == "" {
		return ErrNoSource
	}
	o := newOptions(opts)
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return fmt.Errorf("digest store: %w", err)
	}
	jobs := make(chan Object, 256)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		first   error
		dirs    = map[string]bool{}
		started = map[string]bool{}
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for range o.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for obj := range jobs {
				mu.Lock()
				failed := first != nil
				mu.Unlock()
				if failed {
					continue
				}
				created, err := copyObject(obj.Source, storeDir, obj.Payload)
				if err != nil {
					fail(err)
					continue
				}
				if created {
					mu.Lock()
					dirs[filepath.Dir(filepath.Join(storeDir, obj.Payload))] = true
					mu.Unlock()
				}
			}
		}()
	}
	err := t.WalkObjects(func(obj Object) error {
		// Identical files share one object; copy it once.
		if started[obj.Payload] {
			return nil
		}
		started[obj.Payload] = true
		jobs <- obj
		return nil
	})
	close(jobs)
	wg.Wait()
	if err == nil {
		err = first
	}
	if err != nil {
		return err
	}
	// Make the renames durable.
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// copyObject copies src to storeDir/payload unless it exists; it reports
// whether it created the object.
func copyObject(src, storeDir, payload string) (created bool, err error) {
	dst := filepath.Join(storeDir, payload)
	if _, err := os.Lstat(dst); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(storeDir, ".tmp")
	if err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// A reflink shares the blocks; otherwise io.Copy uses copy_file_range.
	if err := unix.IoctlFileClone(int(tmp.Fd()), int(in.Fd())); err != nil {
		if _, err := io.Copy(tmp, in); err != nil {
			return false, fmt.Errorf("digest store: copying %s: %w", src, err)
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("digest store: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	// Best effort, as mkcomposefs: not every filesystem supports fs-verity.
	// With the algorithm of the digest the object is named by.
	alg := verity.SHA256
	if len(payload) == 2*SHA512DigestSize+1 { // "XX/" and 126 digits
		alg = verity.SHA512
	}
	_ = verity.Enable(tmp.Name(), verity.WithAlgorithm(alg))
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("digest store: %w", err)
	}
	done = true
	return true, nil
}
