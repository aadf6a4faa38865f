package publisher

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/streams"
)

// ingest is a stand-in for POST /api/v1/events: it records each event and
// refuses the one with id "bad".
type ingest struct {
	mu     sync.Mutex
	events map[string]int64 // id -> data.sent_ns
	auth   []string
}

func (g *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
		Data      struct {
			SentNS int64 `json:"sent_ns"`
		} `json:"data"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &ev); err != nil || r.URL.Path != "/api/v1/events" || ev.EventType != "alert.triggered" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.events[ev.ID] = ev.Data.SentNS
	g.auth = append(g.auth, r.Header.Get("Authorization"))
	g.mu.Unlock()
	if ev.ID == "ev-3" {
		http.Error(w, "no", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func TestHTTPPacedSendsEveryEventWithItsDueTime(t *testing.T) {
	g := &ingest{events: map[string]int64{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	begin := time.Now()
	res, err := Run(context.Background(), Options{Mode: ModeHTTP, EventType: "alert.triggered", Events: 10, IDPrefix: "ev-",
		Rate: 100, APIURL: srv.URL, AdminKey: "k-0123456789abcdef", Conns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 10 || res.Accepted != 9 || res.Errors != 1 || res.FirstError == "" {
		t.Errorf("result %+v", res)
	}
	if len(g.events) != 10 {
		t.Fatalf("%d events arrived", len(g.events))
	}
	// Paced at 100/s: event n was due n*10ms after the start, and carries that time.
	first, last := time.Unix(0, g.events["ev-0"]), time.Unix(0, g.events["ev-9"])
	if gap := last.Sub(first); gap < 89*time.Millisecond || gap > 91*time.Millisecond {
		t.Errorf("due times of the first and last event %s apart, want 90ms", gap)
	}
	if first.Before(begin.Add(-time.Millisecond)) {
		t.Errorf("first due time before the run began")
	}
	for _, a := range g.auth {
		if a != "Bearer k-0123456789abcdef" {
			t.Fatalf("authorization %q", a)
		}
	}
}

func TestJetStreamPublishesEnvelopesOnTheEventSubject(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := streams.EnsureStreams(ctx, js, streams.Settings{Subjects: catalog.New(catalog.Default).StreamSubjects()}); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Options{Mode: ModeJetStream, EventType: "deployment.applied", Events: 500, IDPrefix: "js-", NATSURL: ns.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 500 || res.Errors != 0 || res.PerSecond <= 0 {
		t.Errorf("result %+v", res)
	}
	st, err := js.Stream(ctx, streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs != 500 {
		t.Errorf("%d events stored, want 500", info.State.Msgs)
	}
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := matching.ParseEnvelope(raw.Data)
	if err != nil || env.EventType != "deployment.applied" || raw.Header.Get(streams.HdrMsgID) != env.ID {
		t.Errorf("stored %s %v (%v)", raw.Data, raw.Header, err)
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{Mode: "smoke", EventType: "x", Events: 1}, {Mode: ModeHTTP, EventType: "x", Events: 1},
		{Mode: ModeJetStream, EventType: "x", Events: 1}, {Mode: ModeHTTP, Events: 1, APIURL: "http://127.0.0.1:1", AdminKey: "k"}} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
