package delivery

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/signing"
)

// loopbackServer serves h on 127.0.0.1 and counts requests.
func loopbackServer(t *testing.T, h http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); h(w, r) }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String(), &n
}

func loopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }

func TestSendHeadersAndSignature(t *testing.T) {
	secret, _ := signing.Generate()
	var got *http.Request
	var body []byte
	url, _ := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		body, _ = io.ReadAll(r.Body)
		_, _ = w.Write([]byte("thanks"))
	})
	c := NewClient(ClientOptions{Guard: true, Allow: loopback(), UserAgent: "Hermod/test"})
	defer c.Close()
	payload := []byte(`{"id":"e1","event_type":"alert.triggered"}`)
	res := c.Send(context.Background(), Request{URL: url + "/hook", AuthHeader: "Token  abc", Secrets: []string{secret},
		DeliveryID: "d-1", EventType: "alert.triggered", Body: payload, Timeout: 5 * time.Second, Excerpt: true})
	if res.Class != Success || res.StatusCode != 200 || res.Err != nil || res.Excerpt != "thanks" {
		t.Fatalf("result %+v", res)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "Hermod/test",
		"X-Hermod-Event-Type": "alert.triggered", "X-Hermod-Delivery-Id": "d-1", "Webhook-Id": "d-1", "Authorization": "Token  abc"} {
		if got.Header.Get(h) != want {
			t.Errorf("%s = %q, want %q", h, got.Header.Get(h), want)
		}
	}
	ts, _ := strconv.ParseInt(got.Header.Get("Webhook-Timestamp"), 10, 64)
	key, _ := signing.Key(secret)
	if !signing.Verify(key, "d-1", ts, body, got.Header.Get("Webhook-Signature")) || string(body) != string(payload) {
		t.Errorf("signature or body wrong: %s", body)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	target, hits := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {})
	url, _ := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) })
	c := NewClient(ClientOptions{Guard: true, Allow: loopback()})
	defer c.Close()
	secret, _ := signing.Generate()
	res := c.Send(context.Background(), Request{URL: url, Secrets: []string{secret}, DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
	if res.StatusCode != 302 || res.Class != Retryable {
		t.Errorf("result %+v", res)
	}
	if hits.Load() != 0 {
		t.Errorf("the redirect target was contacted")
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	stop := make(chan struct{})
	url, _ := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	defer close(stop)
	c := NewClient(ClientOptions{Guard: true, Allow: loopback()})
	defer c.Close()
	secret, _ := signing.Generate()
	start := time.Now()
	res := c.Send(context.Background(), Request{URL: url, Secrets: []string{secret}, DeliveryID: "d", Body: []byte("{}"), Timeout: 200 * time.Millisecond})
	if res.Class != Retryable || res.Err == nil || !strings.Contains(res.Err.Error(), "timeout") {
		t.Errorf("result %+v", res)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("timeout took %s", time.Since(start))
	}
}

// The SSRF guard: with an empty allow-list, loopback is refused at dial time
// and the server never sees the request; allowed, it is delivered.
func TestSSRFGuard(t *testing.T) {
	url, hits := loopbackServer(t, func(w http.ResponseWriter, r *http.Request) {})
	secret, _ := signing.Generate()
	req := Request{URL: url, Secrets: []string{secret}, DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second}
	guarded := NewClient(ClientOptions{Guard: true})
	defer guarded.Close()
	for _, u := range []string{url, strings.Replace(url, "127.0.0.1", "localhost", 1)} {
		req.URL = u
		res := guarded.Send(context.Background(), req)
		if res.Class != Terminal || res.Err == nil || !strings.Contains(res.Err.Error(), "SSRF") {
			t.Errorf("%s: result %+v", u, res)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("guarded client reached loopback %d times", hits.Load())
	}
	req.URL = url
	allowed := NewClient(ClientOptions{Guard: true, Allow: loopback()})
	defer allowed.Close()
	if res := allowed.Send(context.Background(), req); res.Class != Success || hits.Load() != 1 {
		t.Errorf("allowed client: %+v (hits %d)", res, hits.Load())
	}
	agent := NewClient(ClientOptions{Guard: false})
	defer agent.Close()
	if res := agent.Send(context.Background(), req); res.Class != Success {
		t.Errorf("unguarded client: %+v", res)
	}
}
