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

	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]Stats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	if f := stats[Fast]; f.Distinct != 1 || f.Duplicates != 0 || f.NoSendTime != 0 || f.MaxMS <= 0 {
		t.Errorf("fast stats %+v", f)
	}
	if f := stats[Fail]; f.Requests != 2 || f.Distinct != 1 || f.Duplicates != 1 {
		t.Errorf("fail stats %+v", f)
	}
	if len(stats) != 3 {
		t.Errorf("prefixes %v", stats)
	}
	resp2, err := http.Get(srv.URL + "/paths")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var paths map[string]Counts
	if err := json.NewDecoder(resp2.Body).Decode(&paths); err != nil {
		t.Fatal(err)
	}
	if p := paths["/fail/a/1"]; p.Requests != 2 || p.Distinct != 1 || len(paths) != 3 {
		t.Errorf("paths %+v", paths)
	}
	srv.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
}
