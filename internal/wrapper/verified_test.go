package wrapper

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/attest"
	"github.com/cfs-runtime/cfs-runtime/composefs"
	"github.com/cfs-runtime/cfs-runtime/composefs/store"
	"github.com/cfs-runtime/cfs-runtime/hooks"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle"
	"github.com/cfs-runtime/cfs-runtime/internal/bundle/bundlejson"
	"github.com/cfs-runtime/cfs-runtime/internal/config"
	"github.com/cfs-runtime/cfs-runtime/internal/logging"
	"github.com/cfs-runtime/cfs-runtime/mount"
	"github.com/cfs-runtime/cfs-runtime/verity"
)

// The verify-then-mount decision (startVerified) over fakes: every
// enforcement level × kernel capability × store state, and a failure after
// the mount. No root, no kernel features, no real store.

const (
	signed = "aa00000000000000000000000000000000000000000000000000000000000000"
	other  = "bb00000000000000000000000000000000000000000000000000000000000000"
)

// digestOf is the composefs digest of hex h (fsverity-sha256-12).
func digestOf(h string) composefs.ImageDigest {
	d, err := composefs.ParseDigestValue(verity.SHA256, verity.DefaultBlockSize, h)
	if err != nil {
		panic(err)
	}
	return d
}

// kernel is what the host can do.
type kernel int

const (
	fullVerity      kernel = iota // fs-verity on the store, overlayfs verity=
	noVerity                      // no fs-verity at all (this test host's kernel)
	noOverlayVerity               // fs-verity, but overlayfs without verity= (Linux < 6.6)
)

func (k kernel) String() string {
	return [...]string{"full fs-verity", "no fs-verity", "no overlayfs verity="}[k]
}

// storeState is what the store holds when create starts.
type storeState int

const (
	present     storeState = iota // images/<signed>
	importable                    // absent; the bundle's rootfs builds the signed digest
	mismatching                   // absent; the bundle's rootfs builds another digest
	unavailable                   // absent; the bundle has no root filesystem
)

func (s storeState) String() string {
	return [...]string{"image present", "importable", "rootfs of another digest", "no rootfs"}[s]
}

// fakeStore records what startVerified asked of it.
type fakeStore struct {
	dir     string
	kernel  kernel
	state   storeState
	images  map[string]bool
	imports int
	checks  []store.CheckMode
	locked  bool
}

func (s *fakeStore) Dir() string                           { return s.dir }
func (s *fakeStore) ObjectsDir() string                    { return filepath.Join(s.dir, "objects") }
func (s *fakeStore) Hold() (func(), error)                 { return func() {}, nil }
func (s *fakeStore) HasImage(d composefs.ImageDigest) bool { return s.images[d.Hex()] }
func (s *fakeStore) LockImport(composefs.ImageDigest) (func(), error) {
	s.locked = true
	return func() { s.locked = false }, nil
}

func (s *fakeStore) ProbeVerity() error {
	if s.kernel == noVerity {
		return errors.New("kernel built without fs-verity")
	}
	return nil
}

func (s *fakeStore) ImportTreeExpecting(tree string, want composefs.ImageDigest) (composefs.ImageDigest, error) {
	if !s.locked {
		return composefs.ImageDigest{}, errors.New("import without the import lock")
	}
	s.imports++
	if s.state == mismatching {
		return digestOf(other), fmt.Errorf("%w: %s", store.ErrUnexpectedDigest, other)
	}
	s.images[want.Hex()] = true
	return want, nil
}

func (s *fakeStore) OpenImage(d composefs.ImageDigest) (*os.File, error) {
	if !s.images[d.Hex()] {
		return nil, fmt.Errorf("image %s: not in the store", d.Hex())
	}
	return os.Open(filepath.Join(s.dir, "image"))
}

func (s *fakeStore) CheckImageFile(f *os.File, d composefs.ImageDigest, mode store.CheckMode) ([]byte, error) {
	s.checks = append(s.checks, mode)
	if mode == store.CheckMeasure && s.kernel == noVerity {
		return nil, errors.New("object has no fs-verity")
	}
	return []byte("image bytes"), nil
}

