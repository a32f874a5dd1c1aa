package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// cosignBinary is the real cosign (Debian trixie's package): the one
// $CFS_TEST_COSIGN names, else the one tests/tools/fetch-cosign.sh fetches
// into its cache (CI runs the script first and sets the variable). It is
// required: without it the cosign compatibility claims would be untested.
func cosignBinary(t testing.TB) string {
	t.Helper()
	cosignOnce.Do(func() {
		cosignPath = os.Getenv("CFS_TEST_COSIGN")
		if cosignPath != "" {
			return
		}
		out, err := exec.Command("../tests/tools/fetch-cosign.sh").Output()
		if err != nil {
			cosignErr = fmt.Errorf("CFS_TEST_COSIGN is not set and tests/tools/fetch-cosign.sh failed: %v", err)
			return
		}
		cosignPath = strings.TrimSpace(string(out))
	})
	if cosignErr != nil {
		t.Fatal(cosignErr)
	}
	if _, err := exec.LookPath(cosignPath); err != nil {
		t.Fatalf("cosign %s: %v", cosignPath, err)
	}
	return cosignPath
}

var (
	cosignOnce sync.Once
	cosignPath string
	cosignErr  error
)

// cosignKeyPair runs `cosign generate-key-pair` in dir with a password.
func cosignKeyPair(t testing.TB, cosign, dir, password string) (key, pub string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cosign, "generate-key-pair")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
}

// cosignSignBlob signs the formatted digest of d with the real cosign.
func cosignSignBlob(t testing.TB, cosign, key, password string, d Digest) string {
	t.Helper()
	dir := t.TempDir()
	blob := write(t, filepath.Join(dir, "message"), string(d.Message()))
	sig := filepath.Join(dir, "sig")
	run(t, []string{"COSIGN_PASSWORD=" + password}, cosign, "sign-blob", "--key", key, "--tlog-upload=false", "--yes", "--output-signature", sig, blob)
	return strings.TrimSpace(readFile(t, sig))
}

func cosignAnnotations(d Digest, sig string) map[string]string {
	return map[string]string{d.AnnotationKey(): d.Hex(), d.AnnotationKey() + CosignSuffix: sig}
}

