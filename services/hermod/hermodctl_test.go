package allinone_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
)

// ctlProc is a long-running hermodctl (listen) as a separate process.
type ctlProc struct {
	cmd            *exec.Cmd
	stdout, stderr *hermodtest.LogBuffer
	done           chan struct{}
}

// startCtl runs bin (a built hermodctl, or bash running one) with args and
// env; the test's cleanup stops it.
func startCtl(t *testing.T, dir string, env []string, bin string, args ...string) *ctlProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &ctlProc{cmd: cmd, stdout: &hermodtest.LogBuffer{}, stderr: &hermodtest.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- hermodctl %v ---\nstdout:\n%s\nstderr:\n%s", args, tail(p.stdout.String(), 3000), tail(p.stderr.String(), 2000))
		}
	})
	return p
}

// stop sends SIGINT (as Ctrl-C does) and waits; it returns the exit code.
func (p *ctlProc) stop(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Errorf("hermodctl did not stop on SIGINT within 20 s")
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitReady waits for listen's Ready line and returns its URL.
func (p *ctlProc) waitReady(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`Ready: listening on (http://\S+),`)
	var url string
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		select {
		case <-p.done:
			t.Fatalf("hermodctl listen exited %d:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr.String())
		default:
		}
		m := re.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return fmt.Errorf("listen not ready: %q", p.stderr.String())
		}
		url = m[1]
		return nil
	})
	return url
}

