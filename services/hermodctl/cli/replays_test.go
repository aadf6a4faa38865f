package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

func replayJSON(state string, matched, requeued, skipped int, errText string) string {
	finished, e := `null`, `null`
	if state != "running" {
		finished = `"2026-11-30T10:00:05Z"`
	}
	if errText != "" {
		e = `"` + errText + `"`
	}
	b, _ := json.Marshal(map[string]any{"id": "r1", "webhook_id": "w1", "statuses": []string{"dead", "failed"},
		"since": "2026-11-29T10:00:00Z", "until": nil, "state": state, "matched": matched, "requeued": requeued, "skipped": skipped,
		"error": json.RawMessage(e), "created_at": "2026-11-30T10:00:00Z", "finished_at": json.RawMessage(finished)})
	return string(b)
}

// replayServer answers the start with a running replay and each GET with
// the next of states (the last one from then on).
func replayServer(t *testing.T, states ...string) (*fakeAPI, *atomic.Int32) {
	f := newFakeAPI(t)
	f.answer("POST /api/v1/webhooks/w1/replay", 202, replayJSON("running", 0, 0, 0, ""))
	var gets atomic.Int32
	f.handle("GET /api/v1/replays/r1", func(w http.ResponseWriter, _ *http.Request) {
		i := int(gets.Add(1)) - 1
		if i >= len(states) {
			i = len(states) - 1
		}
		writeJSON(w, 200, states[i])
	})
	return f, &gets
}

