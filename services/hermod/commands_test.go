package allinone_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// runBin runs a built binary with args and exactly env; it returns its
// exit code and output.
func runBin(t *testing.T, name string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath(t, name), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("%s %v: %v", name, args, err)
	return 0, "", ""
}

// Every binary answers --version and --help instead of starting, refuses
// an unknown command, and `healthcheck` (for images without a shell) exits
// 0 only while the running binary it is configured like is ready.
func TestE2EBinaryCommands(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"hermod", "hermod-api", "hermod-router", "hermod-deliverer", "hermod-agent"} {
		code, out, _ := runBin(t, bin, nil, "--version")
		if code != 0 || !strings.HasPrefix(out, bin+" ") {
			t.Errorf("%s --version: %d %q", bin, code, out)
		}
		code, out, _ = runBin(t, bin, nil, "--help")
		if code != 0 || !strings.Contains(out, bin+" healthcheck") || !strings.Contains(out, "HERMOD_") {
			t.Errorf("%s --help: %d %q", bin, code, out)
		}
		code, _, errOut := runBin(t, bin, nil, "start-please")
		if code != 2 || !strings.Contains(errOut, `unknown command "start-please"`) {
			t.Errorf("%s start-please: %d %q", bin, code, errOut)
		}
	}
	code, out, _ := runBin(t, "hermod-api", nil, "callout-key")
	if code != 0 || !strings.Contains(out, "HERMOD_AUTH_CALLOUT_SEED=S") || !strings.Contains(out, "NATS_CALLOUT_ISSUER=A") {
		t.Errorf("hermod-api callout-key: %d %q", code, out)
	}

	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": ns.ClientURL(), "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey}
	d, addr := startReady(t, "hermod-deliverer", env)
	withAddr := merge(env, map[string]string{"HERMOD_OPS_ADDR": addr})
	if code, _, errOut := runBin(t, "hermod-deliverer", withAddr, "healthcheck"); code != 0 {
		t.Errorf("healthcheck of a ready deliverer: %d %s", code, errOut)
	}
	// Listening on every address: the healthcheck asks the loopback one.
	port := addr[strings.LastIndexByte(addr, ':'):]
	if code, _, errOut := runBin(t, "hermod-deliverer", merge(env, map[string]string{"HERMOD_OPS_ADDR": port}), "healthcheck"); code != 0 {
		t.Errorf("healthcheck with HERMOD_OPS_ADDR=%s: %d %s", port, code, errOut)
	}
	if code, _, errOut := runBin(t, "hermod-deliverer", nil, "healthcheck"); code != 1 || !strings.Contains(errOut, "HERMOD_NATS_URL") {
		t.Errorf("healthcheck without configuration: %d %s", code, errOut)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if code, _, errOut := runBin(t, "hermod-deliverer", withAddr, "healthcheck"); code != 1 || !strings.Contains(errOut, "healthcheck") {
		t.Errorf("healthcheck of a stopped deliverer: %d %s", code, errOut)
	}
}