// ctl runs the built hermodctl to its end and returns its output and exit code.
func ctl(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath(t, "hermodctl"), args...)
	cmd.Env = env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("hermodctl %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// mustCtl is ctl that fails the test unless hermodctl exits 0.
func mustCtl(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errs, code := ctl(t, env, args...)
	if code != 0 {
		t.Fatalf("hermodctl %v exited %d:\n%s%s", args, code, out, errs)
	}
	return out
}

// The operator's command line against the running all-in-one, every
// program a separate process: a webhook created with hermodctl, hermodctl
// listen receiving its deliveries, an event sent with hermodctl; listen
// shows the delivery verified, with its type and body, and shows a tampered
// and an unsigned request NOT verified; -o json parses.
func TestE2EHermodctl(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "HERMODCTL_SERVER=" + p.Base, "HERMODCTL_API_KEY=" + testAdminKey}
	addr := freeAddr(t)

	var w struct {
		ID         string   `json:"id"`
		EventTypes []string `json:"event_types"`
	}
	out := mustCtl(t, env, "webhooks", "create", "--name", "cli", "--url", "http://"+addr+"/hook", "--events", "stack.*", "-o", "json")
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.ID == "" || len(w.EventTypes) != 1 {
		t.Fatalf("webhooks create -o json: %v %q", err, out)
	}
	listen := startCtl(t, "", env, binPath(t, "hermodctl"), "listen", "--webhook", w.ID, "--addr", addr)
	url := listen.waitReady(t)
	if url != "http://"+addr {
		t.Errorf("listening on %s, want http://%s", url, addr)
	}

	out = mustCtl(t, env, "events", "send", "stack.created", "--data", `{"stack_id":"s-42","note":"<hello>"}`, "--label", "env=test")
	m := regexp.MustCompile(`(?m)^id:\s+(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("events send printed no id:\n%s", out)
	}
	eventID := m[1]
	line := regexp.MustCompile(`(?m)^\S+  stack\.created  delivery=(\S+) webhook=` + regexp.QuoteMeta(w.ID) + ` event=` +
		regexp.QuoteMeta(eventID) + `  verified  -> 200$`)
	var deliveryID string
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		s := listen.stdout.String()
		m := line.FindStringSubmatch(s)
		if m == nil || !strings.Contains(s, `"stack_id": "s-42"`) || !strings.Contains(s, `"env": "test"`) {
			return fmt.Errorf("listen has not shown the verified delivery:\n%s", s)
		}
		deliveryID = m[1]
		return nil
	})
	// The API agrees: one successful delivery, the one listen printed.
	var dl struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		out := mustCtl(t, env, "deliveries", "list", w.ID, "-o", "json")
		if err := json.Unmarshal([]byte(out), &dl); err != nil {
			return fmt.Errorf("deliveries list -o json: %w: %q", err, out)
		}
		if len(dl.Data) != 1 || dl.Data[0].ID != deliveryID || dl.Data[0].Status != "success" {
			return fmt.Errorf("deliveries: %+v, want %s success", dl.Data, deliveryID)
		}
		return nil
	})
	out = mustCtl(t, env, "deliveries", "get", deliveryID)
	if !regexp.MustCompile(`(?m)^status:\s+success$`).MatchString(out) || !strings.Contains(out, `"stack_id": "s-42"`) {
		t.Errorf("deliveries get:\n%s", out)
	}

	// A body changed after it was signed with the webhook's secret, and a
	// POST with no signature at all: both answered, both NOT verified.
	var sec struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, env, "webhooks", "secret", "get", w.ID, "-o", "json")), &sec); err != nil {
		t.Fatal(err)
	}
	key, err := signing.Key(sec.Secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	signedBody := `{"event_type":"stack.created","data":{"stack_id":"s-1"}}`
	sig := signing.NewSigner(key).Sign("forged-1", ts, []byte(signedBody))
	for _, c := range []struct {
		hdr  map[string]string
		body string
	}{
		{map[string]string{"webhook-id": "forged-1", "webhook-timestamp": fmt.Sprint(ts), "webhook-signature": sig},
			strings.Replace(signedBody, "s-1", "evil", 1)},
		{map[string]string{}, signedBody},
	} {
		req, _ := http.NewRequest(http.MethodPost, url+"/hook", strings.NewReader(c.body))
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("listen answered %d", resp.StatusCode)
		}
	}
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s := listen.stdout.String()
		if !strings.Contains(s, "delivery=forged-1 webhook="+w.ID+"  NOT verified (bad signature)  -> 200") ||
			!strings.Contains(s, "delivery=- webhook="+w.ID+"  NOT verified (missing headers: webhook-id, webhook-timestamp, webhook-signature)  -> 200") {
			return fmt.Errorf("listen has not shown both forgeries NOT verified:\n%s", s)
		}
		return nil
	})

	// -o json parses; tables show the same webhook.
	var page struct {
		Data []map[string]any `json:"data"`
	}
	for _, args := range [][]string{{"webhooks", "list", "-o", "json"}, {"event-types", "-o", "json"}, {"agents", "list", "-o", "json"}} {
		if err := json.Unmarshal([]byte(mustCtl(t, env, args...)), &page); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
	var one map[string]any
	if err := json.Unmarshal([]byte(mustCtl(t, env, "webhooks", "get", w.ID, "-o", "json")), &one); err != nil || one["total_delivered"] != float64(1) {
		t.Errorf("webhooks get -o json: %v %v", err, one)
	}
	if out := mustCtl(t, env, "webhooks", "list"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(w.ID) + `\s+cli\s+active\s+standard\s+stack\.\*\s+1\s+0\s+100%\s+http://`).MatchString(out) {
		t.Errorf("webhooks list:\n%s", out)
	}
	// The API's error envelope, exit 1; a usage error, exit 2.
	if _, errs, code := ctl(t, env, "webhooks", "get", "00000000-0000-4000-8000-000000000000"); code != 1 || !strings.Contains(errs, "webhook not found (not_found, HTTP 404)") {
		t.Errorf("unknown webhook: exit %d %q", code, errs)
	}
	if _, errs, code := ctl(t, env, "events", "send"); code != 2 {
		t.Errorf("events send without a type: exit %d %q", code, errs)
	}
	if code := listen.stop(t); code != 0 || !strings.Contains(listen.stderr.String(), "Stopped.") {
		t.Errorf("listen exited %d on SIGINT:\n%s", code, listen.stderr.String())
	}
}

