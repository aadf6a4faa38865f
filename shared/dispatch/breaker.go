package dispatch

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
)

// Isolation keeps one webhook from hurting the others, per process: a
// limit of attempts in flight per webhook, and a failure breaker.
//
// The breaker counts consecutive retryable failures; at the threshold it
// opens for the cooldown, after which one attempt is let through (half
// open): a success closes it, one more failure opens it again. Changes are
// reported (Record returns them) so the webhook shows as degraded while its
// breaker is open.
type Isolation struct {
	inflightLimit int
	threshold     int
	cooldown      time.Duration
	states        sync.Map // webhook id -> *webhookState
}

type webhookState struct {
	inflight  atomic.Int32
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	reported  bool // an open breaker was reported and not yet its closing
}

// NewIsolation builds the per-webhook limits: inflight attempts at once
// (32 when <= 0), threshold consecutive failures (10) open the breaker for
// cooldown (30 s).
func NewIsolation(inflight, threshold int, cooldown time.Duration) *Isolation {
	if inflight <= 0 {
		inflight = 32
	}
	if threshold <= 0 {
		threshold = 10
	}
	if cooldown <= 0 {
		cooldown = 30 * time.Second
	}
	return &Isolation{inflightLimit: inflight, threshold: threshold, cooldown: cooldown}
}

func (is *Isolation) state(id string) *webhookState {
	if s, ok := is.states.Load(id); ok {
		return s.(*webhookState)
	}
	s, _ := is.states.LoadOrStore(id, &webhookState{})
	return s.(*webhookState)
}

// OpenUntil is when webhook id's breaker closes again (zero: closed).
func (is *Isolation) OpenUntil(id string) time.Time {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.openUntil
}

// Full says whether every one of webhook id's in-flight slots is taken.
func (is *Isolation) Full(id string) bool {
	return int(is.state(id).inflight.Load()) >= is.inflightLimit
}

// Acquire takes one of webhook id's in-flight slots; false when they are
// all taken. Every true is followed by one Release.
func (is *Isolation) Acquire(id string) bool {
	st := is.state(id)
	if int(st.inflight.Add(1)) > is.inflightLimit {
		st.inflight.Add(-1)
		return false
	}
	return true
}

// Release gives back a slot taken by Acquire.
func (is *Isolation) Release(id string) { is.state(id).inflight.Add(-1) }

// Record feeds an attempt's class to webhook id's breaker at now; it
// returns the change to report (opened or closed), or nil.
func (is *Isolation) Record(id string, c delivery.Class, now time.Time) *streams.BreakerState {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	switch c {
	case delivery.Success:
		st.failures = 0
		st.openUntil = time.Time{}
		if st.reported {
			st.reported = false
			return &streams.BreakerState{V: streams.SchemaVersion, WebhookID: id, At: now.UnixMilli()}
		}
	case delivery.Retryable:
		st.failures++
		if st.failures >= is.threshold {
			st.openUntil = now.Add(is.cooldown)
			st.failures = is.threshold - 1 // half-open: one more failure reopens
			st.reported = true
			return &streams.BreakerState{V: streams.SchemaVersion, WebhookID: id,
				OpenUntil: st.openUntil.UnixMilli(), At: now.UnixMilli()}
		}
	}
	return nil
}
