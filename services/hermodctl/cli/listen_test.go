package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
)

const listenSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// startListen runs `hermodctl listen args` on a free port until the test
// ends; it returns the receiver's URL, the run's output so far, and a stop
// that waits for its result.
func startListen(t *testing.T, f *fakeAPI, args ...string) (string, *syncBuffer, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, Env{Args: append([]string{"--server", f.srv.URL, "--api-key", "k", "listen", "--addr", "127.0.0.1:0"}, args...),
			Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	}()
	stopped := false
	stop := func() int {
		if stopped {
			return -1
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	ready := regexp.MustCompile(`Ready: listening on (http://\S+),`)
	var url string
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("listen exited %d: %s", code, errb.String())
		default:
		}
		m := ready.FindStringSubmatch(errb.String())
		if m == nil {
			return fmt.Errorf("not ready: %q", errb.String())
		}
		url = m[1]
		return nil
	})
	return url, &out, &errb, stop
}

func post(t *testing.T, url, body string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func signedHeaders(t *testing.T, id, body string) map[string]string {
	k, err := signing.Key(listenSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	return map[string]string{"webhook-id": id, "webhook-timestamp": strconv.FormatInt(ts, 10),
		"webhook-signature": signing.NewSigner(k).Sign(id, ts, []byte(body)), "X-Hermod-Event-Type": "stack.created"}
}

func TestListenCreate(t *testing.T) {
	f := newFakeAPI(t)
	var created map[string]any
	f.handle("POST /api/v1/webhooks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&created)
		writeJSON(w, 201, webhookWith("w-new", "listen"))
	})
	f.answer("GET /api/v1/webhooks/w-new/secret", 200, `{"secret":"`+listenSecret+`","previous_secret_expires_at":null}`)
	f.answer("DELETE /api/v1/webhooks/w-new", 204, "")
	url, out, errb, stop := startListen(t, f, "--create", "--events", "stack.*", "--delete-on-exit")
	if created["url"] != url+"/" || fmt.Sprint(created["event_types"]) != "[stack.*]" || !strings.HasPrefix(fmt.Sprint(created["name"]), "hermodctl listen 127.0.0.1:") {
		t.Errorf("created %v (listening on %s)", created, url)
	}
	if !strings.Contains(errb.String(), "Created webhook w-new") {
		t.Errorf("stderr: %q", errb.String())
	}
	body := `{"id":"ev-1","event_type":"stack.created","data":{"stack_id":"s-1"}}`
	if code := post(t, url+"/hook", body, signedHeaders(t, "d-1", body)); code != 200 {
		t.Errorf("signed POST answered %d", code)
	}
	if code := post(t, url+"/hook", body, nil); code != 200 {
		t.Errorf("unsigned POST answered %d", code)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after the context ended: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if !regexp.MustCompile(`^\S+  stack\.created  delivery=d-1 webhook=w-new event=ev-1  verified  -> 200$`).MatchString(lines[0]) ||
		!strings.Contains(out.String(), `"stack_id": "s-1"`) ||
		!strings.Contains(out.String(), "NOT verified (missing headers: webhook-id, webhook-timestamp, webhook-signature)") {
		t.Errorf("output:\n%s", out.String())
	}
	if f.last().Method != "DELETE" || !strings.Contains(errb.String(), "Deleted webhook w-new") || !strings.Contains(errb.String(), "Stopped.") {
		t.Errorf("not deleted on exit: %+v %q", f.last(), errb.String())
	}
}

func TestListenSecretModes(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /api/v1/webhooks/w1/secret", 200, `{"secret":"`+listenSecret+`","previous_secret_expires_at":null}`)
	// --webhook fetches the secret; --json prints one object per delivery; --status answers another status.
	url, out, _, stop := startListen(t, f, "--webhook", "w1", "--json", "--status", "503")
	body := `{"id":"ev-2","event_type":"stack.created","data":{}}`
	if code := post(t, url, body, signedHeaders(t, "d-2", body)); code != 503 {
		t.Errorf("answered %d, want 503", code)
	}
	tampered := strings.Replace(body, "{}", `{"x":1}`, 1)
	post(t, url, tampered, signedHeaders(t, "d-3", body))
	stop()
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, m)
	}
	if len(got) != 2 || got[0]["verified"] != true || got[0]["webhook_id"] != "w1" || got[0]["status"] != float64(503) ||
		got[1]["verified"] != false || got[1]["reason"] != "bad signature" {
		t.Errorf("json lines: %v", got)
	}
	// --secret, --quiet.
	url, out, errb, stop := startListen(t, f, "--secret", listenSecret, "-q")
	post(t, url, body, signedHeaders(t, "d-4", body))
	stop()
	if strings.Count(out.String(), "\n") != 1 || !strings.Contains(out.String(), "delivery=d-4 event=ev-2  verified") ||
		!strings.Contains(errb.String(), "signatures checked with --secret") {
		t.Errorf("quiet: %q %q", out.String(), errb.String())
	}
	// No secret: it says so, and every delivery shows NOT verified.
	url, out, errb, stop = startListen(t, f)
	post(t, url, body, signedHeaders(t, "d-5", body))
	stop()
	if !strings.Contains(errb.String(), "no secret") || !strings.Contains(out.String(), "NOT verified (no secret") {
		t.Errorf("no secret: %q %q", out.String(), errb.String())
	}
	// A webhook that does not exist fails before listening; a malformed secret is a usage error.
	r := f.run(t, "", nil, "listen", "--addr", "127.0.0.1:0", "--webhook", "nope")
	if r.code != ExitError || !strings.Contains(r.stderr, "the secret of webhook nope: route not found") {
		t.Errorf("unknown webhook: %d %q", r.code, r.stderr)
	}
	if r := f.run(t, "", nil, "listen", "--addr", "127.0.0.1:0", "--secret", "whsec_!!"); r.code != ExitUsage {
		t.Errorf("bad secret: %d %q", r.code, r.stderr)
	}
}
