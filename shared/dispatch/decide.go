package dispatch

import (
	"fmt"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
)

// Stage is the part of the engine that holds a delivery message.
type Stage int

// Stages.
const (
	// Ready: a worker took the message from a ready subject (hermod.dlv.* or
	// hermod.agentq.*), before its attempt or, with Facts.Result set, after it.
	Ready Stage = iota
	// Delayed: the scheduler took the message from hermod.delay.*.
	Delayed
	// Held: the releaser read the message from the held stream.
	Held
)

func (s Stage) String() string {
	switch s {
	case Ready:
		return "ready"
	case Delayed:
		return "delayed"
	default:
		return "held"
	}
}

// Lookup is what the webhook lookup found.
type Lookup int

// Lookup results.
const (
	Found   Lookup = iota // the webhook exists
	Gone                  // it was deleted
	Unknown               // the store could not be asked and the index does not know it
)

// Kind is what becomes of a delivery message.
type Kind int

// Decision kinds. Each names one way the plumbing settles the message; the
// comments say what it does, in order.
const (
	// Attempt: make the HTTP attempt now (renew the lease first when
	// Decision.RenewLease), then decide again with the result.
	Attempt Kind = iota
	// Deliver: the attempt succeeded. Publish the success outcome; ack once
	// the outcome's publish is acknowledged.
	Deliver
	// Retry: the attempt failed and the budget allows another. Publish the
	// failed outcome and a copy on the delay subject due at Decision.At with
	// one more failed attempt; ack once both are acknowledged.
	Retry
	// Dead: the delivery dies with Decision.Reason. Publish the dead outcome
	// and the dead letter; ack (or, held, delete) once both are acknowledged.
	Dead
	// Park: move the delivery out of the consumer's window without spending
	// an attempt: a copy on the delay subject due at Decision.At (Cause says
	// why); ack once it is acknowledged.
	Park
	// Hold: the webhook is paused. Move a copy to the held stream; ack.
	Hold
	// Release: due (scheduler) or resumed (releaser): republish on the
	// subject where the webhook's deliveries go now; ack (or delete).
	Release
	// Wait: the scheduler keeps the message until Decision.At (a delayed nak).
	Wait
	// Keep: the releaser leaves the message (and the later ones of its
	// webhook, which are newer) where it is.
	Keep
	// Drop: the webhook was deleted; ack (or purge) without an outcome.
	Drop
	// Reject: the message is unreadable or forged (its header names another
	// webhook than its subject); terminate it without an outcome.
	Reject
	// Leave: do nothing. Its lease expires and it is redelivered (it waited
	// out its lease before a worker was free, or this agent was refused).
	Leave
)

