package receiver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/signing"
)

// Checked verifies each delivery's signature, notes its sender, and passes
// the delivery on to the tally unchanged.
func TestCheckedVerifiesAndNotesSenders(t *testing.T) {
	secret, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := signing.Key(secret)
	h := &Handler{Tally: NewTally(), SlowDelay: time.Millisecond}
	c, err := NewChecked(h, secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	body := `{"id":"e1","event_type":"deployment.applied","data":{}}`
	post := func(path, id, sig string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", "1700000000")
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	good := signing.NewSigner(key).Sign("msg_1", 1700000000, []byte(body))
	post("/fast/a", "msg_1", good)
	post("/fast/a", "msg_2", good) // signed for another id
	resp, err := http.Get(srv.URL + "/checks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]Check
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if f := got["/fast/a"]; f.Requests != 2 || f.Distinct != 2 || f.Verified != 1 || f.Unverified != 1 || f.Sources["127.0.0.1"] != 2 {
		t.Errorf("checks %+v", got)
	}
	if n := h.Tally.Counts()[Fast].Distinct; n != 2 {
		t.Errorf("the tally counted %d distinct deliveries, want 2", n)
	}
	if _, err := NewChecked(h, "not-a-secret"); err == nil {
		t.Error("a bad secret was accepted")
	}
}
