package dispatch

import (
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
)

// Slow webhooks together hold at most half of the workers; fast ones are
// never refused for them, and a webhook whose attempts have run a second
// with none ending counts as slow before its first attempt ends.
func TestSlowLane(t *testing.T) {
	now := t0
	is := NewIsolation(IsolationOptions{Inflight: 32})
	is.now = func() time.Time { return now }
	is.setWorkers(8) // a lane of 4
	for _, id := range []string{"slow-1", "slow-2"} {
		is.Record(id, delivery.Success, 20*time.Second, now) // answer after 20 s
	}
	is.Record("fast", delivery.Success, 5*time.Millisecond, now)

	acquire := func(id string, want bool) {
		t.Helper()
		if got := is.Acquire(id, 0); got != want {
			t.Fatalf("acquire %s: %v, want %v (lane %d of %d)", id, got, want, is.slowHeld.Load(), is.slowCap)
		}
	}
	for range 3 {
		acquire("slow-1", true)
	}
	acquire("slow-2", true)
	acquire("slow-2", false) // the lane is full: parked, though slow-2 has slots
	acquire("slow-1", false)
	for range 8 {
		acquire("fast", true) // the other workers are never refused to fast webhooks
	}
	if held, capacity := is.SlowLane(); held != 4 || capacity != 4 {
		t.Errorf("slow lane %d of %d, want 4 of 4", held, capacity)
	}
	is.Release("slow-1")
	acquire("slow-2", true) // a unit came back
	for range 8 {
		is.Release("fast") // fast webhooks hold no unit
	}
	if held, _ := is.SlowLane(); held != 4 {
		t.Errorf("slow lane %d after fast releases, want 4", held)
	}

	// An endpoint that just turned slow: its average says fast, but its
	// attempts have run a second with none ending.
	is.Record("turning", delivery.Success, 5*time.Millisecond, now)
	acquire("turning", true) // fast: no unit
	acquire("turning", true)
	now = now.Add(SlowAttempt)
	acquire("turning", false) // slow now, and the lane is full
	if held, _ := is.SlowLane(); held != 6 {
		t.Errorf("slow lane %d, want 6: its two attempts took their units when it turned slow", held)
	}
	if est := is.AttemptEstimate("turning"); est != SlowAttempt {
		t.Errorf("attempt estimate %s, want %s (how long its attempts have run)", est, SlowAttempt)
	}
	is.Release("turning") // an attempt ended: progress, and a unit back
	is.Release("turning")
	if held, _ := is.SlowLane(); held != 4 {
		t.Errorf("slow lane %d after its attempts ended, want 4", held)
	}
	acquire("turning", true) // fast again (its average), no unit
	is.Release("turning")

	// Releasing every slow attempt empties the lane.
	for range 2 {
		is.Release("slow-1")
	}
	for range 2 {
		is.Release("slow-2")
	}
	if held, _ := is.SlowLane(); held != 0 {
		t.Errorf("slow lane %d after every slow attempt ended, want 0", held)
	}
}

// A worker sizes the slow lane of its isolation: half its workers.
func TestWorkerSizesTheSlowLane(t *testing.T) {
	b := newBundle(t)
	iso := NewIsolation(IsolationOptions{})
	b.worker(WorkerOptions{Isolation: iso, Concurrency: 64})
	if _, capacity := iso.SlowLane(); capacity != 32 {
		t.Errorf("slow lane of %d for 64 workers, want 32", capacity)
	}
}
