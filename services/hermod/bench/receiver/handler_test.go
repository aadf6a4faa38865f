package receiver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHandlerAnswersByPrefixAndReports(t *testing.T) {
	h := &Handler{Tally: NewTally(), Paths: NewTally(), SlowDelay: 50 * time.Millisecond}
	srv := httptest.NewServer(h)
	defer srv.Close()
	sent := time.Now().UnixNano()
	body := `{"id":"e1","event_type":"deployment.applied","data":{"sent_ns":` + strconv.FormatInt(sent, 10) + `}}`
	post := func(path, id string) (int, time.Duration) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("webhook-id", id)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	if code, _ := post("/fast/a/1", "msg_1"); code != 200 {
		t.Errorf("fast: %d", code)
	}
	if code, took := post("/slow/a/1", "msg_2"); code != 200 || took < h.SlowDelay {
		t.Errorf("slow: %d after %s", code, took)
	}
	for range 2 {
		if code, _ := post("/fail/a/1", "msg_3"); code != 500 {
			t.Errorf("fail: %d", code)
		}
	}
	if code, _ := post("/other", "msg_4"); code != 404 {
		t.Errorf("unknown prefix: %d", code)
	}

	var stats map[string]Stats
	getJSON(t, srv.URL+"/stats", &stats)
	if f := stats[Fast]; f.Distinct != 1 || f.Duplicates != 0 || f.NoSendTime != 0 || f.MaxMS <= 0 {
		t.Errorf("fast stats %+v", f)
	}
	if f := stats[Fail]; f.Requests != 2 || f.Distinct != 1 || f.Duplicates != 1 {
		t.Errorf("fail stats %+v", f)
	}
	if len(stats) != 3 {
		t.Errorf("prefixes %v", stats)
	}
	var paths map[string]Counts
	getJSON(t, srv.URL+"/paths", &paths)
	if p := paths["/fail/a/1"]; p.Requests != 2 || p.Distinct != 1 || len(paths) != 6 {
		t.Errorf("paths %+v", paths)
	}
	if p := paths["/fail/a/1?type=deployment.applied"]; p.Requests != 2 || p.Distinct != 1 {
		t.Errorf("paths %+v", paths)
	}
	srv.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
}

// getJSON decodes the answer of GET url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
