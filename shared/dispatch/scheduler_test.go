package dispatch

import (
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/streams"
)

func TestSchedulerWaitsUntilDue(t *testing.T) {
	b := newBundle(t)
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), streams.Meta{Due: t0.Add(5 * time.Second).UnixMilli()}))
	wantJournal(t, b, "nak 5s")
}

// A due delivery goes back where its webhook's deliveries go now, with its
// attempts and lost leases and without a due time, then it is acked.
func TestSchedulerReleasesWhenDue(t *testing.T) {
	b := newBundle(t)
	meta := streams.Meta{Due: t0.UnixMilli(), Attempts: 2, Lost: 1}
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), meta))
	wantJournal(t, b, "publish hermod.dlv.w1", "puback hermod.dlv.w1", "ack")
	m := b.pub.On(t, streams.DeliverSubject("w1"))
	got, _ := streams.ParseMeta(m.Header)
	if got.Due != 0 || got.Attempts != 2 || got.Lost != 1 {
		t.Errorf("released %+v", got)
	}
	meta.DeliveryID = "d1"
	if id := m.Header.Get(streams.HdrMsgID); id != streams.RetryMsgID(meta, 42)+":r" {
		t.Errorf("msg id %q", id)
	}
}

// An agent's webhook goes back to its label set's subject.
func TestSchedulerReleasesToTheAgents(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].TargetLabels = []string{"env=prod"}
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), streams.Meta{}))
	b.pub.On(t, streams.AgentSubject([]string{"env=prod"}, "w1"))
}

func TestSchedulerHoldsAPausedWebhook(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].Enabled = false
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), streams.Meta{}))
	wantJournal(t, b, "publish hermod.held.w1", "puback hermod.held.w1", "ack")
}

func TestSchedulerDropsADeletedWebhooksDelivery(t *testing.T) {
	b := newBundle(t)
	delete(b.hooks.hooks, "w1")
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), streams.Meta{}))
	wantJournal(t, b, "ack")
}

// When the store is down or the move cannot be stored, the delivery stays
// in the scheduler and is tried again a second later.
func TestSchedulerRetriesLater(t *testing.T) {
	b := newBundle(t)
	delete(b.hooks.hooks, "w1")
	b.hooks.err = errTest
	NewScheduler(b.deps).Handle(b.msg(streams.DelaySubject("w1"), streams.Meta{}))
	wantJournal(t, b, "nak 1s")

	b2 := newBundle(t)
	b2.pub.Fail = map[string]bool{streams.DeliverSubject("w1"): true}
	NewScheduler(b2.deps).Handle(b2.msg(streams.DelaySubject("w1"), streams.Meta{}))
	got := b2.j.All()
	if len(got) == 0 || got[len(got)-1] != "nak 1s" {
		t.Errorf("journal %v, want a nak of 1s last", got)
	}
}

func TestSchedulerRejectsForgedAndUnreadable(t *testing.T) {
	b := newBundle(t)
	s := NewScheduler(b.deps)
	s.Handle(b.msg(streams.DelaySubject("w2"), streams.Meta{}))
	bad := b.msg(streams.DelaySubject("w1"), streams.Meta{})
	bad.Header.Del(streams.HdrVersion)
	s.Handle(bad)
	wantJournal(t, b, "term", "term")
}
