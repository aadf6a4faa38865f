package receiver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// Path prefixes the receiver answers, as the first segment of a webhook's
// URL path: /fast/... at once with 200, /slow/... with 200 after the slow
// delay, /fail/... at once with 500.
const (
	Fast = "fast"
	Slow = "slow"
	Fail = "fail"
)

// maxBody is the most of a request body read (Hermod's events are far smaller).
const maxBody = 1 << 20

// Handler answers deliveries and serves the tally: GET /counts (Counts by
// prefix, cheap enough to poll), GET /stats (Stats by prefix), with
// Paths, GET /paths (Counts by whole path: one webhook's deliveries when
// each webhook has its own URL; and by path and event type, under
// "<path>?type=<event_type>") and, with Inflight, GET /inflight
// (Concurrency by prefix: requests open now and at most).
type Handler struct {
	Tally *Tally
	// Paths, when set, tallies the same requests by their whole path, and
	// by path and event type.
	Paths *Tally
	// Inflight, when set, counts the requests open at once by prefix.
	Inflight *Inflight
	// SlowDelay is how long /slow/... waits before answering.
	SlowDelay time.Duration
}

// event is the part of a delivered event the receiver reads: the send
// time the publisher put into its data.
type event struct {
	EventType string `json:"event_type"`
	Data      struct {
		SentNS int64 `json:"sent_ns"`
	} `json:"data"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	switch r.URL.Path {
	case "/counts":
		writeJSON(w, h.Tally.Counts())
		return
	case "/stats":
		writeJSON(w, h.Tally.Stats())
		return
	case "/paths":
		if h.Paths == nil {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, h.Paths.Counts())
		return
	case "/inflight":
		if h.Inflight == nil {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, h.Inflight.Counts())
		return
	}
	prefix, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if prefix != Fast && prefix != Slow && prefix != Fail {
		http.NotFound(w, r)
		return
	}
	if h.Inflight != nil {
		defer h.Inflight.Enter(prefix)()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var ev event
	_ = json.Unmarshal(body, &ev) // no send time: counted as such, no latency
	h.Tally.Record(prefix, r.Header.Get("webhook-id"), arrived, ev.Data.SentNS)
	if h.Paths != nil {
		h.Paths.Record(r.URL.Path, r.Header.Get("webhook-id"), arrived, ev.Data.SentNS)
		h.Paths.Record(r.URL.Path+"?type="+ev.EventType, r.Header.Get("webhook-id"), arrived, ev.Data.SentNS)
	}
	switch prefix {
	case Slow:
		t := time.NewTimer(h.SlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	case Fail:
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
