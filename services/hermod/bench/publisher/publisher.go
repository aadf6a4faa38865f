// Package publisher is the external benchmark's event source: it sends
// events by HTTP ingest (POST /api/v1/events) over several connections or
// straight to JetStream (as platform services do), as fast as possible or
// paced at a fixed rate, and reports the events accepted per second. Each
// event's data carries sent_ns, the unix nanoseconds it was due to be sent,
// from which the receiver measures latency.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Modes of sending.
const (
	ModeHTTP      = "http"
	ModeJetStream = "jetstream"
)

// Options say what to send and how.
type Options struct {
	Mode      string
	EventType string
	Events    int
	// IDPrefix + sequence number is each event's id (its Nats-Msg-Id).
	IDPrefix string
	// Rate is events per second; 0 sends as fast as possible.
	Rate float64
	// APIURL and AdminKey for ModeHTTP; Conns requests at once.
	APIURL   string
	AdminKey string
	Conns    int
	// NATSURL for ModeJetStream.
	NATSURL string
}

// Result is what a run achieved.
type Result struct {
	Events     int     `json:"events"`
	Accepted   int     `json:"accepted"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	// PerSecond is accepted events per second, from the first send to the
	// last acceptance.
	PerSecond float64 `json:"events_per_s"`
}

// slot is one event to send: its sequence number and, when paced, the
// time it was due (its send time); zero when sent as fast as possible.
type slot struct {
	seq int
	due time.Time
}

// sender sends one event; sentNS goes into its data.
type sender interface {
	send(ctx context.Context, id string, sentNS int64) error
	// finish waits for what is still outstanding and reports its errors.
	finish(ctx context.Context) []error
	close()
}

// Run sends o.Events events and reports the result. It returns an error
// only when it cannot start (bad options, no connection); failed sends are
// counted in the result, and events left unsent when ctx ends are neither
// accepted nor errors.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Events < 0 || o.Rate < 0 || o.EventType == "" {
		return Result{}, errors.New("publisher: events and rate must be >= 0, and an event type given")
	}
	var (
		s       sender
		workers = 1
		err     error
	)
	switch o.Mode {
	case ModeHTTP:
		if o.APIURL == "" || o.AdminKey == "" {
			return Result{}, errors.New("publisher: http mode needs the API URL and an admin key")
		}
		workers = max(o.Conns, 1)
		s = newHTTPSender(o, workers)
	case ModeJetStream:
		if s, err = newJetStreamSender(o); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, fmt.Errorf("publisher: unknown mode %q (http or jetstream)", o.Mode)
	}
	defer s.close()

	res := Result{Events: o.Events}
	var (
		mu        sync.Mutex
		attempted atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if res.Errors++; res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	begin := time.Now()
	slots := schedule(ctx, begin, o.Events, o.Rate)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sl := range slots {
				sent := sl.due
				if sent.IsZero() {
					sent = time.Now()
				}
				attempted.Add(1)
				if err := s.send(ctx, o.IDPrefix+strconv.Itoa(sl.seq), sent.UnixNano()); err != nil {
					fail(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range s.finish(ctx) {
		fail(err)
	}
	res.Seconds = time.Since(begin).Seconds()
	res.Accepted = int(attempted.Load()) - res.Errors
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Accepted) / res.Seconds
	}
	return res, nil
}

// schedule hands out n slots: at once when rate is 0, else each at
// begin + seq/rate (a late slot keeps its due time, so a stalled sender
// shows as latency rather than hiding it).
func schedule(ctx context.Context, begin time.Time, n int, rate float64) <-chan slot {
	out := make(chan slot)
	go func() {
		defer close(out)
		for seq := range n {
			var due time.Time
			if rate > 0 {
				due = begin.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return
					}
				}
			}
			select {
			case out <- slot{seq: seq, due: due}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// eventData is the data of every event sent.
func eventData(sentNS int64) []byte {
	return fmt.Appendf(nil, `{"sent_ns":%d,"source":"bench-publisher"}`, sentNS)
}