// A bulk replay driven from the command line against the real API: three
// deliveries die at a receiver (hermodctl listen answering 500, no
// retries); listen is started again answering 200; `hermodctl replays
// start` follows the replay to its end, and each delivery arrives again,
// verified, with the same delivery id (webhook-id) and is then a success.
func TestE2EHermodctlReplay(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "HERMODCTL_SERVER=" + p.Base, "HERMODCTL_API_KEY=" + testAdminKey}
	addr := freeAddr(t)
	var w struct {
		ID string `json:"id"`
	}
	out := mustCtl(t, env, "webhooks", "create", "--name", "replayed", "--url", "http://"+addr+"/hook",
		"--events", "stack.*", "--max-retries", "0", "-o", "json")
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.ID == "" {
		t.Fatalf("webhooks create -o json: %v %q", err, out)
	}
	failing := startCtl(t, "", env, binPath(t, "hermodctl"), "listen", "--webhook", w.ID, "--addr", addr, "--status", "500", "--quiet")
	failing.waitReady(t)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for i := range 3 {
		mustCtl(t, env, "events", "send", "stack.created", "--data", fmt.Sprintf(`{"stack_id":"s-%d"}`, i))
	}
	type delivery struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	var dead []delivery
	hermodtest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		var page struct {
			Data []delivery `json:"data"`
		}
		out := mustCtl(t, env, "deliveries", "list", w.ID, "--status", "dead", "-o", "json")
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			return fmt.Errorf("deliveries list -o json: %w: %q", err, out)
		}
		if len(page.Data) != 3 {
			return fmt.Errorf("%d dead deliveries, want 3", len(page.Data))
		}
		dead = page.Data
		return nil
	})
	if code := failing.stop(t); code != 0 {
		t.Fatalf("listen exited %d", code)
	}

	listen := startCtl(t, "", env, binPath(t, "hermodctl"), "listen", "--webhook", w.ID, "--addr", addr, "--quiet")
	listen.waitReady(t)
	until := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	out, errs, code := ctl(t, env, "replays", "start", w.ID, "--status", "dead", "--since", since, "--until", until, "--interval", "100ms")
	if code != 0 || !regexp.MustCompile(`(?m)^state:\s+done$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^matched:\s+3$`).MatchString(out) || !regexp.MustCompile(`(?m)^requeued:\s+3$`).MatchString(out) ||
		!regexp.MustCompile(`: done, matched 3, requeued 3, skipped 0`).MatchString(errs) {
		t.Fatalf("replays start exited %d:\n%s%s", code, out, errs)
	}
	replayID := regexp.MustCompile(`(?m)^id:\s+(\S+)$`).FindStringSubmatch(out)
	if replayID == nil {
		t.Fatalf("replays start printed no id:\n%s", out)
	}
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		s := listen.stdout.String()
		for _, d := range dead {
			if n := strings.Count(s, "delivery="+d.ID+" webhook="+w.ID); n != 1 {
				return fmt.Errorf("listen shows delivery %s %d times, want once:\n%s", d.ID, n, s)
			}
		}
		if n := strings.Count(s, "  verified  -> 200"); n != 3 {
			return fmt.Errorf("%d verified deliveries shown, want 3:\n%s", n, s)
		}
		return nil
	})
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, d := range dead {
			out := mustCtl(t, env, "deliveries", "get", d.ID)
			if !regexp.MustCompile(`(?m)^status:\s+success$`).MatchString(out) {
				return fmt.Errorf("delivery %s is not a success yet:\n%s", d.ID, out)
			}
		}
		return nil
	})
	var list struct {
		Data []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Requeued int    `json:"requeued"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, env, "replays", "list", "--webhook", w.ID, "-o", "json")), &list); err != nil ||
		len(list.Data) != 1 || list.Data[0].ID != replayID[1] || list.Data[0].State != "done" || list.Data[0].Requeued != 3 {
		t.Errorf("replays list -o json: %v %+v", err, list)
	}
	// A finished replay cannot be cancelled: the API's 409, exit 1.
	if _, errs, code := ctl(t, env, "replays", "cancel", replayID[1]); code != 1 || !strings.Contains(errs, "HTTP 409") {
		t.Errorf("replays cancel of a finished replay: exit %d %q", code, errs)
	}
}
