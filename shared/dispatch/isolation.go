package dispatch

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hermodhq/hermod/shared/metrics"
)

// Isolation keeps one webhook from hurting the others, per process: a
// limit of attempts in flight per webhook (slots.go), a limit of the
// attempts to slow webhooks together (slowlane.go), and a failure breaker
// (breaker.go).
type Isolation struct {
	opts   IsolationOptions
	states sync.Map          // webhook id -> *webhookState
	m      *metrics.Delivery // the waits for a slot (set by NewWorker; nil: none)
	now    func() time.Time
	// The slow lane: its size (set by NewWorker; 0: none) and the units
	// held.
	slowCap  int32
	slowHeld atomic.Int32
}

// IsolationOptions are the per-webhook limits of one process (the
// services convert their envconfig.Isolation, which has the same fields).
type IsolationOptions struct {
	// Inflight is how many attempts to one webhook run at once (32 when
	// <= 0).
	Inflight int
	// SlotWait bounds how long a delivery waits here for one of its
	// webhook's slots before it is parked (0: never wait, park at once;
	// the services' default is DefaultSlotWait).
	SlotWait time.Duration
	// Threshold consecutive retryable failures (10 when <= 0) open the
	// breaker for Cooldown (30 s when <= 0).
	Threshold int
	Cooldown  time.Duration
}

// DefaultSlotWait is IsolationOptions.SlotWait's default.
const DefaultSlotWait = 250 * time.Millisecond

type webhookState struct {
	mu sync.Mutex
	// The slots (slots.go).
	inflight int
	waiters  []chan struct{} // FIFO; a released slot is handed to the first
	latency  time.Duration   // moving average of attempt durations (0: none yet)
	freed    time.Time       // when a slot last came free (or every slot was first taken)
	progress time.Time       // when an attempt last ended, or the first of those in flight began
	lane     int             // units of the slow lane its attempts hold
	// The breaker (breaker.go).
	failures  int
	openUntil time.Time
	reported  bool // an open breaker was reported and not yet its closing
}

// NewIsolation builds the per-webhook limits.
func NewIsolation(o IsolationOptions) *Isolation {
	if o.Inflight <= 0 {
		o.Inflight = 32
	}
	if o.Threshold <= 0 {
		o.Threshold = 10
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	return &Isolation{opts: o, now: time.Now}
}

func (is *Isolation) state(id string) *webhookState {
	if s, ok := is.states.Load(id); ok {
		return s.(*webhookState)
	}
	s, _ := is.states.LoadOrStore(id, &webhookState{})
	return s.(*webhookState)
}
