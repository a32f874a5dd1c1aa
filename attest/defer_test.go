package attest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With DeferParsing, a signer's files are checked, read and parsed only
// when a signature is checked against that signer: an unsigned container
// that the policy allows does not need them, and a signed one is refused
// with exactly the error an eager load gives.
func TestDeferParsing(t *testing.T) {
	dir := t.TempDir()
	key, cert := keyPair(t, dir, "release", "rsa")
	notPEM := write(t, filepath.Join(dir, "garbage.pem"), "hello\n")
	image := imageFile(t, dir, "image", 5000)
	d, sig := fsveritySign(t, image, key, cert)
	signed := pkcs7Annotations(d, sig)
	check := WithFileCheck(RequireOwner(os.Getuid()))

	// A broken certificates file: eager load refuses the policy...
	path := write(t, filepath.Join(dir, "broken.toml"), "unsigned = \"allow\"\n"+certPolicy("broken", notPEM)+certPolicy("release", cert))
	_, eagerErr := LoadPolicy(path, check)
	if eagerErr == nil || !strings.Contains(eagerErr.Error(), path+":4: key signer[0].certificates: "+notPEM+": no PEM data") {
		t.Fatalf("eager load: %v", eagerErr)
	}
	// ...a deferred load does not look inside it...
	p, err := LoadPolicy(path, check, DeferParsing())
	if err != nil {
		t.Fatalf("deferred load: %v", err)
	}
	if v := mustVerify(t, map[string]string{}, p); !v.Unsigned {
		t.Fatalf("unsigned container: %v", v)
	}
	// ...and a signature to check against it fails with the eager error.
	if _, err := Verify(signed, p); err == nil || err.Error() != eagerErr.Error() {
		t.Fatalf("signed container: %v, want %v", err, eagerErr)
	}
	var b strings.Builder
	p.Describe(&b)
	if !strings.Contains(b.String(), "# unusable: "+eagerErr.Error()) {
		t.Fatalf("Describe:\n%s", b.String())
	}

	// A missing file and one that is not the owner's: the same.
	for _, material := range []string{"/nonexistent/release.crt", cert} {
		check := check
		if material == cert { // as if someone else could write it
			check = WithFileCheck(func(p string) error {
				if p == cert {
					return fmt.Errorf("%w: %s is writable by group or others", ErrInsecurePolicy, p)
				}
				return RequireOwner(os.Getuid())(p)
			})
		}
		path := write(t, filepath.Join(dir, "missing.toml"), "unsigned = \"allow\"\n"+certPolicy("release", material))
		_, eagerErr := LoadPolicy(path, check)
		p, err := LoadPolicy(path, check, DeferParsing())
		if eagerErr == nil || err != nil {
			t.Fatalf("%s: eager %v, deferred %v", material, eagerErr, err)
		}
		if v := mustVerify(t, map[string]string{}, p); !v.Unsigned {
			t.Fatalf("%s: unsigned container: %v", material, v)
		}
		if _, err := Verify(signed, p); err == nil || err.Error() != eagerErr.Error() {
			t.Fatalf("%s: signed container: %v, want %v", material, err, eagerErr)
		}
	}

	// Good material, deferred: the signature verifies as with an eager load.
	good := write(t, filepath.Join(dir, "good.toml"), certPolicy("release", cert))
	p, err = LoadPolicy(good, check, DeferParsing())
	if err != nil {
		t.Fatal(err)
	}
	if v := mustVerify(t, signed, p); v.Signer != "release" || v.Unsigned {
		t.Fatalf("verdict %v", v)
	}
	// Certificates and a CA: both parsed, in order.
	caKey, caCert := makeCA(t, dir, "ca")
	_, leaf := issue(t, dir, "leaf", caKey, caCert)
	both := write(t, filepath.Join(dir, "both.toml"), fmt.Sprintf("[[signer]]\nname = \"corp\"\ncertificates = %q\nca = %q\n", leaf, leaf))
	_, eagerErr = LoadPolicy(both, check)
	p, err = LoadPolicy(both, check, DeferParsing())
	if eagerErr == nil || err != nil {
		t.Fatalf("eager %v, deferred %v", eagerErr, err)
	}
	if err := p.Signers[0].material(); err == nil || err.Error() != eagerErr.Error() {
		t.Fatalf("material: %v, want %v", err, eagerErr)
	}
}
