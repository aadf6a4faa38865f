package allinone_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// hostileReceiver is a loopback receiver that misbehaves: it answers with
// what behave writes to the raw connection after reading the request's
// headers. It counts the requests it got and closes every connection when
// the test ends.
type hostileReceiver struct {
	URL   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	got   int
	wg    sync.WaitGroup
	done  chan struct{}
}

func newHostileReceiver(t *testing.T, behave func(c net.Conn, done <-chan struct{})) *hostileReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileReceiver{URL: "http://" + ln.Addr().String() + "/hook", ln: ln, done: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				br := bufio.NewReader(c)
				for { // each request on the connection: its headers, then the behaviour
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					h.mu.Lock()
					h.got++
					h.mu.Unlock()
					behave(c, h.done)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(h.done)
		_ = ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *hostileReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got
}

// pause waits for d or the end of the test.
func pause(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Receivers that hang after reading the request, trickle their answer a
// byte at a time, or answer with a 1 GB body: each attempt ends by the
// webhook's timeout or the bounded read, is recorded with why, and a
// healthy webhook's deliveries meanwhile arrive as usual.
func TestHostileReceivers(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		hang := newHostileReceiver(t, func(_ net.Conn, done <-chan struct{}) { <-done })
		trickle := newHostileReceiver(t, func(c net.Conn, done <-chan struct{}) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
			for pause(100*time.Millisecond, done) {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		})
		// A gigabyte, written as fast as the reader takes it (never held in
		// memory here); the client reads a bounded part and hangs up.
		var huge http.HandlerFunc = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "1073741824")
			w.WriteHeader(200)
			chunk := []byte(strings.Repeat("y", 64<<10))
			for range (1 << 30) / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
		big := httptest.NewServer(huge)
		defer big.Close()
		healthy := hermodtest.NewSink(t)

		mk := func(name, url string) string {
			return p.createWebhook(map[string]any{"name": name, "url": url, "event_types": []string{"stack.created"},
				"timeout_seconds": 5, "max_retries": 1})
		}
		hangID, trickleID, bigID := mk("hang", hang.URL), mk("trickle", trickle.URL), mk("huge", big.URL)
		healthyID := p.createWebhook(map[string]any{"name": "healthy", "url": healthy.URL, "event_types": []string{"stack.deleted"}})

		start := time.Now()
		p.publish("stack.created", map[string]any{"stack_id": "s-1"})
		const n = 20
		for i := range n {
			p.publish("stack.deleted", map[string]any{"i": i})
		}
		// The healthy webhook does not wait for the hostile ones' timeouts.
		hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error { return sinkGotExactly(healthy, n) })
		if took := time.Since(start); took >= 5*time.Second {
			t.Errorf("the healthy webhook's %d deliveries took %v: they waited for the hostile receivers' 5 s timeouts", n, took)
		}
		p.waitStatus(healthyID, "success", n, 10*time.Second)

		// Each hostile attempt ended. The hanging one by the 5 s timeout
		// (dead after its one attempt, saying why). The trickling one had
		// answered 200 before it trickled: a success, whose excerpt read
		// was cut by the same timeout. The huge one: a success after a
		// bounded read, its excerpt at most 1 KiB.
		d := p.waitStatus(hangID, "dead", 1, 20*time.Second)[0]
		if msg, _ := d["last_error"].(string); !strings.Contains(strings.ToLower(msg), "timeout") {
			t.Errorf("hang: last_error %q, want it to say timeout", msg)
		}
		attempt := func(id string) map[string]any {
			t.Helper()
			one := p.must(200, "GET", "/api/v1/deliveries/"+p.waitStatus(id, "success", 1, 20*time.Second)[0]["id"].(string), nil)
			hist, _ := one["attempt_history"].([]any)
			if len(hist) != 1 {
				t.Fatalf("%s: %d attempts in the history, want 1: %v", id, len(hist), one)
			}
			return hist[0].(map[string]any)
		}
		if a := attempt(trickleID); a["duration_ms"].(float64) < 5000 || a["duration_ms"].(float64) > 15000 ||
			!strings.HasPrefix(a["response"].(string), "x") {
			t.Errorf("trickle: attempt %v, want its read of the answer cut by the 5 s timeout", a)
		}
		if a := attempt(bigID); a["status_code"].(float64) != 200 || len(a["response"].(string)) > 1024 {
			t.Errorf("huge answer: attempt %v, want 200 with at most 1 KiB kept", a)
		}
		if hang.count() != 1 || trickle.count() != 1 {
			t.Errorf("hang got %d requests, trickle %d: want 1 each (max_retries 1)", hang.count(), trickle.count())
		}
	})
}
