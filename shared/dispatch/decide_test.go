package dispatch

import (
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// ready is a ready delivery of an enabled webhook with a budget of 5
// attempts, on its right subject, with nothing in the way.
func ready() Facts {
	return Facts{Stage: Ready, Now: t0, Rules: DefaultRules, Lookup: Found, Enabled: true, MaxAttempts: 5,
		Routed: true, Delivered: 1, Meta: streams.Meta{DeliveryID: "d1", WebhookID: "w1"}}
}

func answered(class delivery.Class, status int) func(*Facts) {
	return func(f *Facts) { f.Result = &Result{Class: class, StatusCode: status} }
}

func failedBefore(n int) func(*Facts) { return func(f *Facts) { f.Meta.Attempts = n } }

// Every row of the delivery state machine (docs/architecture.md).
func TestDecide(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name  string
		base  func() Facts
		set   []func(*Facts)
		want  Decision
		check func(t *testing.T, d Decision) // extra checks, when the row needs them
	}{
		// Before the attempt.
		{name: "ready: attempt", base: ready, want: Decision{Kind: Attempt}},
		{name: "ready: carries failed attempts", base: ready, set: []func(*Facts){failedBefore(3)},
			want: Decision{Kind: Attempt, Failed: 3}},
		{name: "refused agent: leave", base: ready, set: []func(*Facts){func(f *Facts) { f.Refused = true }},
			want: Decision{Kind: Leave}},
		{name: "unreadable: reject", base: ready, set: []func(*Facts){func(f *Facts) { f.Unreadable = true }},
			want: Decision{Kind: Reject}},
		{name: "forged subject: reject", base: ready, set: []func(*Facts){func(f *Facts) { f.Forged = true }},
			want: Decision{Kind: Reject}},
		{name: "waited 40% of the lease: attempt", base: ready, set: []func(*Facts){func(f *Facts) { f.Waited = 24 * s }},
			want: Decision{Kind: Attempt}},
		{name: "waited 60% of the lease: renew, attempt", base: ready, set: []func(*Facts){func(f *Facts) { f.Waited = 36 * s }},
			want: Decision{Kind: Attempt, RenewLease: true}},
		{name: "waited 95% of the lease: leave to redelivery", base: ready, set: []func(*Facts){func(f *Facts) { f.Waited = 57 * s }},
			want: Decision{Kind: Leave}},
		{name: "store unreachable: park 1 s", base: ready, set: []func(*Facts){func(f *Facts) { f.Lookup = Unknown }},
			want: Decision{Kind: Park, At: t0.Add(s), Cause: CauseLookup}},
		{name: "webhook deleted: drop", base: ready, set: []func(*Facts){func(f *Facts) { f.Lookup = Gone }},
			want: Decision{Kind: Drop}},
		{name: "deleted wins over abandoned", base: ready, set: []func(*Facts){func(f *Facts) { f.Lookup = Gone; f.Delivered = 9 }},
			want: Decision{Kind: Drop}},
		{name: "4 leases lost: attempt", base: ready, set: []func(*Facts){func(f *Facts) { f.Meta.Lost = 2; f.Delivered = 3 }},
			want: Decision{Kind: Attempt, Lost: 4}},
		{name: "5 leases lost: dead abandoned", base: ready, set: []func(*Facts){failedBefore(2), func(f *Facts) { f.Meta.Lost = 2; f.Delivered = 4 }},
			want: Decision{Kind: Dead, Reason: streams.ReasonAbandoned, Lost: 5, Failed: 2,
				Error: "lease expired 5 times without an outcome"}},
		{name: "abandoned wins over paused", base: ready, set: []func(*Facts){func(f *Facts) { f.Delivered = 6; f.Enabled = false }},
			want: Decision{Kind: Dead, Reason: streams.ReasonAbandoned, Lost: 5, Error: "lease expired 5 times without an outcome"}},
		{name: "paused: hold", base: ready, set: []func(*Facts){failedBefore(1), func(f *Facts) { f.Enabled = false; f.Delivered = 2 }},
			want: Decision{Kind: Hold, Cause: CausePaused, Lost: 1, Failed: 1}},
		{name: "wrong subject: park now (reroute)", base: ready, set: []func(*Facts){func(f *Facts) { f.Routed = false }},
			want: Decision{Kind: Park, At: t0, Cause: CauseRoute}},
		{name: "breaker open: park until it closes", base: ready, set: []func(*Facts){func(f *Facts) { f.BreakerOpenUntil = t0.Add(20 * s) }},
			want: Decision{Kind: Park, At: t0.Add(20 * s), Cause: CauseBreaker}},
		{name: "breaker open, created within the max hold: park", base: ready,
			set: []func(*Facts){func(f *Facts) {
				f.BreakerOpenUntil = t0.Add(s)
				f.Meta.CreatedAt = t0.Add(-6 * 24 * time.Hour).UnixMilli()
			}},
			want: Decision{Kind: Park, At: t0.Add(s), Cause: CauseBreaker}},
		{name: "breaker open, created past the max hold: dead expired", base: ready,
			set: []func(*Facts){failedBefore(1), func(f *Facts) {
				f.BreakerOpenUntil = t0.Add(s)
				f.Meta.CreatedAt = t0.Add(-8 * 24 * time.Hour).UnixMilli()
			}},
			want: Decision{Kind: Dead, Reason: streams.ReasonExpired, Failed: 1}, check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Error, "HERMOD_MAX_HOLD (168h0m0s)") {
					t.Errorf("error %q does not name the limit", d.Error)
				}
			}},
		{name: "breaker open, retried by hand, created past the max hold: park", base: ready,
			set: []func(*Facts){func(f *Facts) {
				f.BreakerOpenUntil = t0.Add(s)
				f.Meta.Epoch = 1
				f.Meta.CreatedAt = t0.Add(-8 * 24 * time.Hour).UnixMilli()
			}},
			want: Decision{Kind: Park, At: t0.Add(s), Cause: CauseBreaker}},
		{name: "breaker closed, created past the max hold: attempt", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Meta.CreatedAt = t0.Add(-8 * 24 * time.Hour).UnixMilli() }},
			want: Decision{Kind: Attempt}},
		{name: "breaker closed in the past: attempt", base: ready, set: []func(*Facts){func(f *Facts) { f.BreakerOpenUntil = t0.Add(-s) }},
			want: Decision{Kind: Attempt}},
		{name: "breaker wins over saturation", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.BreakerOpenUntil = t0.Add(s); f.Saturated = true }},
			want: Decision{Kind: Park, At: t0.Add(s), Cause: CauseBreaker}},
		{name: "waited 60% of the lease, paused: renew, hold", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Waited = 36 * s; f.Enabled = false }},
			want: Decision{Kind: Hold, Cause: CausePaused, RenewLease: true}},
		{name: "waited 60% of the lease, deleted: drop without renewing", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Waited = 36 * s; f.Lookup = Gone }},
			want: Decision{Kind: Drop}},
		{name: "saturated: park 100 ms", base: ready, set: []func(*Facts){failedBefore(2), func(f *Facts) { f.Saturated = true }},
			want: Decision{Kind: Park, At: t0.Add(100 * time.Millisecond), Cause: CauseSaturated, Failed: 2}},
		{name: "saturated, a fast endpoint: park 100 ms", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Saturated, f.SlotLatency = true, 3*time.Millisecond }},
			want: Decision{Kind: Park, At: t0.Add(100 * time.Millisecond), Cause: CauseSaturated}},
		{name: "saturated, a slow endpoint: park for its average attempt", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Saturated, f.SlotLatency = true, 2*time.Second }},
			want: Decision{Kind: Park, At: t0.Add(2 * time.Second), Cause: CauseSaturated}},
		{name: "saturated, a very slow endpoint: park at most 5 s", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Saturated, f.SlotLatency = true, time.Minute }},
			want: Decision{Kind: Park, At: t0.Add(MaxSaturatedWait), Cause: CauseSaturated}},

		{name: "the format cannot render it: dead unrenderable", base: ready,
			set:  []func(*Facts){failedBefore(1), func(f *Facts) { f.RenderErr = "format template: template: produced no output" }},
			want: Decision{Kind: Dead, Reason: streams.ReasonUnrenderable, Failed: 1, Error: "format template: template: produced no output"}},
		{name: "the template runner cannot start: park 1 s", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.RendererDown = true }},
			want: Decision{Kind: Park, At: t0.Add(s), Cause: CauseRenderer}},
		{name: "paused wins over a render error (the operator may fix the template)", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.RenderErr = "x"; f.Enabled = false }},
			want: Decision{Kind: Hold, Cause: CausePaused}},

		// After the attempt.
		{name: "2xx: deliver", base: ready, set: []func(*Facts){answered(delivery.Success, 200)},
			want: Decision{Kind: Deliver}},
		{name: "2xx after failures: deliver", base: ready, set: []func(*Facts){failedBefore(4), answered(delivery.Success, 204)},
			want: Decision{Kind: Deliver, Failed: 4}},
		{name: "2xx ignores Retry-After", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Result = &Result{Class: delivery.Success, StatusCode: 200, RetryAfter: time.Minute} }},
			want: Decision{Kind: Deliver}},
		{name: "4xx: dead terminal", base: ready, set: []func(*Facts){answered(delivery.Terminal, 404)},
			want: Decision{Kind: Dead, Reason: streams.ReasonTerminal, Failed: 1}},
		{name: "terminal wins over budget left", base: ready, set: []func(*Facts){func(f *Facts) { f.MaxAttempts = 10 }, answered(delivery.Terminal, 422)},
			want: Decision{Kind: Dead, Reason: streams.ReasonTerminal, Failed: 1}},
		{name: "SSRF refusal (no status): dead terminal", base: ready, set: []func(*Facts){answered(delivery.Terminal, 0)},
			want: Decision{Kind: Dead, Reason: streams.ReasonTerminal, Failed: 1}},
		{name: "1st failure: retry in 2 s", base: ready, set: []func(*Facts){answered(delivery.Retryable, 500)},
			want: Decision{Kind: Retry, At: t0.Add(2 * s), Failed: 1}},
		{name: "2nd failure: retry in 4 s", base: ready, set: []func(*Facts){failedBefore(1), answered(delivery.Retryable, 502)},
			want: Decision{Kind: Retry, At: t0.Add(4 * s), Failed: 2}},
		{name: "4th failure (timeout): retry in 16 s", base: ready, set: []func(*Facts){failedBefore(3), answered(delivery.Retryable, 0)},
			want: Decision{Kind: Retry, At: t0.Add(16 * s), Failed: 4}},
		{name: "3xx retried like 5xx", base: ready, set: []func(*Facts){answered(delivery.Retryable, 302)},
			want: Decision{Kind: Retry, At: t0.Add(2 * s), Failed: 1}},
		{name: "jitter +1 is +10%", base: ready, set: []func(*Facts){failedBefore(2), answered(delivery.Retryable, 500), func(f *Facts) { f.Jitter = 1 }},
			want: Decision{Kind: Retry, At: t0.Add(8800 * time.Millisecond), Failed: 3}},
		{name: "jitter -1 is -10%", base: ready, set: []func(*Facts){failedBefore(2), answered(delivery.Retryable, 500), func(f *Facts) { f.Jitter = -1 }},
			want: Decision{Kind: Retry, At: t0.Add(7200 * time.Millisecond), Failed: 3}},
		{name: "5th of 5 failures: dead exhausted", base: ready, set: []func(*Facts){failedBefore(4), answered(delivery.Retryable, 500)},
			want: Decision{Kind: Dead, Reason: streams.ReasonExhausted, Failed: 5}},
		{name: "budget of 1 (max_retries 0 or 1): dead at the first failure", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.MaxAttempts = 1 }, answered(delivery.Retryable, 500)},
			want: Decision{Kind: Dead, Reason: streams.ReasonExhausted, Failed: 1}},
		{name: "budget of 0 counts as 1", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.MaxAttempts = 0 }, answered(delivery.Retryable, 500)},
			want: Decision{Kind: Dead, Reason: streams.ReasonExhausted, Failed: 1}},
		{name: "9th of 10 failures: retry in 512 s", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.MaxAttempts = 10 }, failedBefore(8), answered(delivery.Retryable, 500)},
			want: Decision{Kind: Retry, At: t0.Add(512 * s), Failed: 9}},
		{name: "429 honours Retry-After", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Result = &Result{Class: delivery.Retryable, StatusCode: 429, RetryAfter: 90 * s} }},
			want: Decision{Kind: Retry, At: t0.Add(90 * s), Failed: 1}},
		{name: "503 honours a Retry-After shorter than the backoff", base: ready,
			set:  []func(*Facts){failedBefore(3), func(f *Facts) { f.Result = &Result{Class: delivery.Retryable, StatusCode: 503, RetryAfter: s} }},
			want: Decision{Kind: Retry, At: t0.Add(s), Failed: 4}},
		{name: "Retry-After capped at 1 h", base: ready,
			set: []func(*Facts){func(f *Facts) {
				f.Result = &Result{Class: delivery.Retryable, StatusCode: 429, RetryAfter: 3 * time.Hour}
			}},
			want: Decision{Kind: Retry, At: t0.Add(time.Hour), Failed: 1}},
		{name: "500 ignores Retry-After", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Result = &Result{Class: delivery.Retryable, StatusCode: 500, RetryAfter: 30 * s} }},
			want: Decision{Kind: Retry, At: t0.Add(2 * s), Failed: 1}},
		{name: "Retry-After never extends the budget", base: ready,
			set:  []func(*Facts){failedBefore(4), func(f *Facts) { f.Result = &Result{Class: delivery.Retryable, StatusCode: 429, RetryAfter: 10 * s} }},
			want: Decision{Kind: Dead, Reason: streams.ReasonExhausted, Failed: 5}},
		{name: "retry carries the lost leases", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Meta.Lost = 1; f.Delivered = 2 }, answered(delivery.Retryable, 500)},
			want: Decision{Kind: Retry, At: t0.Add(2 * s), Lost: 2, Failed: 1}},
		{name: "an attempt that outlived its wait is still settled", base: ready,
			set:  []func(*Facts){func(f *Facts) { f.Waited = 59 * s }, answered(delivery.Success, 200)},
			want: Decision{Kind: Deliver}},

		// The scheduler.
		{name: "delayed, not due: wait until due", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Meta.Due = t0.Add(5 * s).UnixMilli() }},
			want: Decision{Kind: Wait, At: t0.Add(5 * s), Cause: CauseDue}},
		{name: "delayed, due: release", base: delayedFacts, set: []func(*Facts){failedBefore(2), func(f *Facts) { f.Meta.Lost = 1 }},
			want: Decision{Kind: Release, Lost: 1, Failed: 2}},
		{name: "delayed, due now exactly: release", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Meta.Due = t0.UnixMilli() }},
			want: Decision{Kind: Release}},
		{name: "delayed, store unreachable: wait 1 s", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Lookup = Unknown }},
			want: Decision{Kind: Wait, At: t0.Add(s), Cause: CauseLookup}},
		{name: "delayed, webhook deleted: drop", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Lookup = Gone }},
			want: Decision{Kind: Drop}},
		{name: "delayed, paused: hold", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Enabled = false }},
			want: Decision{Kind: Hold, Cause: CausePaused}},
		{name: "delayed, forged: reject", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Forged = true }},
			want: Decision{Kind: Reject}},
		{name: "delayed ignores the lease wait", base: delayedFacts, set: []func(*Facts){func(f *Facts) { f.Waited = time.Hour }},
			want: Decision{Kind: Release}},

		// The releaser.
		{name: "held, resumed: release", base: heldFacts, set: []func(*Facts){func(f *Facts) { f.Enabled = true }},
			want: Decision{Kind: Release}},
		{name: "held, still paused: keep", base: heldFacts, want: Decision{Kind: Keep, Cause: CausePaused}},
		{name: "held without a start time: keep", base: heldFacts, set: []func(*Facts){func(f *Facts) { f.Meta.HeldSince = 0 }},
			want: Decision{Kind: Keep, Cause: CausePaused}},
		{name: "held past the max hold: dead expired", base: heldFacts,
			set:  []func(*Facts){failedBefore(1), func(f *Facts) { f.Meta.HeldSince = t0.Add(-8 * 24 * time.Hour).UnixMilli() }},
			want: Decision{Kind: Dead, Reason: streams.ReasonExpired, Failed: 1}, check: func(t *testing.T, d Decision) {
				if !strings.Contains(d.Error, "HERMOD_MAX_HOLD (168h0m0s)") {
					t.Errorf("error %q does not name the limit", d.Error)
				}
			}},
		{name: "held, store unreachable: keep", base: heldFacts, set: []func(*Facts){func(f *Facts) { f.Lookup = Unknown }},
			want: Decision{Kind: Keep, Cause: CauseLookup}},
		{name: "held, webhook deleted: drop", base: heldFacts, set: []func(*Facts){func(f *Facts) { f.Lookup = Gone }},
			want: Decision{Kind: Drop}},
		{name: "held, unreadable: reject", base: heldFacts, set: []func(*Facts){func(f *Facts) { f.Unreadable = true }},
			want: Decision{Kind: Reject}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.base()
			for _, set := range c.set {
				set(&f)
			}
			got := Decide(f)
			if c.check != nil {
				c.check(t, got)
				got.Error, c.want.Error = "", ""
			}
			if got.At.Equal(c.want.At) {
				got.At = c.want.At // the same instant, whatever its location
			}
			if got != c.want {
				t.Errorf("Decide = %+v\n          want %+v", got, c.want)
			}
		})
	}
}

