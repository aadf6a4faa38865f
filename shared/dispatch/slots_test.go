package dispatch

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// waitFor polls until webhook id has n deliveries waiting for a slot.
func waitFor(t *testing.T, is *Isolation, id string, n int) {
	t.Helper()
	hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if got := is.Waiting(id); got != n {
			return fmt.Errorf("%d deliveries wait for a slot of %s, want %d", got, id, n)
		}
		return nil
	})
}

// A delivery to a fast webhook whose slots are all taken waits here and is
// attempted with the slot the next ending attempt gives back: it never
// leaves the consumer's window (no copy on the delay subject).
func TestWorkerWaitsForASlotOfAFastWebhook(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{Inflight: 1, SlotWait: time.Minute})
	iso.Record("w1", delivery.Success, time.Millisecond, t0) // a fast endpoint
	if !iso.Acquire("w1", 0) {
		t.Fatal("first slot refused")
	}
	w := b.worker(WorkerOptions{Isolation: iso})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	}()
	waitFor(t, iso, "w1", 1)
	if n := b.sender.count(); n != 0 {
		t.Fatalf("attempted %d times before a slot was free", n)
	}
	iso.Release("w1") // the attempt in flight ended: its slot goes to the waiting delivery
	<-done
	settle(w)
	if n := b.sender.count(); n != 1 {
		t.Errorf("attempted %d times, want 1", n)
	}
	for _, m := range b.pub.Published() {
		if m.Subject != streams.OutcomeSubject {
			t.Errorf("published on %s: want only the outcome (nothing parked)", m.Subject)
		}
	}
	// The waiting delivery's slot is given back after its attempt.
	if !iso.Acquire("w1", 0) {
		t.Error("the slot was not given back")
	}
}

// A wait that runs out parks the delivery (saturated), due after
// Rules.SaturatedWait counted from when the wait ended.
func TestWorkerParksWhenTheSlotWaitRunsOut(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{Inflight: 1, SlotWait: 20 * time.Millisecond})
	if !iso.Acquire("w1", 0) {
		t.Fatal("first slot refused")
	}
	w := b.worker(WorkerOptions{Isolation: iso})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
	if iso.Waiting("w1") != 0 {
		t.Error("a parked delivery is still in line")
	}
}

// Whether a delivery waits for a slot, and how it gets one.
func TestSlots(t *testing.T) {
	t.Run("a slow webhook's delivery is not held waiting", func(t *testing.T) {
		// (A slot came free a moment ago: only the average says no.)
		is := NewIsolation(IsolationOptions{Inflight: 2, SlotWait: time.Second})
		is.Record("w", delivery.Success, 10*time.Second, t0) // 10 s / 2 slots: 5 s to a free slot
		is.Acquire("w", 0)
		is.Acquire("w", 0)
		start := time.Now()
		if is.Acquire("w", time.Second) {
			t.Fatal("a third slot was given")
		}
		// Refused without waiting out the second (a generous bound: it
		// returns at once, and a wait would have taken the full second).
		if took := time.Since(start); took >= time.Second {
			t.Errorf("refused after %v: it waited", took)
		}
	})
	t.Run("expected wait grows with the place in line", func(t *testing.T) {
		st := &webhookState{latency: 100 * time.Millisecond, freed: t0}
		// 4 slots, 100 ms each: one frees every 25 ms on average.
		for place, want := range map[int]bool{1: true, 10: true, 11: false} {
			if got := st.soon(place, 4, 250*time.Millisecond, t0); got != want {
				t.Errorf("place %d: soon %v, want %v", place, got, want)
			}
		}
	})
	t.Run("slots stuck: no wait", func(t *testing.T) {
		// No attempt ended yet (no average): the first in line waits only
		// while the slots were taken a moment ago.
		st := &webhookState{freed: t0}
		for since, want := range map[time.Duration]bool{0: true, 31 * time.Millisecond: true, 33 * time.Millisecond: false, time.Second: false} {
			if got := st.soon(1, 4, 256*time.Millisecond, t0.Add(since)); got != want {
				t.Errorf("%v after a slot came free: soon %v, want %v", since, got, want)
			}
		}
	})
	t.Run("at most Inflight deliveries wait", func(t *testing.T) {
		is := NewIsolation(IsolationOptions{Inflight: 1, SlotWait: time.Minute})
		is.Acquire("w", 0)
		got := make(chan bool, 1)
		go func() { got <- is.Acquire("w", time.Minute) }()
		waitFor(t, is, "w", 1)
		if is.Acquire("w", time.Minute) {
			t.Error("a second delivery got in line (and a slot)")
		}
		is.Release("w")
		if !<-got {
			t.Error("the delivery in line did not get the released slot")
		}
	})
	t.Run("first come, first served", func(t *testing.T) {
		is := NewIsolation(IsolationOptions{Inflight: 3, SlotWait: time.Minute})
		for range 3 {
			is.Acquire("w", 0)
		}
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if is.Acquire("w", time.Minute) {
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
				}
			}()
			waitFor(t, is, "w", i+1)
		}
		for i := range 3 {
			is.Release("w")
			hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(order) != i+1 || order[i] != i {
					return fmt.Errorf("slots went to %v, want the first %d in line in order", order, i+1)
				}
				return nil
			})
		}
		wg.Wait()
	})
	t.Run("the lease bounds the wait", func(t *testing.T) {
		f := Facts{Rules: Rules{AcquireTTL: 10 * time.Second}}
		for waited, want := range map[time.Duration]time.Duration{0: 4 * time.Second, 3 * time.Second: time.Second, 4 * time.Second: 0, 9 * time.Second: 0} {
			f.Waited = waited
			if got := slotWait(f); got != want {
				t.Errorf("waited %v: may wait %v for a slot, want %v", waited, got, want)
			}
		}
	})
	t.Run("no wait allowed: refused at once", func(t *testing.T) {
		is := NewIsolation(IsolationOptions{Inflight: 1})
		is.Acquire("w", 0)
		if is.Acquire("w", time.Minute) || is.Waiting("w") != 0 {
			t.Error("waited with SlotWait 0")
		}
	})
}

