package allinone_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// answering starts a receiver on loopback that answers every request with
// status, contentType and body, and a header that must never be recorded.
func answering(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("X-Echo-Token", "tok-never-recorded")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// Why a receiver said no: every attempt records the start of the answer
// and its media type, and last_error carries its first line; no response
// header is recorded (an Alertmanager refusing Hermod's envelope).
func TestReceiverAnswerRecorded(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		p := startPipeline(t, nil)
		body := `{"code":400,"message":"cannot unmarshal object into Go value of type models.PostableAlerts"}` + "\n" + strings.Repeat("x", 2000)
		url := answering(t, 400, "application/json; charset=utf-8", body)
		id := p.createWebhook(map[string]any{"name": "alertmanager", "url": url + "/api/v2/alerts", "event_types": []string{"alert.*"}})
		p.publish("alert.triggered", map[string]any{"alert_id": "a-1"})
		dead := p.waitStatus(id, "dead", 1, 10*time.Second)
		d := p.must(200, "GET", "/api/v1/deliveries/"+dead[0]["id"].(string), nil)
		wantErr := "HTTP 400: " + strings.SplitN(body, "\n", 2)[0]
		if d["last_error"] != wantErr {
			t.Errorf("last_error %q, want %q", d["last_error"], wantErr)
		}
		hist, _ := d["attempt_history"].([]any)
		if len(hist) != 1 {
			t.Fatalf("attempt history %v", d["attempt_history"])
		}
		a := hist[0].(map[string]any)
		if a["response"] != body[:1024] || a["response_type"] != "application/json" || a["error"] != wantErr {
			t.Errorf("attempt: response %d bytes (%v), error %v", len(a["response"].(string)), a["response_type"], a["error"])
		}
		raw, _ := json.Marshal(d)
		if strings.Contains(string(raw), "tok-never-recorded") {
			t.Error("a response header was recorded")
		}
	})
}