func delayedFacts() Facts {
	f := ready()
	f.Stage, f.Routed = Delayed, false
	return f
}

func heldFacts() Facts {
	f := ready()
	f.Stage, f.Routed, f.Enabled = Held, false, false
	f.Meta.HeldSince = t0.Add(-time.Hour).UnixMilli()
	return f
}

// Zero rules mean the defaults, each on its own, so a caller that sets only
// some still gets sane ones (not "every message waited too long", nor
// "every message lost its leases").
func TestDecideZeroRulesAreDefaults(t *testing.T) {
	f := ready()
	f.Rules = Rules{}
	f.Waited = 40 * time.Second
	if d := Decide(f); d.Kind != Attempt || !d.RenewLease {
		t.Errorf("Decide = %+v, want an attempt with a renewed lease (60 s default lease)", d)
	}
	f = ready()
	f.Rules = Rules{AcquireTTL: 10 * time.Second}
	if d := Decide(f); d.Kind != Attempt {
		t.Errorf("Decide with only a lease set = %+v, want an attempt (5 lost leases by default)", d)
	}
	f.Saturated = true
	if d := Decide(f); d.Kind != Park || !d.At.Equal(t0.Add(100*time.Millisecond)) {
		t.Errorf("Decide = %+v, want a park of the default 100 ms", d)
	}
}

func TestKindStrings(t *testing.T) {
	seen := map[string]bool{}
	for k := Attempt; k <= Leave; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "kind(") || seen[s] {
			t.Errorf("kind %d has name %q", int(k), s)
		}
		seen[s] = true
	}
	if s := Kind(99).String(); s != "kind(99)" {
		t.Errorf("unknown kind = %q", s)
	}
	for st, want := range map[Stage]string{Ready: "ready", Delayed: "delayed", Held: "held"} {
		if st.String() != want {
			t.Errorf("stage %d = %q, want %q", int(st), st.String(), want)
		}
	}
}
