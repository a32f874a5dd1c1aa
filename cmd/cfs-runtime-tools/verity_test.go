package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runVerity runs `cfs-runtime verity ARGS...` in-process and returns its
// output, the error and the exit code runTool would use.
//
//lint:ignore ST1008 other tests of package main already use this order
func runVerity(t *testing.T, args ...string) (string, error, int) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "cfs-runtime",
		Commands:       []*cli.Command{verityCommand},
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"cfs-runtime", "verity"}, args...))
	code := 0
	if err != nil {
		code = 1
		if ec, ok := err.(cli.ExitCoder); ok {
			code = ec.ExitCode()
		}
	}
	return out.String(), err, code
}

func verityTestFiles(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, n := range []int{0, 1, 4095, 4096, 4097, 128*4096 + 1, 1 << 20} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*31 + i)
		}
		p := filepath.Join(dir, fmt.Sprintf("file %d", i)) // a space, as fsverity prints it
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestVerityDigestMatchesFsverity: byte-identical output to fsverity-utils.
func TestVerityDigestMatchesFsverity(t *testing.T) {
	if _, err := exec.LookPath("fsverity"); err != nil {
		t.Fatalf("fsverity-utils is required: %v", err)
	}
	paths := verityTestFiles(t)
	for _, flags := range [][]string{
		nil,
		{"--hash-alg=sha512"},
		{"--hash-alg", "sha256", "--block-size", "1024", "--salt", "00ff"},
		{"--hash-alg=sha512", "--block-size=65536", "--salt=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"},
		{"--compact"},
		{"--for-builtin-sig"},
		{"--for-builtin-sig", "--hash-alg=sha512", "--compact"},
	} {
		want, err := exec.Command("fsverity", append(append([]string{"digest"}, flags...), paths...)...).Output()
		if err != nil {
			t.Fatalf("fsverity digest %v: %v", flags, err)
		}
		got, err, _ := runVerity(t, append(append([]string{"digest"}, flags...), paths...)...)
		if err != nil {
			t.Fatalf("verity digest %v: %v", flags, err)
		}
		if got != string(want) {
			t.Errorf("verity digest %v:\n%s\nfsverity digest:\n%s", flags, got, want)
		}
	}
}

func TestVerityDigestErrors(t *testing.T) {
	paths := verityTestFiles(t)
	missing := filepath.Join(t.TempDir(), "missing")
	// Like fsverity: the digests before the bad file, then the error.
	out, err, code := runVerity(t, "digest", paths[1], missing, paths[2])
	if code != 1 || err == nil || err.Error() != "verity digest: open "+missing+": no such file or directory" {
		t.Fatalf("digest with a missing file: %v (exit %d)", err, code)
	}
	if !strings.HasPrefix(out, "sha256:") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, " "+paths[1]+"\n") {
		t.Fatalf("digest with a missing file printed %q", out)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"digest"}, "verity digest: no FILE given (usage: cfs-runtime verity digest [options] FILE...)"},
		{[]string{"enable"}, "verity enable: no FILE given (usage: cfs-runtime verity enable [options] FILE...)"},
		{[]string{"measure"}, "verity measure: no FILE given (usage: cfs-runtime verity measure [options] FILE...)"},
		{[]string{"digest", "--hash-alg=md5", paths[0]}, `verity digest: unknown hash algorithm "md5" (available: sha256 sha512)`},
		{[]string{"digest", "--salt=0", paths[0]}, `verity digest: salt "0" is not a valid hex string`},
		{[]string{"digest", "--salt=" + strings.Repeat("ab", 33), paths[0]}, "verity digest: invalid fs-verity parameters: salt of 33 bytes is longer than 32"},
		{[]string{"digest", "--block-size=4000", paths[0]}, "verity digest: invalid fs-verity parameters: block size 4000 is not a power of two in 1024..65536"},
		{[]string{"enable", "--hash-alg=sha1", paths[0]}, `verity enable: unknown hash algorithm "sha1" (available: sha256 sha512)`},
		{[]string{"digest", paths[0], "--compact"}, "verity digest: option --compact after FILE arguments; put options first"},
		{[]string{"enable", paths[0], "--salt=00"}, "verity enable: option --salt=00 after FILE arguments; put options first"},
	} {
		out, err, code := runVerity(t, tc.args...)
		if err == nil || err.Error() != tc.msg || code != 2 || out != "" {
			t.Errorf("verity %q: %v (exit %d, output %q), want %q (exit 2)", tc.args, err, code, out, tc.msg)
		}
	}
}

// TestVerityEnableMeasureHost: on a kernel without fs-verity the commands
// fail with the reason.
func TestVerityEnableMeasureHost(t *testing.T) {
	if _, err := os.Stat("/proc/sys/fs/verity"); err == nil {
		t.Skip("kernel has fs-verity: covered by the VM tests")
	}
	if _, err := os.Stat("/sys/fs/ext4/features/verity"); err == nil {
		t.Skip("kernel has fs-verity: covered by the VM tests")
	}
	p := verityTestFiles(t)[1]
	out, err, code := runVerity(t, "enable", p)
	if code != 1 || err == nil || err.Error() != "enable fs-verity on "+p+": kernel built without fs-verity" || out != "" {
		t.Fatalf("enable: %v (exit %d, output %q)", err, code, out)
	}
	out, err, code = runVerity(t, "measure", p)
	if code != 1 || err == nil || err.Error() != "measure fs-verity of "+p+": kernel built without fs-verity" || out != "" {
		t.Fatalf("measure: %v (exit %d, output %q)", err, code, out)
	}
}
