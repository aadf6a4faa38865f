package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// switchable is a check whose error the test sets.
type switchable struct {
	mu  sync.Mutex
	err error
}

func (s *switchable) set(err error) { s.mu.Lock(); s.err = err; s.mu.Unlock() }

func (s *switchable) check(context.Context) error { s.mu.Lock(); defer s.mu.Unlock(); return s.err }

type logLine struct {
	Level      string `json:"level"`
	Dependency string `json:"dependency"`
	Error      string `json:"error"`
}

func logLines(t *testing.T, buf *bytes.Buffer) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, ll)
	}
	return out
}

func probe(t *testing.T, h *Health) (int, string, Readiness) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	var r Readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("/readyz body is not JSON: %q", rec.Body.String())
	}
	return rec.Code, rec.Body.String(), r
}

// /readyz names the dependency that is down and never prints its error
// (public endpoint); the error goes to the log once when it goes down, again
// at most every RepeatEvery while it stays down, and its recovery once, however
// often the endpoint is probed.
func TestReadyzNamesDownDependenciesAndLogsTheirErrors(t *testing.T) {
	const secretish = "dial tcp 10.9.8.7:6379: WRONGPASS user hermod"
	redis, nats := &switchable{}, &switchable{}
	var buf bytes.Buffer
	h := NewHealth(map[string]Check{"redis": redis.check, "nats": nats.check}, zerolog.New(&buf))
	clock := time.Unix(1_700_000_000, 0)
	h.now = func() time.Time { return clock }

	if code, _, r := probe(t, h); code != http.StatusServiceUnavailable || r.Status != "starting" || len(r.Down) != 0 {
		t.Fatalf("before SetReady: %d %+v", code, r)
	}
	h.SetReady()
	if code, body, r := probe(t, h); code != http.StatusOK || r.Status != "ready" || len(r.Down) != 0 {
		t.Fatalf("ready: %d %s", code, body)
	}

	redis.set(errors.New(secretish))
	for range 30 { // a probe every second for half a minute
		code, body, r := probe(t, h)
		if code != http.StatusServiceUnavailable || r.Status != "unready" || !slices.Equal(r.Down, []string{"redis"}) {
			t.Fatalf("redis down: %d %s", code, body)
		}
		if strings.Contains(body, "10.9.8.7") || strings.Contains(body, "WRONGPASS") || strings.Contains(body, "hermod") {
			t.Fatalf("/readyz prints the driver error: %s", body)
		}
		clock = clock.Add(time.Second)
	}
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0].Level != "warn" || lines[0].Dependency != "redis" || lines[0].Error != secretish {
		t.Fatalf("after 30 probes with redis down, log: %+v", lines)
	}

	// Both down, sorted; a minute on, redis is logged again (still down).
	nats.set(errors.New("nats: connection closed"))
	clock = clock.Add(RepeatEvery)
	if code, body, r := probe(t, h); code != http.StatusServiceUnavailable || !slices.Equal(r.Down, []string{"nats", "redis"}) {
		t.Fatalf("both down: %d %s", code, body)
	}
	lines = logLines(t, &buf)
	if len(lines) != 3 {
		t.Fatalf("want nats down and redis still down logged, got %+v", lines)
	}
	for _, dep := range []string{"nats", "redis"} {
		if !slices.ContainsFunc(lines[1:], func(l logLine) bool { return l.Dependency == dep && l.Level == "warn" && l.Error != "" }) {
			t.Errorf("no warn line with the error for %s: %+v", dep, lines[1:])
		}
	}

	// Back: one info line each, then nothing more.
	redis.set(nil)
	nats.set(nil)
	for range 5 {
		if code, body, _ := probe(t, h); code != http.StatusOK || body != "{\"status\":\"ready\"}\n" {
			t.Fatalf("back: %d %q", code, body)
		}
	}
	lines = logLines(t, &buf)
	if len(lines) != 5 || lines[3].Level != "info" || lines[4].Level != "info" || lines[3].Error != "" {
		t.Fatalf("recovery logged as: %+v", lines[3:])
	}

	// Down again: logged again at once.
	redis.set(errors.New(secretish))
	probe(t, h)
	if lines = logLines(t, &buf); len(lines) != 6 || lines[5].Level != "warn" || lines[5].Dependency != "redis" {
		t.Fatalf("down again logged as: %+v", lines[5:])
	}

	h.SetStopping()
	if code, _, r := probe(t, h); code != http.StatusServiceUnavailable || r.Status != "stopping" || !slices.Equal(r.Down, []string{"redis"}) {
		t.Fatalf("stopping: %d %+v", code, r)
	}
}
