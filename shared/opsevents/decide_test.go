package opsevents

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }
func ms(d time.Duration) int64     { return at(d).UnixMilli() }

// A sequence of observations of one webhook, each at a stubbed time:
// what is told, and what is coalesced, with a 5 min cooldown and at most 2
// deaths told per window.
func TestDecideWebhookSequences(t *testing.T) {
	p := Policy{Cooldown: 5 * time.Minute, DeadLimit: 2}
	type step struct {
		at       time.Duration
		degraded bool
		deaths   int
		want     Transition
		dead     []DeadVerdict
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a burst of failures is told degraded once", []step{
			{0, false, 0, None, nil},
			{time.Second, true, 0, Degrade, nil},
			{2 * time.Second, true, 0, None, nil},
			{3 * time.Minute, true, 0, None, nil},
			{10 * time.Minute, true, 0, None, nil}, // still degraded: nothing new to tell
		}},
		{"recovery is told once after a degradation", []step{
			{0, true, 0, Degrade, nil},
			{time.Minute, false, 0, Recover, nil},
			{2 * time.Minute, false, 0, None, nil},
		}},
		{"flapping within the cooldown: one degraded, one recovered", []step{
			{0, true, 0, Degrade, nil},
			{time.Minute, false, 0, Recover, nil},
			{2 * time.Minute, true, 0, Coalesced, nil},
			{3 * time.Minute, false, 0, None, nil}, // its degradation was never told
			{4 * time.Minute, true, 0, Coalesced, nil},
			{5*time.Minute + time.Second, true, 0, Degrade, nil}, // cooldown over, still degraded: told
			{6 * time.Minute, false, 0, Recover, nil},
		}},
		{"deaths over the limit are counted in the next one told", []step{
			{0, false, 3, None, []DeadVerdict{{true, 0}, {true, 0}, {false, 0}}},
			{time.Minute, false, 1, None, []DeadVerdict{{false, 0}}},
			{5 * time.Minute, false, 2, None, []DeadVerdict{{true, 2}, {true, 0}}}, // a new window
			{6 * time.Minute, false, 1, None, []DeadVerdict{{false, 0}}},
			{11 * time.Minute, false, 1, None, []DeadVerdict{{true, 1}}},
		}},
		{"a degradation and deaths in one observation", []step{
			{0, true, 1, Degrade, []DeadVerdict{{true, 0}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st WebhookState
			for i, s := range tc.steps {
				next, d, changed := p.DecideWebhook(st, s.degraded, s.deaths, at(s.at))
				if d.Transition != s.want {
					t.Fatalf("step %d: transition %v, want %v", i, d.Transition, s.want)
				}
				if len(d.Dead) != len(s.dead) {
					t.Fatalf("step %d: dead verdicts %+v, want %+v", i, d.Dead, s.dead)
				}
				for j := range s.dead {
					if d.Dead[j] != s.dead[j] {
						t.Fatalf("step %d: dead verdicts %+v, want %+v", i, d.Dead, s.dead)
					}
				}
				if changed != (next != st) {
					t.Fatalf("step %d: changed %v but states %+v -> %+v", i, changed, st, next)
				}
				st = next
			}
		})
	}
}

// Deciding twice on the same observation (two replicas, or a batch
// recorded again) tells a transition once: the second sees the state the
// first wrote.
func TestDecideWebhookOnce(t *testing.T) {
	p := Policy{Cooldown: time.Minute, DeadLimit: 5}
	st, d, _ := p.DecideWebhook(WebhookState{}, true, 0, t0)
	if d.Transition != Degrade {
		t.Fatalf("first: %v", d.Transition)
	}
	if _, d, changed := p.DecideWebhook(st, true, 0, t0); d.Transition != None || changed {
		t.Errorf("second: %v changed %v", d.Transition, changed)
	}
	st, d, _ = p.DecideWebhook(st, false, 0, at(time.Second))
	if d.Transition != Recover || d.DegradedSince != ms(0) {
		t.Errorf("recover: %+v", d)
	}
	if _, d, _ := p.DecideWebhook(st, false, 0, at(time.Second)); d.Transition != None {
		t.Errorf("recover again: %v", d.Transition)
	}
}

func TestDecideAgent(t *testing.T) {
	p := Policy{Cooldown: 5 * time.Minute}
	type step struct {
		at           time.Duration
		active, seen bool
		want         Transition
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"never connected: never told", []step{{0, false, false, None}, {time.Hour, false, false, None}}},
		{"a new agent is not told back", []step{{0, true, true, None}, {time.Minute, true, true, None}}},
		{"stops, then comes back", []step{
			{0, true, true, None}, {time.Minute, false, true, Degrade}, {2 * time.Minute, false, true, None},
			{3 * time.Minute, true, true, Recover}, {4 * time.Minute, true, true, None},
		}},
		{"flapping within the cooldown", []step{
			{0, true, true, None}, {time.Minute, false, true, Degrade}, {2 * time.Minute, true, true, Recover},
			{3 * time.Minute, false, true, Coalesced}, {4 * time.Minute, true, true, None},
			{7 * time.Minute, false, true, Degrade},
		}},
		{"first seen already inactive", []step{{0, false, true, Degrade}, {time.Minute, true, true, Recover}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st AgentState
			for i, s := range tc.steps {
				next, tr, changed := p.DecideAgent(st, s.active, s.seen, at(s.at))
				if tr != s.want {
					t.Fatalf("step %d: %v, want %v", i, tr, s.want)
				}
				if changed != (next != st) {
					t.Fatalf("step %d: changed %v but %+v -> %+v", i, changed, st, next)
				}
				st = next
			}
		})
	}
}

// The defaults apply to a zero policy.
func TestPolicyDefaults(t *testing.T) {
	if got := (Policy{}).withDefaults(); got != DefaultPolicy {
		t.Errorf("%+v", got)
	}
}

// The message of an event: its subject and headers, the envelope, and no
// url beyond scheme and host.
func TestNewMsg(t *testing.T) {
	ev := DeliveryDead{WebhookID: "w-1", Name: "n", URLRedacted: "https://example.test", DeliveryID: "d-1", Epoch: 1}
	m, err := NewMsg(ev, t0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "hermod.opsevt.hermod.delivery.dead" || m.Header.Get("Hermod-About-Webhook") != "w-1" ||
		m.Header.Get("Nats-Msg-Id") != ev.OpsEventID() {
		t.Errorf("subject %s headers %v", m.Subject, m.Header)
	}
	again := DeliveryDead{DeliveryID: "d-1", Epoch: 1}
	if again.OpsEventID() != ev.OpsEventID() || (DeliveryDead{DeliveryID: "d-1", Epoch: 2}).OpsEventID() == ev.OpsEventID() {
		t.Error("a death's event id must follow its delivery and epoch")
	}
	r, _ := NewMsg(ReplayFinished{ID: "r-1", WebhookID: "w-1", State: "done"}, t0)
	if r.Header.Get("Hermod-About-Webhook") != "" {
		t.Error("a replay is about no webhook")
	}
}
