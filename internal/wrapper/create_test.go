//go:build !slim

package wrapper

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/internal/oci"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// createFixture is a store holding two images, A (signed) and B (not),
// whose trees say which they are in /which, a policy trusting one key and a
// bundle whose annotations carry A's signed digest.
type createFixture struct {
	dir, bundle string
	store       *store.Store
	a, b        string // digests
	env         *runtimeEnv
	key         *ecdsa.PrivateKey
	ann         map[string]string
}

func newCreateFixture(t *testing.T, level attest.Enforcement) *createFixture {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // the policy's directory chain
		t.Fatal(err)
	}
	f := &createFixture{dir: dir, bundle: filepath.Join(dir, "bundle")}
	var err error
	if f.store, err = store.Open(filepath.Join(dir, "store")); err != nil {
		t.Fatal(err)
	}
	tree := func(name string) string {
		root := filepath.Join(dir, "tree-"+name)
		sigWriteFile(t, filepath.Join(root, "which"), "image "+name+"\n")
		// An object in the store (more than 64 bytes), not only inline data.
		sigWriteFile(t, filepath.Join(root, "data", name), strings.Repeat(name, 100))
		return root
	}
	for _, x := range []struct {
		name string
		d    *string
	}{{"A", &f.a}, {"B", &f.b}} {
		if err := os.MkdirAll(filepath.Join(dir, "tree-"+x.name, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if *x.d, err = f.store.ImportTree(tree(x.name)); err != nil {
			t.Fatal(err)
		}
	}

	if f.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&f.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := sigWriteFile(t, filepath.Join(dir, "key.pub"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	policy := sigWriteFile(t, filepath.Join(dir, "policy.toml"),
		fmt.Sprintf("enforcement = %q\nunsigned = \"reject\"\n[[signer]]\nname = \"test\"\npublic_key = %q\n", level, pub))
	f.sign(t, f.a)
	if err := os.MkdirAll(filepath.Join(f.bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.env = withDefaults(&runtimeEnv{
		cfg: config.Config{StoreDir: f.store.Dir(), StateDir: filepath.Join(dir, "state"), Policy: policy},
		log: logging.Discard(),
	})
	return f
}

// sign makes the bundle's annotations a signature of digest.
func (f *createFixture) sign(t *testing.T, digest string) {
	t.Helper()
	d, err := attest.ParseDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := attest.SignCosign(d, f.key)
	if err != nil {
		t.Fatal(err)
	}
	f.ann = map[string]string{
		attest.DefaultDigestAnnotation:             digest,
		attest.DefaultDigestAnnotation + ".cosign": base64.StdEncoding.EncodeToString(sig),
	}
}

// create runs prepareCreate for `create --bundle BUNDLE id` with a fresh
// config.json.
func (f *createFixture) create(t *testing.T, id string) (func(), error) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"ociVersion": "1.0.2", "root": map[string]any{"path": "rootfs"}, "annotations": f.ann})
	if err != nil {
		t.Fatal(err)
	}
	sigWriteFile(t, filepath.Join(f.bundle, "config.json"), string(cfg))
	f.env.inv = oci.Parse([]string{"create", "--bundle", f.bundle, id})
	f.env.start = &oci.Start{ID: id, Bundle: f.bundle}
	return prepareCreate(f.env)
}

// objectOf returns the path of the image object of digest.
func (f *createFixture) objectOf(t *testing.T, digest string) string {
	t.Helper()
	p, err := f.store.ObjectPath(digest)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A store writer swaps images/<digest> between the check and the mount: a
// rename of another valid image's link or object over it, or the image
// object rewritten in place with the other image's bytes. The container's
// root must still be the image that was checked. (At userspace, the only
// level this host can run: a private copy of the bytes that were hashed is
// mounted. tests/vm proves require.)
func TestCreateMountsTheCheckedImage(t *testing.T) {
	f := newCreateFixture(t, attest.EnforceUserspace)
	objA, objB := f.objectOf(t, f.a), f.objectOf(t, f.b)
	linkA := filepath.Join(f.store.Dir(), "images", f.a)
	bytesA, err := os.ReadFile(objA)
	if err != nil {
		t.Fatal(err)
	}
	bytesB, err := os.ReadFile(objB)
	if err != nil {
		t.Fatal(err)
	}
	swaps := []struct {
		name string
		swap func() error
	}{
		{"link renamed over images/A", func() error {
			tmp := linkA + ".swap"
			target, err := os.Readlink(filepath.Join(f.store.Dir(), "images", f.b))
			if err != nil {
				return err
			}
			if err := os.Symlink(target, tmp); err != nil {
				return err
			}
			return os.Rename(tmp, linkA)
		}},
		{"object B renamed over object A", func() error {
			tmp := objA + ".swap"
			if err := os.Link(objB, tmp); err != nil {
				return err
			}
			return os.Rename(tmp, objA)
		}},
		{"object A overwritten in place", func() error {
			return os.WriteFile(objA, bytesB, 0o644)
		}},
	}
	for i, s := range swaps {
		t.Run(s.name, func(t *testing.T) {
			swapped := false
			testHookAfterCheck = func(d composefs.ImageDigest) {
				if d.Hex() != f.a {
					t.Errorf("checked %s, want %s", d.Hex(), f.a)
				}
				if err := s.swap(); err != nil {
					t.Fatal(err)
				}
				swapped = true
			}
			defer func() {
				testHookAfterCheck = nil
				// Restore image A for the next case.
				os.Remove(linkA)
				os.Symlink(filepath.Join("..", "objects", composefs.ObjectPath(mustHex(t, f.a))), linkA)
				tmp := objA + ".restore"
				os.WriteFile(tmp, bytesA, 0o644)
				os.Rename(tmp, objA)
			}()
			id := fmt.Sprintf("swap%d", i)
			undo, err := f.create(t, id)
			if err != nil {
				t.Fatal(err)
			}
			if !swapped {
				t.Fatal("the test hook did not run")
			}
			root := filepath.Join(f.env.cfg.StateDir, id, "merged")
			which, err := os.ReadFile(filepath.Join(root, "which"))
			if string(which) != "image A\n" || err != nil {
				t.Errorf("the container's root is %q (%v), want the checked image A", which, err)
			}
			if _, err := os.Stat(filepath.Join(root, "data", "B")); err == nil {
				t.Error("the container's root has image B's files")
			}
			undo()
			if _, err := os.Lstat(filepath.Join(f.env.cfg.StateDir, id)); err == nil {
				t.Error("state directory left after undo")
			}
		})
	}
}

func mustHex(t *testing.T, digest string) []byte {
	t.Helper()
	d, err := attest.ParseDigest(digest)
	if err != nil {
		t.Fatal(err)
	}
	return d.Value
}

// The bundle's root filesystem is imported as root when the signed digest
// is not in the store: root.path naming a directory that only root may
// read (0700, a 0600 secret in it), with any signed digest, must be
// refused and leave nothing of it in the store, not even for root.
func TestCreateImportOfAnotherTreeLeavesNothing(t *testing.T) {
	f := newCreateFixture(t, attest.EnforceUserspace)
	host := filepath.Join(f.dir, "host")
	if err := os.Mkdir(host, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := "root:$6$secret-hash-" + strings.Repeat("s", 80)
	if err := os.WriteFile(filepath.Join(host, "shadow"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	// A signed digest the store does not have: create imports root.path.
	signed := strings.Repeat("5", 64)
	f.sign(t, signed)
	list := func() []string {
		var out []string
		for _, d := range []string{"images", "objects", "tmp", "provenance"} {
			filepath.WalkDir(filepath.Join(f.store.Dir(), d), func(p string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					out = append(out, p)
				}
				return nil
			})
		}
		return out
	}
	before := list()
	cfg, err := json.Marshal(map[string]any{"ociVersion": "1.0.2", "root": map[string]any{"path": host}, "annotations": f.ann})
	if err != nil {
		t.Fatal(err)
	}
	sigWriteFile(t, filepath.Join(f.bundle, "config.json"), string(cfg))
	f.env.inv = oci.Parse([]string{"create", "--bundle", f.bundle, "steal"})
	f.env.start = &oci.Start{ID: "steal", Bundle: f.bundle}
	undo, cerr := prepareCreate(f.env)
	if undo != nil {
		undo()
	}
	tree, err := composefs.BuildTree(host)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Digest()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("composefs digest mismatch: bundle root filesystem %s has composefs digest %x, but the signed digest is %s, which is not in the store %s: import the signed tree (cfs-runtime import --store %s TREE) or the sealed image (cfs-runtime import oci:DIR) first", host, got, signed, f.store.Dir(), f.store.Dir())
	if !errors.Is(cerr, ErrDigestMismatch) || cerr.Error() != want {
		t.Errorf("create: %v\nwant %s", cerr, want)
	}
	after := list()
	if !slices.Equal(after, before) {
		t.Errorf("files in images/, objects/, tmp/ or provenance/:\nbefore %q\nafter  %q", before, after)
	}
	for _, p := range after {
		if data, _ := os.ReadFile(p); strings.Contains(string(data), secret) {
			t.Errorf("%s holds the secret", p)
		}
	}
}
