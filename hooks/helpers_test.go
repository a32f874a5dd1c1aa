//go:build linux

package hooks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// fixture is a bundle whose config.json carries a signed digest, a trust
// policy for its key, and the paths a composefs mount would use. Nothing is
// mounted: the mount table, devices and measurements are fakes.
type fixture struct {
	dir    string
	bundle string // bundle directory; config.json's root.path is "rootfs"
	root   string // bundle/rootfs
	lower  string // where the EROFS "is mounted"
	image  string // the image file
	digest attest.Digest
	key    *ecdsa.PrivateKey
	ann    map[string]string // digest + cosign signature
	policy *attest.Policy    // trusts the key; unsigned = reject
	allow  *attest.Policy    // same key; unsigned = "allow"
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		dir:    dir,
		bundle: filepath.Join(dir, "bundle"),
		root:   filepath.Join(dir, "bundle", "rootfs"),
		lower:  filepath.Join(dir, "lower"),
		image:  filepath.Join(dir, "image.cfs"),
	}
	for _, d := range []string{f.root, f.lower, filepath.Join(dir, "objects")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.image, []byte("an EROFS image"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "key.pub")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	f.policy = loadTestPolicy(t, dir, "reject", pub)
	f.allow = loadTestPolicy(t, dir, "allow", pub)
	f.key = key
	v := make([]byte, 32)
	if _, err := rand.Read(v); err != nil {
		t.Fatal(err)
	}
	f.sign(t, v)
	return f
}

// sign makes v (SHA-256) the signed digest of the bundle's config.json.
func (f *fixture) sign(t *testing.T, v []byte) {
	t.Helper()
	f.digest = attest.Digest{Algorithm: verity.SHA256, BlockSize: verity.DefaultBlockSize, Value: v}
	var err error
	if f.ann, err = attest.Sign(f.digest, f.key, nil); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, f.ann)
}

func loadTestPolicy(t *testing.T, dir, unsigned, pub string) *attest.Policy {
	t.Helper()
	path := filepath.Join(dir, unsigned+".toml")
	text := fmt.Sprintf("enforcement = \"require\"\nunsigned = %q\n[[signer]]\nname = \"test\"\npublic_key = %q\n", unsigned, pub)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := attest.LoadPolicy(path, attest.WithFileCheck(attest.RequireOwner(os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeConfig writes the bundle's config.json with these annotations.
func (f *fixture) writeConfig(t *testing.T, ann map[string]string) {
	t.Helper()
	cfg := map[string]any{"ociVersion": "1.0.2", "root": map[string]any{"path": "rootfs"}}
	if len(ann) > 0 {
		cfg["annotations"] = ann
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// state is the OCI state runc passes to a createRuntime hook.
func (f *fixture) state() *strings.Reader {
	return strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,"bundle":%q}`, f.bundle))
}

// fakeKernel answers the checker's questions from a mount table text, a
// device per path, a fake sysfs and canned loop and measure answers.
type fakeKernel struct {
	mountinfo string
	devs      map[string]uint64 // stat's st_dev per path
	sysfs     map[string]string // files of the fake /sys, relative to it
	loop      *unix.LoopInfo64
	measured  []byte // what measure returns (SHA-256)
	measureFn func(*os.File) (verity.Algorithm, []byte, error)
}

func (k *fakeKernel) checker(t *testing.T) *checker {
	sysfs := t.TempDir()
	for name, content := range k.sysfs {
		p := filepath.Join(sysfs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &checker{
		mounts: func() ([]*mountinfo.Info, error) {
			return mountinfo.GetMountsFromReader(strings.NewReader(k.mountinfo), nil)
		},
		stat: func(path string) (uint64, error) {
			if d, ok := k.devs[path]; ok {
				return d, nil
			}
			return statDev(path)
		},
		sysfs: sysfs,
		loopStatus: func(node string, major, minor int) (*unix.LoopInfo64, error) {
			if k.loop == nil {
				return nil, fmt.Errorf("%s: no fake loop status", node)
			}
			return k.loop, nil
		},
		measure: func(f *os.File) (verity.Algorithm, []byte, error) {
			if k.measureFn != nil {
				return k.measureFn(f)
			}
			return verity.SHA256, k.measured, nil
		},
	}
}

// line is one mountinfo line (ID and parent made up).
func line(id int, dev uint64, root, mountpoint, fstype, source, superOpts string) string {
	return fmt.Sprintf("%d 1 %d:%d %s %s ro,relatime - %s %s %s\n", id, unix.Major(dev), unix.Minor(dev), root, escapeMountinfo(mountpoint), fstype, escapeMountinfo(source), superOpts)
}

// escapeMountinfo escapes a path as the kernel does in mountinfo.
func escapeMountinfo(s string) string {
	return strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`).Replace(s)
}

var (
	devOverlay = unix.Mkdev(0, 40)
	devEROFS   = unix.Mkdev(0, 39) // file-backed: anonymous device
	devLoop    = unix.Mkdev(7, 3)
	devExt4    = unix.Mkdev(254, 1)
)

// composefsTable is the mount table of a composefs root: a file-backed
// EROFS at f.lower and the overlay on f.root with the given options.
func (f *fixture) composefsTable(overlayOpts string) string {
	return line(30, devExt4, "/", "/", "ext4", "/dev/vda1", "rw") +
		line(42, devEROFS, "/", f.lower, "erofs", f.image, "ro,user_xattr,acl,cache_strategy=readaround") +
		line(45, devOverlay, "/", f.root, "overlay", "composefs", overlayOpts)
}

func (f *fixture) verityOpts() string {
	return "ro,lowerdir+=" + f.lower + ",datadir+=" + filepath.Join(f.dir, "objects") + ",redirect_dir=on,metacopy=on,verity=require"
}

// kernel is a fake kernel where f.root and f.lower are the mounts of
// composefsTable and the image measures as the signed digest.
func (f *fixture) kernel(overlayOpts string) *fakeKernel {
	return &fakeKernel{
		mountinfo: f.composefsTable(overlayOpts),
		devs:      map[string]uint64{f.root: devOverlay, f.lower: devEROFS},
		measured:  f.digest.Value,
	}
}
