package opsevents

import (
	"strconv"
	"time"
)

// Policy bounds operational events.
type Policy struct {
	// Cooldown (HERMOD_OPS_EVENTS_COOLDOWN, default 5 min): a webhook is
	// told degraded, and an agent inactive, at most once per Cooldown; it
	// is also the window of DeadLimit.
	Cooldown time.Duration
	// DeadLimit (HERMOD_OPS_EVENTS_DEAD_LIMIT, default 10) is how many
	// hermod.delivery.dead events one webhook may produce per Cooldown
	// window; the deaths over it are counted in the next one's Suppressed.
	DeadLimit int
	// DeadMarkTTL is how long a death stays marked as counted (a batch
	// recorded again within it counts it once): twice Cooldown when zero;
	// the router keeps it within HERMOD_RETENTION, so nothing of a delivery
	// outlives its record.
	DeadMarkTTL time.Duration
}

// DefaultPolicy is the policy of the defaults.
var DefaultPolicy = Policy{Cooldown: 5 * time.Minute, DeadLimit: 10, DeadMarkTTL: 10 * time.Minute}

func (p Policy) withDefaults() Policy {
	if p.Cooldown <= 0 {
		p.Cooldown = DefaultPolicy.Cooldown
	}
	if p.DeadLimit <= 0 {
		p.DeadLimit = DefaultPolicy.DeadLimit
	}
	if p.DeadMarkTTL <= 0 {
		p.DeadMarkTTL = 2 * p.Cooldown
	}
	return p
}

// WebhookState is what operational events last told about a webhook,
// stored in Redis (store.OpsWebhookKey). Times are unix ms.
type WebhookState struct {
	// Degraded: the last status told is degraded (else active).
	Degraded bool `json:"degraded,omitempty"`
	// DegradedAt is when it was last told degraded (the cooldown runs
	// from it).
	DegradedAt int64 `json:"degraded_at,omitempty"`
	// DeadWindow is when the current delivery.dead window started,
	// DeadCount how many were told in it, DeadWithheld how many died
	// untold since the last one told.
	DeadWindow   int64 `json:"dead_window,omitempty"`
	DeadCount    int   `json:"dead_count,omitempty"`
	DeadWithheld int   `json:"dead_withheld,omitempty"`
}

// Transition is a status change to tell (or not).
type Transition int

const (
	// None: nothing to tell.
	None Transition = iota
	// Degrade: tell the webhook degraded (or the agent inactive).
	Degrade
	// Recover: tell it recovered (or the agent active again).
	Recover
	// Coalesced: it turned degraded (inactive) within the cooldown of the
	// last time it was told so: not told, and the state stays; a later
	// observation after the cooldown tells it if it still holds.
	Coalesced
)

// DeadVerdict says whether one death is told, and the count of untold
// deaths its event carries.
type DeadVerdict struct {
	Tell       bool
	Suppressed int
}

// WebhookDecision is what DecideWebhook says of one observation.
type WebhookDecision struct {
	Transition Transition
	// DegradedSince is when the webhook was told degraded, for a Recover.
	DegradedSince int64
	Dead          []DeadVerdict // one per death observed, in order
}

// DecideWebhook is the pure rule: given what was told (st), whether the
// webhook is degraded now and how many of its deliveries just died, at
// now, it returns the state to store and what to tell. changed says
// whether the state differs from st (only then is it written).
//
//   - degraded and told active: Degrade, unless told degraded less than
//     the cooldown ago (Coalesced: stays told active);
//   - active and told degraded: Recover (a recovery is told only after a
//     degradation was, so at most one of each per cooldown);
//   - each death: told while fewer than DeadLimit were told in the window
//     (a window starts at the first death after the previous one ended),
//     carrying the count of those withheld since the last one told.
func (p Policy) DecideWebhook(st WebhookState, degraded bool, deaths int, now time.Time) (next WebhookState, d WebhookDecision, changed bool) {
	p = p.withDefaults()
	ms := now.UnixMilli()
	next = st
	switch {
	case degraded && !st.Degraded:
		if st.DegradedAt != 0 && ms-st.DegradedAt < p.Cooldown.Milliseconds() {
			d.Transition = Coalesced
		} else {
			d.Transition = Degrade
			next.Degraded, next.DegradedAt = true, ms
		}
	case !degraded && st.Degraded:
		d.Transition, d.DegradedSince = Recover, st.DegradedAt
		next.Degraded = false
	}
	for range deaths {
		if next.DeadWindow == 0 || ms-next.DeadWindow >= p.Cooldown.Milliseconds() {
			next.DeadWindow, next.DeadCount = ms, 0
		}
		if next.DeadCount < p.DeadLimit {
			d.Dead = append(d.Dead, DeadVerdict{Tell: true, Suppressed: next.DeadWithheld})
			next.DeadCount++
			next.DeadWithheld = 0
		} else {
			d.Dead = append(d.Dead, DeadVerdict{})
			next.DeadWithheld++
		}
	}
	return next, d, next != st
}

// AgentState is what operational events last told about an agent
// (store.OpsAgentKey). Times are unix ms.
type AgentState struct {
	// Known: the agent was observed with heartbeats.
	Known      bool  `json:"known,omitempty"`
	Inactive   bool  `json:"inactive,omitempty"`
	InactiveAt int64 `json:"inactive_at,omitempty"`
}

// DecideAgent is the pure rule for agents: an agent observed inactive and
// told active is told inactive (at most once per cooldown; Coalesced
// within it); one observed active and told inactive is told active again
// (Recover). An agent that never sent a heartbeat is never told of (it
// was never up); the first observation of an active agent is recorded
// silently (a new agent is not "back").
func (p Policy) DecideAgent(st AgentState, active, hadHeartbeat bool, now time.Time) (next AgentState, t Transition, changed bool) {
	p = p.withDefaults()
	ms := now.UnixMilli()
	next = st
	if !hadHeartbeat {
		return next, None, false
	}
	next.Known = true
	switch {
	case !active && !st.Inactive:
		if st.InactiveAt != 0 && ms-st.InactiveAt < p.Cooldown.Milliseconds() {
			return next, Coalesced, next != st
		}
		next.Inactive, next.InactiveAt = true, ms
		t = Degrade
	case active && st.Inactive:
		next.Inactive = false
		t = Recover
	}
	return next, t, next != st
}

func itoa(n int) string { return strconv.Itoa(n) }
