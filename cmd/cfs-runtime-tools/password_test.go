package main

import (
	"bytes"
	"crypto/elliptic"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/sys/unix"
)

// Unit tests never ask the developer's terminal for a password.
func init() {
	passwordTTY = func() *os.File {
		f, _ := os.Open(os.DevNull)
		return f
	}
}

// openPTY returns the master and the terminal of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// typeWhenPrompted types a line on the terminal once echo is off, as a
// user does after the prompt.
func typeWhenPrompted(master, tty *os.File, line string) {
	for range 500 {
		if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err == nil && tio.Lflag&unix.ECHO == 0 {
			master.Write([]byte(line + "\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// On a terminal the password is asked for, read without echo, and the
// terminal is left as it was.
func TestReadPasswordTerminal(t *testing.T) {
	master, tty := openPTY(t)
	go typeWhenPrompted(master, tty, "s3cret")
	var prompt bytes.Buffer
	pw, err := readPassword(tty, &prompt, "Enter password for private key: ")
	if err != nil || string(pw) != "s3cret" || prompt.String() != "Enter password for private key: \n" {
		t.Fatalf("readPassword = %q, %v; prompt %q", pw, err, prompt.String())
	}
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("echo not restored: %v", err)
	}
}

// An encrypted key: COSIGN_PASSWORD when set; a prompt on a terminal;
// else a clear error. A wrong password is worded the same for every key
// format.
func TestSignKeyPasswords(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	keys := map[string]string{}
	for name, args := range map[string][]string{
		"pkcs8":  {"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:s3cret"},
		"legacy": {"rsa", "-aes256", "-traditional", "-passout", "pass:s3cret"},
	} {
		keys[name] = filepath.Join(f.dir, name+".key")
		sigShell(t, "openssl", append(args, "-in", f.key, "-out", keys[name])...)
	}
	// cosign generate-key-pair's format.
	priv, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	keys["cosign"] = sigWriteFile(t, filepath.Join(f.dir, "cosign.key"), string(priv))
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	for name, key := range keys {
		_, code, err := runAttestCLI(t, "sign", "--key", key, f.image)
		if want := "sign: " + key + ": private key: the key is encrypted: set COSIGN_PASSWORD (stdin is not a terminal to ask for the password on)"; code != 1 || err == nil || err.Error() != want {
			t.Errorf("%s, no password: %d %v", name, code, err)
		}
	}
	t.Setenv("COSIGN_PASSWORD", "wrong")
	for name, key := range keys {
		_, code, err := runAttestCLI(t, "sign", "--key", key, f.image)
		if want := "sign: " + key + ": private key: wrong password (from $COSIGN_PASSWORD)"; code != 1 || err == nil || err.Error() != want {
			t.Errorf("%s, wrong password: %d %v", name, code, err)
		}
	}
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	for name, key := range keys {
		if out, code, err := runAttestCLI(t, "sign", "--key", key, f.image); code != 0 || !strings.HasPrefix(out, "--annotation ") {
			t.Errorf("%s: %d %v\n%s", name, code, err, out)
		}
	}

	// Typed on a terminal: no COSIGN_PASSWORD.
	os.Unsetenv("COSIGN_PASSWORD")
	master, tty := openPTY(t)
	passwordTTY = func() *os.File { return tty }
	t.Cleanup(func() { passwordTTY = func() *os.File { f, _ := os.Open(os.DevNull); return f } })
	for _, typed := range []string{"wrong", "s3cret"} {
		go typeWhenPrompted(master, tty, typed)
		out, code, err := runAttestCLI(t, "sign", "--key", keys["pkcs8"], f.image)
		switch typed {
		case "wrong":
			if want := "sign: " + keys["pkcs8"] + ": private key: wrong password (as typed)"; code != 1 || err == nil || err.Error() != want || out != "Enter password for private key: \n" {
				t.Errorf("typed wrong: %d %v\n%q", code, err, out)
			}
		default:
			if code != 0 || !strings.HasPrefix(out, "Enter password for private key: \n--annotation ") {
				t.Errorf("typed: %d %v\n%q", code, err, out)
			}
		}
	}
}
