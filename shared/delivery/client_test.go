package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
)

// seen is one request as the server received it.
type seen struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// sink is an HTTP server on a loopback address that counts and records the
// requests it gets. Every handler has returned when the test ends.
type sink struct {
	URL  string
	hits atomic.Int64
	mu   sync.Mutex
	reqs []seen
}

func (s *sink) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatalf("the server got no request")
	}
	return s.reqs[len(s.reqs)-1]
}

// startSink listens on addr ("127.0.0.1:0" or "[::1]:0") and serves h.
func startSink(t *testing.T, addr string, h http.HandlerFunc) *sink {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, l, h)
}

func serve(t *testing.T, l net.Listener, h http.HandlerFunc) *sink {
	t.Helper()
	s := &sink{URL: "http://" + l.Addr().String()}
	var handlers sync.WaitGroup
	stop := make(chan struct{})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		s.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		s.mu.Unlock()
		if h != nil {
			// Handlers that wait may also be released by the cleanup.
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			go func() {
				select {
				case <-stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			h(w, r.WithContext(ctx))
		}
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		close(stop)
		_ = srv.Close()
		done := make(chan struct{})
		go func() { handlers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("server handlers still running 5s after close")
		}
	})
	return s
}

func allow(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

func newClient(t *testing.T, o delivery.ClientOptions) *delivery.Client {
	t.Helper()
	c := delivery.NewClient(o)
	t.Cleanup(c.Close) // drops keep-alive connections so goleak passes
	return c
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := signing.Key(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSendRequestShape checks everything a receiver sees, for one secret and
// for two (a rotation overlap), with and without an auth header.
func TestSendRequestShape(t *testing.T) {
	current, previous := mustSecret(t), mustSecret(t)
	body := []byte(`{"id":"9c5e","event_type":"deployment.applied","timestamp":"2026-11-24T12:00:00Z","data":{"agent_id":"a-1"}}`)
	for _, c := range []struct {
		name      string
		secrets   []string
		auth      string
		userAgent string
		wantUA    string
	}{
		{"one secret, auth header", []string{current}, "Bearer abc.def", "Hermod/1.2.3", "Hermod/1.2.3"},
		// (leading and trailing blanks are optional whitespace in HTTP and are
		// stripped by any receiver, so only inner spacing is checked)
		{"auth header passed verbatim", []string{current}, "Token   x=1,\ty=\"2\" ünï", "Hermod/1.2.3", "Hermod/1.2.3"},
		{"rotation: two secrets", []string{current, previous}, "Basic dXNlcjpwYXNz", "Hermod/1.2.3", "Hermod/1.2.3"},
		{"no auth header, default user agent", []string{current}, "", "", "Hermod/dev"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
			cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8"), UserAgent: c.userAgent})
			before := time.Now().Unix()
			res := cl.Send(context.Background(), delivery.Request{URL: srv.URL + "/hooks/in?src=hermod", AuthHeader: c.auth,
				Secrets: c.secrets, DeliveryID: "0f0e0d0c-1111-4222-8333-444455556666", EventType: "deployment.applied",
				Body: body, Timeout: 5 * time.Second})
			if res.Class != delivery.Success || res.StatusCode != 204 || res.Err != nil {
				t.Fatalf("result %+v", res)
			}
			if res.Duration <= 0 {
				t.Errorf("duration %s", res.Duration)
			}
			got := srv.last(t)
			if got.method != http.MethodPost || got.path != "/hooks/in" || got.rawQuery != "src=hermod" {
				t.Errorf("request %s %s?%s", got.method, got.path, got.rawQuery)
			}
			if string(got.body) != string(body) {
				t.Errorf("body %q, want %q", got.body, body)
			}
			for h, want := range map[string]string{
				"Content-Type":         "application/json",
				"User-Agent":           c.wantUA,
				"X-Hermod-Event-Type":  "deployment.applied",
				"X-Hermod-Delivery-Id": "0f0e0d0c-1111-4222-8333-444455556666",
				"Webhook-Id":           "0f0e0d0c-1111-4222-8333-444455556666",
				"Content-Length":       strconv.Itoa(len(body)),
			} {
				if v := got.header.Values(h); len(v) != 1 || v[0] != want {
					t.Errorf("%s = %q, want %q", h, v, want)
				}
			}
			if c.auth == "" {
				if v, ok := got.header["Authorization"]; ok {
					t.Errorf("Authorization sent without an auth header: %q", v)
				}
			} else if v := got.header.Values("Authorization"); len(v) != 1 || v[0] != c.auth {
				t.Errorf("Authorization = %q, want %q verbatim", v, c.auth)
			}
			ts, err := strconv.ParseInt(got.header.Get("Webhook-Timestamp"), 10, 64)
			if err != nil || ts < before || ts > time.Now().Unix() {
				t.Errorf("webhook-timestamp %q", got.header.Get("Webhook-Timestamp"))
			}
			sig := got.header.Get("Webhook-Signature")
			if n := len(strings.Split(sig, " ")); n != len(c.secrets) {
				t.Errorf("%d signatures in %q, want %d", n, sig, len(c.secrets))
			}
			for _, s := range c.secrets {
				if !signing.Verify(mustKey(t, s), got.header.Get("Webhook-Id"), ts, got.body, sig) {
					t.Errorf("signing.Verify rejects the signature of %q", s)
				}
				wh, _ := standardwebhooks.NewWebhook(s)
				if err := wh.Verify(got.body, got.header); err != nil {
					t.Errorf("standard webhooks rejects the signature of %q: %v", s, err)
				}
			}
			if signing.Verify(mustKey(t, mustSecret(t)), got.header.Get("Webhook-Id"), ts, got.body, sig) {
				t.Errorf("a stranger's secret verifies")
			}
		})
	}
}

// The webhook-id is the delivery id: identical on a retry of the delivery.
func TestSendWebhookIDStableAcrossAttempts(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	req := delivery.Request{URL: srv.URL, Secrets: []string{mustSecret(t)}, DeliveryID: "stable-id", Body: []byte("{}"), Timeout: 5 * time.Second}
	for i := 0; i < 3; i++ {
		if res := cl.Send(context.Background(), req); res.Class != delivery.Retryable || res.StatusCode != 503 {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.reqs) != 3 {
		t.Fatalf("%d requests", len(srv.reqs))
	}
	for _, r := range srv.reqs {
		if r.header.Get("Webhook-Id") != "stable-id" || r.header.Get("X-Hermod-Delivery-Id") != "stable-id" {
			t.Errorf("ids %q %q", r.header.Get("Webhook-Id"), r.header.Get("X-Hermod-Delivery-Id"))
		}
	}
}

// Responses are classified by status; Retry-After is read on 429 and 503 only.
func TestSendStatusTable(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if ra := r.URL.Query().Get("retry_after"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(code)
	})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	for _, c := range []struct {
		path       string
		class      delivery.Class
		retryAfter time.Duration
	}{
		{"/200", delivery.Success, 0},
		{"/201", delivery.Success, 0},
		{"/204", delivery.Success, 0},
		{"/400", delivery.Terminal, 0},
		{"/401", delivery.Terminal, 0},
		{"/404", delivery.Terminal, 0},
		{"/410", delivery.Terminal, 0},
		{"/422", delivery.Terminal, 0},
		{"/408", delivery.Retryable, 0},
		{"/425", delivery.Retryable, 0},
		{"/429?retry_after=7", delivery.Retryable, 7 * time.Second},
		{"/429?retry_after=7200", delivery.Retryable, time.Hour},
		{"/429", delivery.Retryable, 0},
		{"/503?retry_after=12", delivery.Retryable, 12 * time.Second},
		{"/500?retry_after=12", delivery.Retryable, 0},
		{"/502", delivery.Retryable, 0},
		{"/304", delivery.Retryable, 0},
	} {
		t.Run(c.path, func(t *testing.T) {
			res := cl.Send(context.Background(), delivery.Request{URL: srv.URL + c.path, Secrets: []string{mustSecret(t)},
				DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
			want, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(c.path, "?", 2)[0], "/"))
			if res.StatusCode != want || res.Class != c.class || res.RetryAfter != c.retryAfter {
				t.Errorf("result %+v, want status %d class %s retry-after %s", res, want, c.class, c.retryAfter)
			}
			if (res.Err == nil) != (c.class == delivery.Success) {
				t.Errorf("err %v for class %s", res.Err, res.Class)
			}
			if res.Err != nil && !strings.Contains(res.Err.Error(), strconv.Itoa(want)) {
				t.Errorf("error %q does not name the status", res.Err)
			}
		})
	}
}

// Redirects are never followed: the 3xx is the result, and the Location
// target is never contacted.
func TestSendRedirectsNotFollowed(t *testing.T) {
	target := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			src := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", target.URL+"/elsewhere")
				w.WriteHeader(code)
			})
			cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
			res := cl.Send(context.Background(), delivery.Request{URL: src.URL, Secrets: []string{mustSecret(t)},
				DeliveryID: "d", Body: []byte(`{"a":1}`), Timeout: 5 * time.Second})
			if res.StatusCode != code || res.Class != delivery.Retryable || res.Err == nil {
				t.Errorf("result %+v", res)
			}
			if src.hits.Load() != 1 {
				t.Errorf("source contacted %d times", src.hits.Load())
			}
		})
	}
	if n := target.hits.Load(); n != 0 {
		t.Errorf("the redirect target was contacted %d times", n)
	}
}