// fakeMount records the mounts and refuses verity= without it.
type fakeMount struct {
	kernel    kernel
	mounts    []mount.Options
	unmounted int
}

func (m *fakeMount) mount(o mount.Options) (mounted, error) {
	if o.Verity == mount.VerityRequire && m.kernel == noOverlayVerity {
		return nil, fmt.Errorf("mount composefs: %w", mount.ErrOverlayNoVerity)
	}
	m.mounts = append(m.mounts, o)
	return fakeMounted{m}, nil
}

type fakeMounted struct{ m *fakeMount }

func (f fakeMounted) Root() string   { return "/state/c1/merged" }
func (f fakeMounted) Unmount() error { f.m.unmounted++; return nil }

// want is what a case must end in: an error (wrapping errIs, or any error
// when errIs is nil and fails is set), or a mount of that verity mode from
// the open file (pinned) or from the hashed bytes.
type want struct {
	fails     bool
	errIs     error
	verity    mount.VerityMode
	fromBytes bool
	imports   int
}

// expect states the rules, one per line, in the order startVerified
// applies them.
func expect(level attest.Enforcement, k kernel, s storeState) want {
	imports := 0
	if s == importable || s == mismatching {
		imports = 1
	}
	kernelLevel := level != attest.EnforceUserspace
	switch {
	// The kernel levels first ask whether the host can enforce at all,
	// before importing anything.
	case kernelLevel && k == noVerity && s != present:
		return want{fails: true, errIs: ErrEnforcement}
	case s == unavailable:
		return want{fails: true, errIs: ErrNoImage}
	case s == mismatching:
		return want{fails: true, errIs: ErrDigestMismatch, imports: 1}
	// userspace: hashed, mounted from the bytes that were hashed.
	case !kernelLevel:
		return want{verity: mount.VerityOff, fromBytes: true, imports: imports}
	// An image in the store that the kernel cannot measure: the host
	// cannot enforce the level, and the refusal says what to change.
	case k == noVerity:
		return want{fails: true, errIs: ErrEnforcement, imports: imports}
	// require needs overlayfs verity=.
	case level == attest.EnforceRequire && k == noOverlayVerity:
		return want{fails: true, errIs: ErrEnforcement, imports: imports}
	// measure without verity=: every object measured, mounted without.
	case level == attest.EnforceMeasure && k == noOverlayVerity:
		return want{verity: mount.VerityOff, imports: imports}
	}
	return want{verity: mount.VerityRequire, imports: imports}
}