// Signatures made by the real `cosign sign-blob --key` over the formatted
// digest verify with the cosign .pub; the refusals are clear.
func TestCosignSignBlob(t *testing.T) {
	cosign := cosignBinary(t)
	dir := t.TempDir()
	key, pub := cosignKeyPair(t, cosign, filepath.Join(dir, "ci"), "s3cret")
	_, otherPub := cosignKeyPair(t, cosign, filepath.Join(dir, "other"), "")
	p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n", pub))

	d, _ := ParseDigest(hex64)
	sig := cosignSignBlob(t, cosign, key, "s3cret", d)
	v := mustVerify(t, cosignAnnotations(d, sig), p)
	if v.Kind != CosignSignature || v.Signer != "ci" || !strings.HasPrefix(v.Detail, "ECDSA P-256 public key ") {
		t.Fatalf("verdict %+v", v)
	}

	// sha512 digests sign the same way.
	d512, _ := ParseDigest("fsverity-sha512-16:" + hex128)
	mustVerify(t, cosignAnnotations(d512, cosignSignBlob(t, cosign, key, "s3cret", d512)), p)

	prefix := "composefs digest sha256:" + hex64 + ": "
	t.Run("wrong key", func(t *testing.T) {
		wp := policyFrom(t, t.TempDir(), fmt.Sprintf("[[signer]]\nname = \"other\"\npublic_key = %q\n", otherPub))
		_, err := Verify(cosignAnnotations(d, sig), wp)
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: cosign signature does not verify with any trusted public key (signers tried: "other"): made by another key, or over another digest`)
	})
	t.Run("signature over another digest", func(t *testing.T) {
		other, _ := ParseDigest(strings.Repeat("ab", 32))
		_, err := Verify(cosignAnnotations(d, cosignSignBlob(t, cosign, key, "s3cret", other)), p)
		wantErr(t, err, ErrUntrusted, prefix+`signature not trusted: cosign signature does not verify with any trusted public key (signers tried: "ci")`)
	})
	t.Run("corrupted base64", func(t *testing.T) {
		_, err := Verify(cosignAnnotations(d, "%"+sig[1:]), p)
		wantErr(t, err, ErrMalformed, prefix+"malformed annotation composefs.merged.erofs.v1.fsverity-sha256-12.cosign: corrupted base64 at byte 0")
	})
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("corrupted signature", func(t *testing.T) {
		// Still shaped like an ECDSA signature (its last byte flipped):
		// it does not verify.
		bad := append([]byte{}, raw...)
		bad[len(bad)-1] ^= 0x55
		_, err := Verify(cosignAnnotations(d, b64(bad)), p)
		wantErr(t, err, ErrUntrusted, "cosign signature does not verify")
	})
	t.Run("truncated signature", func(t *testing.T) {
		_, err := Verify(cosignAnnotations(d, b64(raw[:len(raw)/2])), p)
		wantErr(t, err, ErrMalformed, "are neither an ECDSA (ASN.1) nor an Ed25519 or RSA signature: truncated or corrupted")
	})
	t.Run("no public_key signer", func(t *testing.T) {
		_, cert := keyPair(t, t.TempDir(), "x", "ec")
		cp := policyFrom(t, t.TempDir(), certPolicy("x", cert))
		_, err := Verify(cosignAnnotations(d, sig), cp)
		wantErr(t, err, ErrUntrusted, ".cosign: the policy has no signer for a cosign signature (a [[signer]] with public_key)")
	})
}

// Our own signer (cfs-runtime sign with a cosign key) decrypts the cosign
// key with the password and makes signatures the real cosign verifies.
func TestSignCosignVerifiedByCosign(t *testing.T) {
	cosign := cosignBinary(t)
	dir := t.TempDir()
	key, pub := cosignKeyPair(t, cosign, dir, "pw")
	data := []byte(readFile(t, key))
	if !strings.Contains(string(data), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Fatalf("cosign key is not encrypted:\n%s", data)
	}
	if _, err := LoadPrivateKey(data, nil); err == nil || !strings.Contains(err.Error(), "private key is encrypted (ENCRYPTED SIGSTORE PRIVATE KEY) and no password was given") {
		t.Fatalf("no password: %v", err)
	}
	if _, err := LoadPrivateKey(data, func() ([]byte, error) { return []byte("wrong"), nil }); err == nil || !strings.Contains(err.Error(), "private key: wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	k, err := LoadPrivateKey(data, func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}
	d, _ := ParseDigest(hex64)
	sig, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := write(t, filepath.Join(dir, "sig"), b64(sig))
	blob := write(t, filepath.Join(dir, "message"), string(d.Message()))
	out := run(t, nil, cosign, "verify-blob", "--key", pub, "--signature", sigFile, "--insecure-ignore-tlog", blob)
	if !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob: %s", out)
	}
	p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"ci\"\npublic_key = %q\n", pub))
	mustVerify(t, cosignAnnotations(d, b64(sig)), p)
}

// Key-pair signatures with every allowed key type, signed by us and
// verified through the policy (Ed25519 and RSA keys made by openssl).
func TestSignCosignKeyTypes(t *testing.T) {
	for _, alg := range []string{"ec", "ec384", "ed25519", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "k.key")
			genKey(t, key, alg)
			pub := pubKey(t, key)
			k, err := LoadPrivateKey([]byte(readFile(t, key)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := ParseDigest(hex64)
			sig, err := SignCosign(d, k)
			if err != nil {
				t.Fatal(err)
			}
			p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"k\"\npublic_key = %q\n", pub))
			mustVerify(t, cosignAnnotations(d, b64(sig)), p)
			other, _ := ParseDigest(strings.Repeat("01", 32))
			_, err = Verify(cosignAnnotations(other, b64(sig)), p)
			wantErr(t, err, ErrUntrusted, "cosign signature does not verify")
		})
	}
}

// cosign signs with SHA-256 whatever the ECDSA curve: a P-384 cosign key's
// signatures verify, and ours verify with `cosign verify-blob`. Signatures
// over SHA-384 (sigstore's registry default for P-384) verify as well.
func TestCosignP384(t *testing.T) {
	cosign := cosignBinary(t)
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc([]byte("pw")))
	if err != nil {
		t.Fatal(err)
	}
	key := write(t, filepath.Join(dir, "cosign.key"), string(cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der)))
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub := write(t, filepath.Join(dir, "cosign.pub"), string(pubPEM))
	p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"p384\"\npublic_key = %q\n", pub))
	d, _ := ParseDigest(hex64)

	v := mustVerify(t, cosignAnnotations(d, cosignSignBlob(t, cosign, key, "pw", d)), p)
	if !strings.HasPrefix(v.Detail, "ECDSA P-384 public key ") {
		t.Fatalf("verdict %+v", v)
	}

	k, err := LoadPrivateKey([]byte(readFile(t, key)), func() ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}
	sig, err := SignCosign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := write(t, filepath.Join(dir, "sig"), b64(sig))
	blob := write(t, filepath.Join(dir, "message"), string(d.Message()))
	if out := run(t, nil, cosign, "verify-blob", "--key", pub, "--signature", sigFile, "--insecure-ignore-tlog", blob); !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob: %s", out)
	}

	s384, err := signature.LoadDefaultSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	sig384, err := s384.SignMessage(bytes.NewReader(d.Message()))
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, cosignAnnotations(d, b64(sig384)), p)
}

// Our standard-library verification agrees with sigstore/sigstore's
// verifiers (the library cosign uses) on every key type: signatures made by
// sigstore's signers verify with ours and the reverse, in ASN.1 and IEEE
// P1363 form for ECDSA; a flipped bit is refused by both.
func TestCosignMatchesSigstoreVerifiers(t *testing.T) {
	d, _ := ParseDigest(hex64)
	msg := d.Message()
	for _, alg := range []string{"ec", "ec384", "ed25519", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "k.key")
			genKey(t, keyFile, alg)
			k, err := LoadPrivateKey([]byte(readFile(t, keyFile)), nil)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := parsePublicKey([]byte(readFile(t, pubKey(t, keyFile))))
			if err != nil {
				t.Fatal(err)
			}
			// cosign's loading: SHA-256 for ECDSA and RSA (PKCS#1 v1.5),
			// pure Ed25519.
			cosignSV, err := signature.LoadSignerVerifier(k, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := cosignSV.SignMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if !verifyKeySignature(pub, theirs, msg) {
				t.Fatal("sigstore's signature does not verify with ours")
			}
			ours, err := SignCosign(d, k)
			if err != nil {
				t.Fatal(err)
			}
			if err := cosignSV.VerifySignature(bytes.NewReader(ours), bytes.NewReader(msg)); err != nil {
				t.Fatalf("our signature does not verify with sigstore's verifier: %v", err)
			}
			tampered := append([]byte(nil), ours...)
			tampered[len(tampered)/2] ^= 1
			if verifyKeySignature(pub, tampered, msg) || cosignSV.VerifySignature(bytes.NewReader(tampered), bytes.NewReader(msg)) == nil {
				t.Fatal("tampered signature verifies")
			}
			if verifyKeySignature(pub, ours, append(msg[:len(msg):len(msg)], 0)) {
				t.Fatal("signature verifies over another message")
			}
			if ec, ok := pub.(*ecdsa.PublicKey); ok {
				var rs struct{ R, S *big.Int }
				if _, err := asn1.Unmarshal(ours, &rs); err != nil {
					t.Fatal(err)
				}
				n := (ec.Curve.Params().BitSize + 7) / 8
				p1363 := append(rs.R.FillBytes(make([]byte, n)), rs.S.FillBytes(make([]byte, n))...)
				if !verifyKeySignature(pub, p1363, msg) || cosignSV.VerifySignature(bytes.NewReader(p1363), bytes.NewReader(msg)) != nil {
					t.Fatal("IEEE P1363 signature refused")
				}
			}
		})
	}
}

// A cosign signature cut short (or otherwise not the shape any key makes)
// is refused as malformed, before any signer is tried: not as a signature
// by another key. Whole signatures of every key type pass the shape check.
func TestCosignTruncatedIsMalformed(t *testing.T) {
	testutil.RequiresRoot(t) // the policy must be root's
	d, _ := ParseDigest(hex64)
	for _, alg := range []string{"ec", "ec384", "ed25519", "rsa"} {
		dir := t.TempDir()
		key := filepath.Join(dir, "k.key")
		genKey(t, key, alg)
		p := policyFrom(t, dir, fmt.Sprintf("[[signer]]\nname = \"k\"\npublic_key = %q\n", pubKey(t, key)))
		signer, err := LoadPrivateKey([]byte(readFile(t, key)), nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := SignCosign(d, signer)
		if err != nil {
			t.Fatal(err)
		}
		mustVerify(t, cosignAnnotations(d, b64(sig)), p)
		// Cut to half: cut by a few bytes, an ECDSA signature can land
		// on the 64 bytes of an Ed25519 one, which then reads as a
		// signature by another key.
		cut := sig[:len(sig)/2]
		_, err = Verify(cosignAnnotations(d, b64(cut)), p)
		wantErr(t, err, ErrMalformed, fmt.Sprintf("malformed annotation %s.cosign: %d bytes are neither an ECDSA (ASN.1) nor an Ed25519 or RSA signature: truncated or corrupted", d.AnnotationKey(), len(cut)))
	}
}