// A server slower than Request.Timeout gives a retryable timeout, promptly.
func TestSendTimeoutRetryable(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the client gave up (or the test ended)
		case <-time.After(30 * time.Second):
		}
	})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	start := time.Now()
	res := cl.Send(context.Background(), delivery.Request{URL: srv.URL, Secrets: []string{mustSecret(t)},
		DeliveryID: "d", Body: []byte("{}"), Timeout: 200 * time.Millisecond})
	elapsed := time.Since(start)
	if res.Class != delivery.Retryable || res.StatusCode != 0 {
		t.Errorf("result %+v", res)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "timeout") {
		t.Errorf("error %v does not mention a timeout", res.Err)
	}
	if elapsed < 200*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("timeout after %s, want about 200ms", elapsed)
	}
	if res.Duration < 200*time.Millisecond {
		t.Errorf("duration %s", res.Duration)
	}
	// The server did get the request (this is a timeout, not a refusal).
	hermodtest.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if n := srv.hits.Load(); n != 1 {
			return fmt.Errorf("the server got %d requests, want 1", n)
		}
		return nil
	})
}

func TestSendConnectionRefusedRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	res := cl.Send(context.Background(), delivery.Request{URL: "http://" + addr, Secrets: []string{mustSecret(t)},
		DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
	if res.Class != delivery.Retryable || res.StatusCode != 0 || res.Err == nil || !strings.Contains(res.Err.Error(), "connection") {
		t.Errorf("result %+v", res)
	}
}

// The SSRF guard refuses loopback at connect time unless an allow-list lets
// it through; refused attempts are terminal and never reach the server.
func TestSendSSRFGuardTable(t *testing.T) {
	v4 := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	for _, c := range []struct {
		name     string
		opts     delivery.ClientOptions
		url      string
		received bool
	}{
		{"guard, no allow-list", delivery.ClientOptions{Guard: true}, v4.URL, false},
		{"guard, no allow-list, by name", delivery.ClientOptions{Guard: true}, strings.Replace(v4.URL, "127.0.0.1", "localhost", 1), false},
		{"guard, other private range allowed", delivery.ClientOptions{Guard: true, Allow: allow("10.0.0.0/8", "192.168.0.0/16")}, v4.URL, false},
		{"guard, only v6 loopback allowed", delivery.ClientOptions{Guard: true, Allow: allow("::1/128")}, v4.URL, false},
		{"guard, a neighbouring /32 allowed", delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.2/32")}, v4.URL, false},
		{"guard, 127.0.0.0/8 allowed", delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")}, v4.URL, true},
		{"guard, exactly 127.0.0.1/32 allowed", delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.1/32")}, v4.URL, true},
		{"no guard (agent)", delivery.ClientOptions{Guard: false}, v4.URL, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := v4.hits.Load()
			cl := newClient(t, c.opts)
			res := cl.Send(context.Background(), delivery.Request{URL: c.url, Secrets: []string{mustSecret(t)},
				DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
			got := v4.hits.Load() - before
			if c.received {
				if got != 1 || res.Class != delivery.Success {
					t.Errorf("received %d, result %+v", got, res)
				}
				return
			}
			if got != 0 {
				t.Fatalf("the guarded client reached the server %d times", got)
			}
			if res.Class != delivery.Terminal || res.StatusCode != 0 || res.Err == nil {
				t.Fatalf("result %+v", res)
			}
			if !strings.Contains(res.Err.Error(), "SSRF") || !errors.Is(res.Err, delivery.ErrRefusedDestination) {
				t.Errorf("error %q does not name the SSRF guard or wrap ErrRefusedDestination", res.Err)
			}
			if !strings.Contains(res.Err.Error(), "HERMOD_DELIVERY_ALLOW_CIDRS") {
				t.Errorf("error %q does not say how to allow it", res.Err)
			}
		})
	}
}

// The same over IPv6 loopback, when the machine has it.
func TestSendSSRFGuardIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	v6 := serve(t, l, nil)
	req := delivery.Request{URL: v6.URL, Secrets: []string{mustSecret(t)}, DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second}
	for _, c := range []struct {
		name     string
		allow    []netip.Prefix
		received bool
	}{
		{"no allow-list", nil, false},
		{"only v4 loopback allowed", allow("127.0.0.0/8"), false},
		{"::1/128 allowed", allow("::1/128"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := v6.hits.Load()
			res := newClient(t, delivery.ClientOptions{Guard: true, Allow: c.allow}).Send(context.Background(), req)
			got := v6.hits.Load() - before
			if c.received != (got == 1) {
				t.Fatalf("received %d, result %+v", got, res)
			}
			if c.received && res.Class != delivery.Success {
				t.Errorf("result %+v", res)
			}
			if !c.received && (res.Class != delivery.Terminal || res.Err == nil || !strings.Contains(res.Err.Error(), "SSRF")) {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// Requests that cannot be built are terminal and send nothing.
func TestSendBadRequestsTerminal(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	for _, c := range []struct {
		name    string
		url     string
		secrets []string
		errHas  string
	}{
		{"invalid secret", srv.URL, []string{"not-a-secret"}, "secret"},
		{"second secret invalid", srv.URL, []string{mustSecret(t), "whsec_short"}, "secret"},
		{"unparsable URL", "http://127.0.0.1:%zz/", []string{mustSecret(t)}, "request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := cl.Send(context.Background(), delivery.Request{URL: c.url, Secrets: c.secrets, DeliveryID: "d",
				Body: []byte("{}"), Timeout: 5 * time.Second})
			if res.Class != delivery.Terminal || res.Err == nil || !strings.Contains(res.Err.Error(), c.errHas) {
				t.Errorf("result %+v", res)
			}
		})
	}
	if srv.hits.Load() != 0 {
		t.Errorf("server contacted %d times", srv.hits.Load())
	}
}

// Every attempt keeps the start of the answer (cut at ExcerptLen, as valid
// UTF-8) and its media type, for a failure and a success alike, and a
// failure's error carries the answer's first line; no response header is
// kept.
func TestSendExcerpt(t *testing.T) {
	big := strings.Repeat("0123456789", 1000)
	long := strings.Repeat("é", 300) // 600 bytes on one line
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Secret-Echo", "s3cret")
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "thanks")
		case "/empty":
			w.WriteHeader(204)
		case "/am":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, "\n  cannot unmarshal object into Go value of type models.PostableAlerts\nsecond line")
		case "/long":
			w.WriteHeader(422)
			_, _ = io.WriteString(w, long)
		case "/cut":
			w.WriteHeader(500)
			// a two-byte rune across the cut, then invalid bytes
			_, _ = io.WriteString(w, strings.Repeat("a", delivery.ExcerptLen-1)+"é\xff")
		default:
			w.WriteHeader(500)
			_, _ = io.WriteString(w, big)
		}
	})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	for _, c := range []struct {
		path, want, ctype, err string
		status                 int
	}{
		{"/fail", big[:delivery.ExcerptLen], "text/plain", "HTTP 500: " + big[:200] + "…", 500},
		{"/ok", "thanks", "text/plain", "", 200},
		{"/empty", "", "", "", 204},
		{"/am", "\n  cannot unmarshal object into Go value of type models.PostableAlerts\nsecond line", "application/json",
			"HTTP 400: cannot unmarshal object into Go value of type models.PostableAlerts", 400},
		{"/long", long, "text/plain", "HTTP 422: " + strings.Repeat("é", 100) + "…", 422},
		{"/cut", strings.Repeat("a", delivery.ExcerptLen-1) + "\uFFFD", "text/plain", "", 500},
	} {
		res := cl.Send(context.Background(), delivery.Request{URL: srv.URL + c.path, Secrets: []string{mustSecret(t)}, DeliveryID: "d",
			Body: []byte("{}"), Timeout: 5 * time.Second})
		if res.Excerpt != c.want || res.StatusCode != c.status || !strings.HasPrefix(res.ContentType, c.ctype) {
			t.Errorf("%s: got %d bytes %.40q (%q), status %d; want %d bytes (%q), status %d",
				c.path, len(res.Excerpt), res.Excerpt, res.ContentType, res.StatusCode, len(c.want), c.ctype, c.status)
		}
		if c.err != "" && (res.Err == nil || res.Err.Error() != c.err) {
			t.Errorf("%s: error %v, want %q", c.path, res.Err, c.err)
		}
		if strings.Contains(res.Excerpt+res.ContentType+fmt.Sprint(res.Err), "s3cret") {
			t.Errorf("%s: a response header was kept", c.path)
		}
	}
}

// An auth header value that net/http refuses to send (a control character
// other than CR/LF/NUL, which webhooks.Apply accepts) never reaches the
// server; such a failure cannot succeed on a retry.
func TestSendUnsendableAuthHeader(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	res := cl.Send(context.Background(), delivery.Request{URL: srv.URL, AuthHeader: "Bearer a\x01b", Secrets: []string{mustSecret(t)},
		DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
	if srv.hits.Load() != 0 || res.Err == nil || res.Class == delivery.Success {
		t.Fatalf("hits %d, result %+v", srv.hits.Load(), res)
	}
	if res.Class != delivery.Terminal {
		t.Errorf("regression: an auth header net/http cannot send is classified %s (%v), "+
			"so the delivery is retried until exhausted; webhooks.Apply accepts such values", res.Class, res.Err)
	}
}

// Custom headers reach the receiver under their canonical names; a custom
// header named like one Hermod or the HTTP client writes never replaces it
// (the signature still verifies, only Hermod's value is sent).
func TestSendCustomHeaders(t *testing.T) {
	secret := mustSecret(t)
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8"), UserAgent: "Hermod/1.2.3"})
	body := []byte(`{"id":"e"}`)
	send := func(headers map[string]string) delivery.Result {
		return cl.Send(context.Background(), delivery.Request{URL: srv.URL, AuthHeader: "Bearer real", Secrets: []string{secret},
			DeliveryID: "d-1", EventType: "deployment.applied", Body: body, Timeout: 5 * time.Second, Headers: headers})
	}
	res := send(map[string]string{"dd-api-key": "dd-key", "X-Tenant": "t 1"})
	if res.Class != delivery.Success || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	got := srv.last(t)
	for h, want := range map[string]string{
		"Dd-Api-Key": "dd-key", "X-Tenant": "t 1", "Webhook-Id": "d-1", "User-Agent": "Hermod/1.2.3",
		"Authorization": "Bearer real", "Content-Type": "application/json", "X-Hermod-Delivery-Id": "d-1",
	} {
		if v := got.header.Values(h); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	ts, _ := strconv.ParseInt(got.header.Get("Webhook-Timestamp"), 10, 64)
	if !signing.Verify(mustKey(t, secret), got.header.Get("Webhook-Id"), ts, got.body, got.header.Get("Webhook-Signature")) {
		t.Errorf("the signature does not verify")
	}
	// A name Hermod owns (or a hop-by-hop one) never reaches the receiver:
	// the attempt fails at once, without retry.
	hits := srv.hits.Load()
	for _, name := range []string{"webhook-signature", "Webhook-Id", "User-Agent", "authorization", "Content-Type",
		"X-Hermod-Delivery-Id", "Connection"} {
		if res := send(map[string]string{name: "forged"}); res.Class != delivery.Terminal || res.Err == nil {
			t.Errorf("%s: %+v, want a terminal failure", name, res)
		}
	}
	if srv.hits.Load() != hits {
		t.Error("a request with a reserved custom header was sent")
	}
}

// A custom header HTTP cannot send (a control character in its value, a
// separator in its name) never reaches the server and is not retried.
func TestSendUnsendableCustomHeader(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	for _, h := range []map[string]string{
		{"X-A": "v\r\nWebhook-Signature: v1,forged"},
		{"X-A": "v\x00"},
		{"X A": "v"},
		{"X-A\r\nX-B": "v"},
	} {
		res := cl.Send(context.Background(), delivery.Request{URL: srv.URL, Headers: h, Secrets: []string{mustSecret(t)},
			DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
		if res.Class != delivery.Terminal || res.Err == nil {
			t.Errorf("%q: result %+v, want terminal", h, res)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "forged") {
			t.Errorf("the error quotes the value: %v", res.Err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// A receiver that echoes the request (an echo service, a proxy's error
// page) never gets the auth header, a custom header value or a format's
// routing key recorded.
func TestSendExcerptHidesEchoedSecrets(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(400)
		_, _ = fmt.Fprintf(w, "auth=%s key=%s body=%s", r.Header.Get("Authorization"), r.Header.Get("Dd-Api-Key"), body)
	})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	res := cl.Send(context.Background(), delivery.Request{URL: srv.URL, AuthHeader: "Bearer s3cret-token", Secrets: []string{mustSecret(t)},
		Headers: map[string]string{"Dd-Api-Key": "dd-api-secret"}, DeliveryID: "d", Timeout: 5 * time.Second,
		Body: []byte(`{"routing_key":"R0123456789abcdef0123456789ABCDE"}`), Redact: []string{"R0123456789abcdef0123456789ABCDE"}})
	for _, secret := range []string{"s3cret-token", "dd-api-secret", "R0123456789abcdef0123456789ABCDE"} {
		if strings.Contains(res.Excerpt, secret) || strings.Contains(res.Err.Error(), secret) {
			t.Errorf("%q recorded: excerpt %q, error %v", secret, res.Excerpt, res.Err)
		}
	}
	if !strings.Contains(res.Excerpt, "<redacted>") {
		t.Errorf("excerpt %q", res.Excerpt)
	}
}

// The credential alone (after its scheme) is hidden too, and so is a
// secret across the excerpt's cut.
func TestSendExcerptHidesPartialAndStraddlingSecrets(t *testing.T) {
	srv := startSink(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, _ = io.WriteString(w, strings.Repeat("x", delivery.ExcerptLen-5)+tok+" and more")
	})
	cl := newClient(t, delivery.ClientOptions{Guard: true, Allow: allow("127.0.0.0/8")})
	res := cl.Send(context.Background(), delivery.Request{URL: srv.URL, AuthHeader: "Bearer tok-0123456789", Secrets: []string{mustSecret(t)},
		DeliveryID: "d", Body: []byte("{}"), Timeout: 5 * time.Second})
	if strings.Contains(res.Excerpt, "tok-") || len(res.Excerpt) > delivery.ExcerptLen {
		t.Errorf("excerpt ends %q (%d bytes)", res.Excerpt[len(res.Excerpt)-20:], len(res.Excerpt))
	}
}