func newVerifiedFixture(t *testing.T, k kernel, s storeState, measured string, patchErr error) (*runtimeEnv, *fakeStore, *fakeMount, *bundle.Bundle) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "image"), []byte("image bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := "rootfs"
	if s != unavailable {
		if err := os.Mkdir(filepath.Join(dir, root), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"root": {"path": "rootfs"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Load(dir, "config.json", bundlejson.JSON)
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{dir: dir, kernel: k, state: s, images: map[string]bool{signed: s == present}}
	m := &fakeMount{kernel: k}
	env := &runtimeEnv{
		cfg:       config.Config{StateDir: filepath.Join(dir, "state")},
		log:       logging.Discard(),
		openStore: func() (imageStore, error) { return st, nil },
		mount:     m.mount,
		measure: func(*os.File) ([]byte, error) {
			if k == noVerity {
				return nil, &verity.UnsupportedError{FSType: "ext4", Reason: verity.ErrKernelNoVerity}
			}
			return []byte(measured), nil
		},
		patch: func(*bundle.Bundle, string, string) error { return patchErr },
	}
	return env, st, m, b
}

// hexBytes is the raw digest the kernel would measure for hex digest h.
func hexBytes(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartVerified(t *testing.T) {
	levels := []attest.Enforcement{attest.EnforceUserspace, attest.EnforceMeasure, attest.EnforceRequire}
	for _, level := range levels {
		for _, k := range []kernel{fullVerity, noVerity, noOverlayVerity} {
			for _, s := range []storeState{present, importable, mismatching, unavailable} {
				t.Run(fmt.Sprintf("%s/%s/%s", level, k, s), func(t *testing.T) {
					env, st, m, b := newVerifiedFixture(t, k, s, hexBytes(t, signed), nil)
					w := expect(level, k, s)
					undo, err := startVerified(env, st, b, level, digestOf(signed), "c1")
					if st.imports != w.imports {
						t.Errorf("imports: %d, want %d", st.imports, w.imports)
					}
					if w.fails {
						if err == nil {
							t.Fatalf("started (%d mounts), want a refusal", len(m.mounts))
						}
						if w.errIs != nil && !errors.Is(err, w.errIs) {
							t.Fatalf("error %v, want %v", err, w.errIs)
						}
						if len(m.mounts) != 0 || undo != nil {
							t.Fatalf("refused, yet %d mounts remain", len(m.mounts)-m.unmounted)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if len(m.mounts) != 1 {
						t.Fatalf("%d mounts, want 1", len(m.mounts))
					}
					o := m.mounts[0]
					if o.Verity != w.verity {
						t.Errorf("verity %v, want %v", o.Verity, w.verity)
					}
					// What is mounted is what was checked: the hashed bytes at
					// userspace, the measured open file otherwise.
					if got := o.Image.Name(); got != filepath.Join(st.dir, "image") {
						t.Errorf("mounted %q", got)
					}
					if o.Image.Copied() != w.fromBytes {
						t.Errorf("mounted from a copy of the hashed bytes: %v, want %v", o.Image.Copied(), w.fromBytes)
					}
					if o.StateDir != filepath.Join(env.cfg.StateDir, "c1") || o.Digest != signed {
						t.Errorf("state %s digest %s", o.StateDir, o.Digest)
					}
					wantChecks := map[attest.Enforcement][]store.CheckMode{attest.EnforceUserspace: {store.CheckHash}}[level]
					if level == attest.EnforceMeasure && k == noOverlayVerity {
						wantChecks = []store.CheckMode{store.CheckMeasure}
					}
					if fmt.Sprint(st.checks) != fmt.Sprint(wantChecks) {
						t.Errorf("checks %v, want %v", st.checks, wantChecks)
					}
					if undo == nil {
						t.Fatal("no undo for the hand-off")
					}
					undo()
					if m.unmounted != 1 {
						t.Errorf("undo unmounted %d times", m.unmounted)
					}
				})
			}
		}
	}
}

// An image in the store whose measurement is not the signed digest (a
// store writer replaced it) is refused, naming both.
func TestStartVerifiedMeasuresTheSignedDigest(t *testing.T) {
	for _, level := range []attest.Enforcement{attest.EnforceMeasure, attest.EnforceRequire} {
		env, st, m, b := newVerifiedFixture(t, fullVerity, present, hexBytes(t, other), nil)
		_, err := startVerified(env, st, b, level, digestOf(signed), "c1")
		if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), signed) {
			t.Fatalf("%s: %v, want a digest mismatch naming both digests", level, err)
		}
		if len(m.mounts) != 0 {
			t.Fatalf("%s: mounted after a mismatch", level)
		}
	}
}

// A failure after the mount (the bundle cannot be patched) unmounts again
// and reports the failure.
func TestStartVerifiedUndoesTheMount(t *testing.T) {
	patchErr := errors.New("writing config.json: no space left")
	for _, level := range []attest.Enforcement{attest.EnforceUserspace, attest.EnforceRequire} {
		env, st, m, b := newVerifiedFixture(t, fullVerity, present, hexBytes(t, signed), patchErr)
		undo, err := startVerified(env, st, b, level, digestOf(signed), "c1")
		if !errors.Is(err, patchErr) || undo != nil {
			t.Fatalf("%s: %v, want the patch error and no undo", level, err)
		}
		if len(m.mounts) != 1 || m.unmounted != 1 {
			t.Fatalf("%s: %d mounts, %d unmounted; want the one mount undone", level, len(m.mounts), m.unmounted)
		}
	}
}

// Hook mode and create refuse a digest mismatch with one error.
func TestOneDigestMismatch(t *testing.T) {
	if !errors.Is(fmt.Errorf("x: %w", hooks.ErrDigestMismatch), ErrDigestMismatch) {
		t.Fatal("hook mode's digest mismatch is not create's")
	}
}
