//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
)

// eventType is the type of every event the suite sends.
const eventType = "deployment.applied"

// ingest posts events to the API (POST /api/v1/events), paced, several at
// once, and posts an event again until it is answered 202: an event the
// API refused or never answered (it was down) is sent again, under the
// same id, which the API's JetStream deduplicates. So every event ends up
// accepted, and every accepted event must be delivered.
type ingest struct {
	events   int
	accepted atomic.Int64 // events answered 202
	retried  atomic.Int64 // events that needed more than one request
	dupes    atomic.Int64 // 202 answers with duplicate: true (a request the API had published before it failed)
	mu       sync.Mutex
	lastErr  string
	failed   []string // events not accepted before the deadline
	done     chan struct{}
	cancel   context.CancelFunc
}

// startIngest sends events with ids prefix-<n> at rate events/s through
// conns connections, in the background; shape gives each its type and
// labels (nil: eventType, no labels).
func startIngest(f *fleet.Fleet, prefix string, events int, rate float64, conns int,
	shape func(seq int) (string, map[string]string)) *ingest {
	if shape == nil {
		shape = func(int) (string, map[string]string) { return eventType, nil }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	in := &ingest{events: events, done: make(chan struct{}), cancel: cancel}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	work := make(chan int)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range work {
				typ, labels := shape(seq)
				in.send(ctx, hc, f.APIURL, prefix+"-"+strconv.Itoa(seq), typ, labels)
			}
		}()
	}
	go func() {
		start := time.Now()
		for seq := range events {
			if due := start.Add(time.Duration(float64(seq) / rate * float64(time.Second))); time.Until(due) > 0 {
				t := time.NewTimer(time.Until(due))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			select {
			case work <- seq:
			case <-ctx.Done():
				in.fail(prefix + "-" + strconv.Itoa(seq))
			}
		}
		close(work)
		wg.Wait()
		hc.CloseIdleConnections()
		close(in.done)
	}()
	return in
}

// send posts one event until it is answered 202 or ctx ends.
func (in *ingest) send(ctx context.Context, hc *http.Client, api, id, typ string, labels map[string]string) {
	ev := map[string]any{"id": id, "event_type": typ,
		"data": map[string]any{"sent_ns": time.Now().UnixNano(), "source": "hermod-faults"}}
	if labels != nil {
		ev["labels"] = labels
	}
	body, _ := json.Marshal(ev)
	for try := 0; ; try++ {
		dup, err := post(ctx, hc, api, body)
		if err == nil {
			in.accepted.Add(1)
			if try > 0 {
				in.retried.Add(1)
			}
			if dup {
				in.dupes.Add(1)
			}
			return
		}
		in.mu.Lock()
		in.lastErr = err.Error()
		in.mu.Unlock()
		t := time.NewTimer(50 * time.Millisecond) // poll the API back
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			in.fail(id)
			return
		}
	}
}

func post(ctx context.Context, hc *http.Client, api string, body []byte) (duplicate bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+fleet.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return false, fmt.Errorf("ingest: %d %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	var a struct {
		Duplicate bool `json:"duplicate"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return false, fmt.Errorf("ingest answer %q: %w", answer, err)
	}
	return a.Duplicate, nil
}

func (in *ingest) fail(id string) {
	in.mu.Lock()
	in.failed = append(in.failed, id)
	in.mu.Unlock()
}

// wait waits until every event was sent and returns an error naming the
// events that were never accepted.
func (in *ingest) wait() error {
	<-in.done
	in.cancel()
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.failed) > 0 {
		return fmt.Errorf("%d of %d events never accepted (e.g. %s; last error: %s)", len(in.failed), in.events, in.failed[0], in.lastErr)
	}
	return nil
}
