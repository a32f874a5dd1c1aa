package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/hooks"
	"github.com/cfs-runtime/cfs-runtime/internal/fserr"
	"github.com/urfave/cli/v2"
)

// runHook runs `cfs-runtime ARGS...` with stdin as the hook's stdin.
func runHook(t *testing.T, stdin string, args ...string) (int, error) {
	t.Helper()
	app := newApp()
	app.Reader = strings.NewReader(stdin)
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"cfs-runtime"}, args...))
	if out.Len() > 0 {
		t.Errorf("hook printed %q: a hook's output is only shown when it fails, runTool prints the error", out.String())
	}
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ec):
		return ec.ExitCode(), err
	}
	return 1, err
}

// The hook command: the policy from the configuration, the state on stdin,
// the verdict in the log.
func TestHookCommand(t *testing.T) {
	requireOwnPolicy(t)
	f := newSignFixture(t)
	ann, _, err := runAttestCLI(t, "sign", "--key", f.key, "--cert", f.cert, "--format", "json", f.image)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(f.dir, "bundle")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(f.dir, "cfs-runtime.log")
	auditFile := filepath.Join(f.dir, "audit.jsonl")
	cfg := sigWriteFile(t, filepath.Join(f.dir, "config.toml"), fmt.Sprintf("policy = %q\nlog_file = %q\naudit_file = %q\n", f.policy, logFile, auditFile))
	t.Setenv("CFS_RUNTIME_CONFIG", cfg)
	state := fmt.Sprintf(`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":1,"bundle":%q}`, bundle)
	config := func(annotations string) {
		sigWriteFile(t, filepath.Join(bundle, "config.json"), `{"root": {"path": "rootfs"}, "annotations": `+annotations+`}`)
	}

	// signed, on a plain directory: refused, and logged
	config(ann)
	code, err := runHook(t, state, "hook", "createRuntime")
	want := "container c1: root filesystem is not a verifiable composefs mount: " + bundle + "/rootfs is not a mount point (hook mode needs a composefs overlay mounted there with verity=require)"
	if code != 1 || !errors.Is(err, hooks.ErrNotComposefs) || err.Error() != want {
		t.Errorf("plain rootfs: exit %d\n got %v\nwant %s", code, err, want)
	}
	// no root filesystem at all: named, in words podman does not misread
	// (runc puts the hook's stderr into its error)
	os.Remove(filepath.Join(bundle, "rootfs"))
	code, err = runHook(t, state, "hook", "createRuntime")
	want = "container c1: root filesystem is not a verifiable composefs mount: root filesystem " + bundle + "/rootfs does not exist"
	if code != 1 || !errors.Is(err, fs.ErrNotExist) || err.Error() != want || fserr.Misreads(err.Error()) != "" {
		t.Errorf("no rootfs: exit %d\n got %v\nwant %s", code, err, want)
	}
	os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755)

	// unsigned, allowed by the policy's [[allow_unsigned]] rule
	config(`{"io.kubernetes.cri.container-type": "sandbox"}`)
	if code, err := runHook(t, state, "hook", "createRuntime"); code != 0 {
		t.Errorf("unsigned sandbox: exit %d: %v", code, err)
	}
	// unsigned without a rule
	config(`{}`)
	code, err = runHook(t, state, "hook", "createRuntime")
	if code != 1 || !strings.HasPrefix(err.Error(), "container c1: no composefs digest: ") {
		t.Errorf("unsigned: exit %d: %v", code, err)
	}
	// Each decision of hook mode is in the audit trail, once.
	audit, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, l := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
		var ev struct {
			Decision    string `json:"decision"`
			ContainerID string `json:"container_id"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.ContainerID != "c1" {
			t.Fatalf("audit line %q: %v", l, err)
		}
		decisions = append(decisions, ev.Decision)
	}
	if got := strings.Join(decisions, " "); got != "deny deny unsigned-allowed deny" {
		t.Errorf("audit decisions %q", got)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := regexp.MustCompile(` pid=[0-9]+`).ReplaceAllString(string(data), "")
	for _, w := range []string{
		`level=ERROR msg="hook createRuntime: refused" err="container c1: root filesystem is not a verifiable composefs mount: `,
		`level=WARN msg="hook createRuntime: starting unverified container" id=c1 bundle=` + bundle + ` verdict="no composefs digest: allowed unsigned by rule \"sandbox\""`,
		`level=ERROR msg="hook createRuntime: refused" err="container c1: no composefs digest: `,
	} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %s\nlog:\n%s", w, log)
		}
	}

	// no state on stdin (run by hand)
	code, err = runHook(t, "", "hook", "createRuntime")
	if code != 1 || !errors.Is(err, hooks.ErrState) {
		t.Errorf("empty stdin: exit %d: %v", code, err)
	}
	// the same missing-policy refusal as create
	sigWriteFile(t, cfg, fmt.Sprintf("policy = %q\naudit_file = %q\n", filepath.Join(f.dir, "none.toml"), auditFile))
	code, err = runHook(t, state, "hook", "createRuntime")
	if code != 1 || !strings.HasPrefix(err.Error(), "no trust policy: "+filepath.Join(f.dir, "none.toml")+" does not exist; every container is refused") {
		t.Errorf("no policy: exit %d: %v", code, err)
	}
}

func TestHookCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"hook"}, {"hook", "prestart"}, {"hook", "createRuntime", "x"}} {
		code, err := runHook(t, "{}", args...)
		if code != 2 || err == nil || !strings.HasPrefix(err.Error(), "hook: want the stage createRuntime, got ") {
			t.Errorf("%v: exit %d: %v", args, code, err)
		}
	}
}