// At most a quarter of a worker's workers wait for slots at once: with 4
// workers, a second delivery finding its webhook's slots taken is parked at
// once while the first waits, so waiters never hold every worker.
func TestWorkerBoundsItsWaiters(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{Inflight: 1, SlotWait: time.Minute})
	iso.Acquire("w1", 0)
	w := b.worker(WorkerOptions{Concurrency: 4, Isolation: iso})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d-wait"}), t0))
	}()
	waitFor(t, iso, "w1", 1)
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d-park"}), t0))
	if cp := b.pub.On(t, streams.DelaySubject("w1")); cp.Header.Get(streams.HdrDelivery) != "d-park" {
		t.Errorf("parked %s, want d-park", cp.Header.Get(streams.HdrDelivery))
	}
	iso.Release("w1")
	<-done
	settle(w)
	if n := b.sender.count(); n != 1 || b.sender.calls[0].DeliveryID != "d-wait" {
		t.Errorf("attempted %d times, want d-wait once", n)
	}
}

// An endpoint that just turned slow has no average attempt yet: the time
// its slots have all been stuck stands in for it, and the average again
// once a slot is free.
func TestAttemptEstimateCountsStuckSlots(t *testing.T) {
	iso := NewIsolation(IsolationOptions{Inflight: 2})
	for range 2 {
		if !iso.Acquire("w1", 0) {
			t.Fatal("slot refused")
		}
	}
	waitStuck(t, iso, "w1", 50*time.Millisecond)
	if l := iso.Latency("w1"); l != 0 {
		t.Fatalf("average %s before any attempt ended", l)
	}
	iso.Record("w1", delivery.Success, 3*time.Millisecond, t0)
	iso.Release("w1")
	if d := iso.AttemptEstimate("w1"); d != 3*time.Millisecond {
		t.Errorf("estimate %s with a slot free, want the average 3ms", d)
	}
}

// A delivery to a webhook whose slots have been stuck longer than
// Rules.SaturatedWait, before any of its attempts ended, is parked for the
// time they have been stuck, not cycled back every SaturatedWait.
func TestWorkerParksForTheTimeSlotsAreStuck(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{Inflight: 1})
	if !iso.Acquire("w1", 0) {
		t.Fatal("first slot refused")
	}
	waitStuck(t, iso, "w1", 300*time.Millisecond)
	w := b.worker(WorkerOptions{Isolation: iso})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	wantJournal(t, b, "publish hermod.delay.w1", "puback hermod.delay.w1", "ack")
	meta, _ := streams.ParseMeta(b.pub.On(t, streams.DelaySubject("w1")).Header)
	due := time.UnixMilli(meta.Due)
	if due.Before(t0.Add(300*time.Millisecond)) || due.After(t0.Add(MaxSaturatedWait)) {
		t.Errorf("parked until %s, want 300ms to %s after %s", due, MaxSaturatedWait, t0)
	}
	iso.Release("w1")
}

// waitStuck polls until webhook id's attempt estimate, every slot taken
// and none ended, has grown to at least d.
func waitStuck(t *testing.T, is *Isolation, id string, d time.Duration) {
	t.Helper()
	hermodtest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if got := is.AttemptEstimate(id); got < d {
			return fmt.Errorf("estimate %s for %s with every slot stuck, waiting for %s", got, id, d)
		}
		return nil
	})
}