var kindNames = [...]string{"attempt", "deliver", "retry", "dead", "park", "hold", "release", "wait", "keep", "drop", "reject", "leave"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Cause says why a delivery was parked or left waiting (a metric label).
type Cause string

// Causes.
const (
	CauseSaturated Cause = "saturated" // the webhook's in-flight limit is reached here
	CauseBreaker   Cause = "breaker"   // its failure breaker is open
	CauseLookup    Cause = "lookup"    // the store could not be asked about it
	CauseRoute     Cause = "route"     // it is on the wrong subject for its webhook now
	CausePaused    Cause = "paused"    // the webhook is paused (Hold)
	CauseDue       Cause = "due"       // not due yet (Wait)
	CauseRenderer  Cause = "renderer"  // the template runner could not be started here
)

// Rules are the limits the decisions depend on.
type Rules struct {
	AcquireTTL    time.Duration // the lease (the consumer's ack wait)
	MaxHold       time.Duration // how long a paused webhook's delivery may be held
	MaxLostLeases int           // lost leases that make a delivery dead (abandoned)
	SaturatedWait time.Duration // the least a delivery to a saturated webhook is parked (its average attempt, up to MaxSaturatedWait)
	LookupWait    time.Duration // how long to wait when the store cannot be asked
}

// MaxSaturatedWait caps how long a delivery to a saturated webhook is
// parked (its average attempt duration, when longer than SaturatedWait).
const MaxSaturatedWait = 5 * time.Second

// DefaultRules are the engine's defaults.
var DefaultRules = Rules{AcquireTTL: 60 * time.Second, MaxHold: 7 * 24 * time.Hour, MaxLostLeases: 5,
	SaturatedWait: 100 * time.Millisecond, LookupWait: time.Second}

// withDefaults fills each zero limit from DefaultRules.
func (r Rules) withDefaults() Rules {
	def := DefaultRules
	if r.AcquireTTL <= 0 {
		r.AcquireTTL = def.AcquireTTL
	}
	if r.MaxHold <= 0 {
		r.MaxHold = def.MaxHold
	}
	if r.MaxLostLeases <= 0 {
		r.MaxLostLeases = def.MaxLostLeases
	}
	if r.SaturatedWait <= 0 {
		r.SaturatedWait = def.SaturatedWait
	}
	if r.LookupWait <= 0 {
		r.LookupWait = def.LookupWait
	}
	return r
}

// Result is what an HTTP attempt returned, as the decision needs it.
type Result struct {
	Class      delivery.Class
	StatusCode int
	RetryAfter time.Duration
}

// Facts are everything a decision depends on: the message, the webhook, the
// breaker and in-flight limit, the lease, the attempt's result and the clock.
type Facts struct {
	Stage Stage
	Now   time.Time
	Rules Rules

	// The message.
	Unreadable bool // its delivery headers could not be parsed
	Forged     bool // its Hermod-Webhook header names another webhook than its subject
	Meta       streams.Meta
	Delivered  uint64        // JetStream's delivery count of this copy (1 = first)
	Waited     time.Duration // Ready: since the message arrived from the server (its lease started then)
	Refused    bool          // Ready: this agent was refused by the control plane
	// Routed: Ready, the message is on the subject where its webhook's
	// deliveries go now.
	Routed bool

	// The webhook.
	Lookup      Lookup
	Enabled     bool
	MaxAttempts int // max(max_retries, 1)

	// Isolation, Ready only.
	BreakerOpenUntil time.Time // zero or past: closed
	Saturated        bool      // the webhook's in-flight limit is reached in this process
	// SlotLatency: Saturated, the webhook's expected attempt duration here
	// (Isolation.AttemptEstimate: its average, or how long no slot came
	// free when that is longer; 0: none known); a slot is not expected
	// back sooner.
	SlotLatency time.Duration
	// RenderErr: Ready, the webhook's format could not render the event
	// (found when the attempt was about to be made). RendererDown: the
	// template runner could not render on this host (it could not start or
	// answer, or the host gave the render no CPU time): not the format's
	// failure.
	RenderErr    string
	RendererDown bool

	// Result is the attempt's result; nil before the attempt.
	Result *Result
	Jitter float64 // in [-1, 1], spreads retries
}

// Decision is what becomes of a delivery message.
type Decision struct {
	Kind Kind
	// At: when a Park, Retry or Wait copy is due.
	At time.Time
	// Reason: why a Dead delivery died.
	Reason streams.Reason
	// Error: a Dead delivery's error when no attempt explains it.
	Error string
	// Cause: why a Park, Hold or Wait.
	Cause Cause
	// Lost: leases lost so far, carried into the next copy.
	Lost int
	// Failed: failed attempts in this epoch after this decision (a Retry's
	// copy carries it).
	Failed int
	// RenewLease: renew the lease before carrying the decision out (an
	// attempt, or a move, of a message that waited over half its lease).
	RenewLease bool
}

// Decide is the one function that says what becomes of a delivery message.
// It is pure: the plumbing gathers the facts, calls it, and carries the
// decision out (docs/architecture.md, "The delivery state machine").
func Decide(f Facts) Decision {
	f.Rules = f.Rules.withDefaults()
	switch {
	case f.Stage == Ready && f.Refused:
		return Decision{Kind: Leave}
	case f.Stage == Ready && f.Result == nil && f.Waited > f.Rules.AcquireTTL*9/10:
		// Its lease is (nearly) over: another copy is, or will be,
		// redelivered; an attempt now could run beside it.
		return Decision{Kind: Leave}
	case f.Unreadable, f.Forged:
		return Decision{Kind: Reject}
	}
	switch f.Stage {
	case Ready:
		if f.Result != nil {
			return afterAttempt(f)
		}
		return beforeAttempt(f)
	case Delayed:
		return delayed(f)
	default:
		return held(f)
	}
}

// lost is the number of leases lost so far: those recorded on earlier
// copies plus this copy's redeliveries.
func lost(f Facts) int {
	n := f.Meta.Lost
	if f.Delivered > 1 {
		n += int(f.Delivered - 1)
	}
	return n
}

func beforeAttempt(f Facts) Decision {
	d := beforeAttemptKind(f)
	switch d.Kind {
	case Attempt, Park, Hold, Dead:
		// It waited over half its lease: renewed before anything that
		// publishes, so the lease outlasts the attempt or the move.
		d.RenewLease = f.Waited > f.Rules.AcquireTTL/2
	}
	return d
}

func beforeAttemptKind(f Facts) Decision {
	l := lost(f)
	switch {
	case f.Lookup == Unknown:
		return Decision{Kind: Park, At: f.Now.Add(f.Rules.LookupWait), Cause: CauseLookup, Lost: l, Failed: f.Meta.Attempts}
	case f.Lookup == Gone:
		return Decision{Kind: Drop}
	case l >= f.Rules.MaxLostLeases:
		return Decision{Kind: Dead, Reason: streams.ReasonAbandoned, Lost: l, Failed: f.Meta.Attempts,
			Error: fmt.Sprintf("lease expired %d times without an outcome", l)}
	case !f.Enabled:
		return Decision{Kind: Hold, Cause: CausePaused, Lost: l, Failed: f.Meta.Attempts}
	case !f.Routed:
		return Decision{Kind: Park, At: f.Now, Cause: CauseRoute, Lost: l, Failed: f.Meta.Attempts}
	case f.Now.Before(f.BreakerOpenUntil) && parkedTooLong(f):
		// An endpoint that keeps failing keeps its breaker open, and its
		// deliveries spend no attempt while parked: without this limit they
		// would pile up on the delay subject for as long as it fails.
		return Decision{Kind: Dead, Reason: streams.ReasonExpired, Lost: l, Failed: f.Meta.Attempts,
			Error: "its webhook's failure breaker was still open HERMOD_MAX_HOLD (" + f.Rules.MaxHold.String() + ") after it was created"}
	case f.Now.Before(f.BreakerOpenUntil):
		return Decision{Kind: Park, At: f.BreakerOpenUntil, Cause: CauseBreaker, Lost: l, Failed: f.Meta.Attempts}
	case f.Saturated:
		// Back when a slot may be free: after the webhook's average attempt
		// (within SaturatedWait and MaxSaturatedWait), so a slow endpoint's
		// queue does not cycle through the delay subject every 100 ms.
		wait := min(max(f.SlotLatency, f.Rules.SaturatedWait), max(MaxSaturatedWait, f.Rules.SaturatedWait))
		return Decision{Kind: Park, At: f.Now.Add(wait), Cause: CauseSaturated, Lost: l, Failed: f.Meta.Attempts}
	case f.RendererDown:
		return Decision{Kind: Park, At: f.Now.Add(f.Rules.LookupWait), Cause: CauseRenderer, Lost: l, Failed: f.Meta.Attempts}
	case f.RenderErr != "":
		return Decision{Kind: Dead, Reason: streams.ReasonUnrenderable, Lost: l, Failed: f.Meta.Attempts, Error: f.RenderErr}
	}
	return Decision{Kind: Attempt, Lost: l, Failed: f.Meta.Attempts}
}

// parkedTooLong says whether a delivery is older than Rules.MaxHold, counted
// from its creation. A delivery an operator retried by hand (epoch above 0)
// keeps its first creation time, so it is not counted: it would die at once.
func parkedTooLong(f Facts) bool {
	return f.Meta.Epoch == 0 && f.Meta.CreatedAt != 0 && f.Now.Sub(time.UnixMilli(f.Meta.CreatedAt)) > f.Rules.MaxHold
}

func afterAttempt(f Facts) Decision {
	r := f.Result
	l := lost(f)
	failed := f.Meta.Attempts
	if r.Class != delivery.Success {
		failed++
	}
	switch {
	case r.Class == delivery.Success:
		return Decision{Kind: Deliver, Lost: l, Failed: failed}
	case r.Class == delivery.Terminal:
		return Decision{Kind: Dead, Reason: streams.ReasonTerminal, Lost: l, Failed: failed}
	case failed >= max(f.MaxAttempts, 1):
		return Decision{Kind: Dead, Reason: streams.ReasonExhausted, Lost: l, Failed: failed}
	}
	wait := delivery.Backoff(failed, f.Jitter)
	if r.RetryAfter > 0 && (r.StatusCode == 429 || r.StatusCode == 503) {
		wait = min(r.RetryAfter, delivery.MaxRetryAfter)
	}
	return Decision{Kind: Retry, At: f.Now.Add(wait), Lost: l, Failed: failed}
}

func delayed(f Facts) Decision {
	if due := time.UnixMilli(f.Meta.Due); f.Meta.Due != 0 && f.Now.Before(due) {
		return Decision{Kind: Wait, At: due, Cause: CauseDue}
	}
	switch f.Lookup {
	case Unknown:
		return Decision{Kind: Wait, At: f.Now.Add(f.Rules.LookupWait), Cause: CauseLookup}
	case Gone:
		return Decision{Kind: Drop}
	}
	if !f.Enabled {
		return Decision{Kind: Hold, Cause: CausePaused, Lost: f.Meta.Lost, Failed: f.Meta.Attempts}
	}
	return Decision{Kind: Release, Lost: f.Meta.Lost, Failed: f.Meta.Attempts}
}

func held(f Facts) Decision {
	switch f.Lookup {
	case Unknown:
		return Decision{Kind: Keep, Cause: CauseLookup}
	case Gone:
		return Decision{Kind: Drop}
	}
	if f.Enabled {
		return Decision{Kind: Release, Lost: f.Meta.Lost, Failed: f.Meta.Attempts}
	}
	if f.Meta.HeldSince == 0 || f.Now.Sub(time.UnixMilli(f.Meta.HeldSince)) < f.Rules.MaxHold {
		return Decision{Kind: Keep, Cause: CausePaused}
	}
	return Decision{Kind: Dead, Reason: streams.ReasonExpired, Lost: f.Meta.Lost, Failed: f.Meta.Attempts,
		Error: "held longer than HERMOD_MAX_HOLD (" + f.Rules.MaxHold.String() + ") while paused"}
}
