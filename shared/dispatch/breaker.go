package dispatch

import (
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
)

// The failure breaker counts a webhook's consecutive retryable failures;
// at the threshold it opens for the cooldown, after which one attempt is
// let through (half open): a success closes it, one more failure opens it
// again. Changes are reported (Record returns them) so the webhook shows as
// degraded while its breaker is open.

// OpenUntil is when webhook id's breaker closes again (zero: closed).
func (is *Isolation) OpenUntil(id string) time.Time {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.openUntil
}

// Record feeds an attempt's class and duration to webhook id's breaker and
// latency at now; it returns the breaker change to report (opened or
// closed), or nil.
func (is *Isolation) Record(id string, c delivery.Class, took time.Duration, now time.Time) *streams.BreakerState {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.observe(took)
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
		if st.failures >= is.opts.Threshold {
			st.openUntil = now.Add(is.opts.Cooldown)
			st.failures = is.opts.Threshold - 1 // half-open: one more failure reopens
			st.reported = true
			return &streams.BreakerState{V: streams.SchemaVersion, WebhookID: id,
				OpenUntil: st.openUntil.UnixMilli(), At: now.UnixMilli()}
		}
	}
	return nil
}