func TestReplayStartFollowsToTheEnd(t *testing.T) {
	f, _ := replayServer(t, replayJSON("running", 10, 3, 0, ""), replayJSON("running", 10, 7, 1, ""), replayJSON("done", 10, 9, 1, ""))
	r := f.run(t, "", nil, "replays", "start", "w1", "--status", "dead,failed", "--since", "2026-11-29T10:00:00Z",
		"--until", "2026-11-30T10:00:00+01:00", "--interval", "100ms")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var start recorded
	for _, q := range f.requests() {
		if q.Method == "POST" {
			start = q
		}
	}
	if string(start.Body) != `{"statuses":["dead","failed"],"since":"2026-11-29T10:00:00Z","until":"2026-11-30T09:00:00Z"}` {
		t.Errorf("start body %s", start.Body)
	}
	// Not a terminal: a line per change on stderr.
	for _, want := range []string{"replay r1 started", "replay r1: running, matched 10, requeued 3, skipped 0",
		"replay r1: running, matched 10, requeued 7, skipped 1", "replay r1: done, matched 10, requeued 9, skipped 1"} {
		if !strings.Contains(r.stderr, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "state:") || !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, "requeued:  9") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestReplayStartOutcomes(t *testing.T) {
	// A replay that fails exits 1 with its error.
	f, _ := replayServer(t, replayJSON("failed", 4, 1, 0, "redis is unavailable"))
	r := f.run(t, "", nil, "replays", "start", "w1", "--interval", "100ms")
	if r.code != ExitError || !strings.Contains(r.stderr, "Error: replay r1 failed: redis is unavailable") {
		t.Errorf("failed: %d %q", r.code, r.stderr)
	}
	if string(f.requests()[0].Body) != `{"statuses":["dead"]}` {
		t.Errorf("default body %s", f.requests()[0].Body)
	}
	// --detach and -o json return at once with the replay as started.
	f, gets := replayServer(t, replayJSON("done", 1, 1, 0, ""))
	r = f.run(t, "", nil, "replays", "start", "w1", "--detach")
	if r.code != 0 || gets.Load() != 0 || !strings.Contains(r.stdout, "running") {
		t.Errorf("--detach: %d %d %q", r.code, gets.Load(), r.stdout)
	}
	r = f.run(t, "", nil, "replays", "start", "w1", "-o", "json")
	if r.code != 0 || gets.Load() != 0 || strings.TrimSpace(r.stdout) != replayJSON("running", 0, 0, 0, "") || r.stderr != "" {
		t.Errorf("-o json: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// -o json --wait prints the replay as it ended, and nothing on stderr.
	r = f.run(t, "", nil, "replays", "start", "w1", "-o", "json", "--wait", "--interval", "100ms")
	if r.code != 0 || strings.TrimSpace(r.stdout) != replayJSON("done", 1, 1, 0, "") || r.stderr != "" {
		t.Errorf("-o json --wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A replay that ended before the start was answered is not followed.
	f, gets = replayServer(t, replayJSON("done", 0, 0, 0, ""))
	f.answer("POST /api/v1/webhooks/w1/replay", 202, replayJSON("done", 0, 0, 0, ""))
	r = f.run(t, "", nil, "replays", "start", "w1", "-o", "json", "--wait")
	if r.code != 0 || gets.Load() != 0 || strings.TrimSpace(r.stdout) != replayJSON("done", 0, 0, 0, "") {
		t.Errorf("ended at once: %d %d %q", r.code, gets.Load(), r.stdout)
	}
	// A terminal gets a progress bar.
	f, _ = replayServer(t, replayJSON("running", 4, 2, 0, ""), replayJSON("done", 4, 4, 0, ""))
	res := runWith(context.Background(), Env{Args: []string{"--server", f.srv.URL, "--api-key", "k", "replays", "start", "w1", "--interval", "100ms"},
		Getenv: func(string) string { return "" }, StderrTerminal: true})
	if res.code != 0 || !strings.Contains(res.stderr, "replay") || !strings.Contains(res.stdout, "done") {
		t.Errorf("bar: %d %q %q", res.code, res.stdout, res.stderr)
	}
}

func TestReplayFollowInterrupted(t *testing.T) {
	f, gets := replayServer(t, replayJSON("running", 10, 1, 0, ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- runWith(ctx, Env{Args: []string{"--server", f.srv.URL, "--api-key", "k", "replays", "start", "w1", "--interval", "100ms"},
			Getenv: func(string) string { return "" }})
	}()
	hermodtest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if gets.Load() == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	cancel()
	r := <-done
	if r.code != ExitInterrupted || !strings.Contains(r.stderr, "replay r1 goes on (hermodctl replays cancel r1 stops it)") {
		t.Errorf("interrupted: %d %q", r.code, r.stderr)
	}
}

func TestReplaysGetListCancel(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /api/v1/replays/r1", 200, replayJSON("running", 3, 1, 0, ""))
	f.answer("GET /api/v1/replays", 200, `{"data":[`+replayJSON("done", 3, 3, 0, "")+`],"next_cursor":null}`)
	f.answer("POST /api/v1/replays/r1/cancel", 200, replayJSON("cancelled", 3, 1, 0, ""))
	if r := f.run(t, "", nil, "replays", "get", "r1"); r.code != 0 || !strings.Contains(r.stdout, "running") {
		t.Errorf("get: %d %q", r.code, r.stdout)
	}
	r := f.run(t, "", nil, "replays", "list", "--webhook", "w1")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || f.last().Query != "webhook_id=w1" || len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") ||
		!strings.Contains(lines[1], "dead,failed") || !strings.Contains(lines[1], "2026-11-30 10:00:05Z") {
		t.Errorf("list: %d %q %+v", r.code, r.stdout, f.last())
	}
	if r := f.run(t, "", nil, "replays", "cancel", "r1", "-o", "json"); r.code != 0 || f.last().Method != "POST" ||
		strings.TrimSpace(r.stdout) != replayJSON("cancelled", 3, 1, 0, "") {
		t.Errorf("cancel: %d %q", r.code, r.stdout)
	}
	f.answer("GET /api/v1/replays/r2", 404, `{"code":"not_found","message":"replay not found","details":{},"request_id":"R"}`)
	if r := f.run(t, "", nil, "replays", "get", "r2"); r.code != ExitError || r.stderr != "Error: replay not found (not_found, HTTP 404) [request R]\n" {
		t.Errorf("404: %d %q", r.code, r.stderr)
	}
	// A server without the replay routes says so.
	old := newFakeAPI(t)
	if r := old.run(t, "", nil, "replays", "list"); r.code != ExitError || !strings.Contains(r.stderr, "this server has no replay API") {
		t.Errorf("no replay API: %d %q", r.code, r.stderr)
	}
}
