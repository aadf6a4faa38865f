package dispatch

import "time"

// Slots. A webhook has IsolationOptions.Inflight slots in each process: at
// most that many attempts to it run at once, so a slow endpoint cannot take
// every worker. A delivery that finds them all taken waits here, in line,
// for the slot of the next attempt that ends (handed over directly, first
// come first served), but only when one is expected soon: its expected wait
// is its place in line times the webhook's average attempt duration divided
// by the slots, and that must fit the wait allowed (SlotWait, and what its
// lease allows); and no slot may have been stuck for long (none came free
// for an eighth of the wait: a fast endpoint frees one every few
// milliseconds, and an endpoint whose first attempts have not ended yet
// has no average to go by). A fast endpoint's deliveries therefore never leave the
// consumer's window; a slow or failing one's are parked on the delay
// subject (Decide: Park, saturated) when the wait would be long or runs
// out. At most Inflight deliveries wait per webhook, and at most a quarter
// of a worker's workers wait at all (Worker.acquire), so a busy webhook
// cannot hold every worker.

// Acquire takes one of webhook id's slots, waiting at most wait (and at
// most SlotWait) when they are all taken and one is expected within it;
// false when none was had. Every true is followed by one Release.
func (is *Isolation) Acquire(id string, wait time.Duration) bool {
	st := is.state(id)
	now := is.now()
	st.mu.Lock()
	if st.inflight < is.opts.Inflight {
		if !is.takeLane(st, now) {
			st.mu.Unlock()
			return false // a slow webhook, and the slow lane is full
		}
		if st.inflight == 0 {
			st.progress = now
		}
		st.inflight++
		if st.inflight == is.opts.Inflight {
			st.freed = now // every slot taken from now
		}
		st.mu.Unlock()
		return true
	}
	wait = min(wait, is.opts.SlotWait)
	if wait <= 0 || len(st.waiters) >= is.opts.Inflight || !st.soon(len(st.waiters)+1, is.opts.Inflight, wait, now) {
		st.mu.Unlock()
		return false
	}
	ch := make(chan struct{}, 1)
	st.waiters = append(st.waiters, ch)
	st.mu.Unlock()
	is.m.WaitForSlot()
	got := st.await(ch, wait)
	is.m.WaitedForSlot(got)
	return got
}

// await waits for ch, a place in line, to be handed a slot, at most wait.
func (st *webhookState) await(ch chan struct{}, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, c := range st.waiters {
		if c == ch {
			st.waiters = append(st.waiters[:i], st.waiters[i+1:]...)
			return false
		}
	}
	return true // a slot was handed over as the wait ran out
}

// Release gives back a slot taken by Acquire: to the first delivery in
// line, if one waits (with the slow lane's unit, if it held one).
func (is *Isolation) Release(id string) {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.freed = is.now()
	st.progress = st.freed
	if len(st.waiters) > 0 {
		ch := st.waiters[0]
		n := copy(st.waiters, st.waiters[1:])
		st.waiters[n] = nil
		st.waiters = st.waiters[:n]
		ch <- struct{}{} // buffered: never blocks
		return
	}
	st.inflight--
	is.leaveLane(st)
}

// Waiting is how many deliveries wait for one of webhook id's slots.
func (is *Isolation) Waiting(id string) int {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.waiters)
}

// soon says whether the place-th in line can expect a slot within wait at
// now: slots come free (none has been stuck for an eighth of the wait),
// and the average attempt says one will come for its place in time.
func (st *webhookState) soon(place, slots int, wait time.Duration, now time.Time) bool {
	if now.Sub(st.freed) > wait/8 {
		return false
	}
	return st.latency*time.Duration(place)/time.Duration(slots) <= wait
}

// Latency is webhook id's moving-average attempt duration here (0: no
// attempt ended yet).
func (is *Isolation) Latency(id string) time.Duration {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.latency
}

// AttemptEstimate is how long an attempt to webhook id is expected to take
// here, for parking a delivery that found every slot taken: its moving-average
// attempt duration, or, while every slot is taken and none has come free for
// longer than that, that time (the attempts in flight have lasted at least
// as long). An endpoint that just turned slow has no average until its first
// attempts end (up to its timeout); without this its deliveries would cycle
// through the delay subject every SaturatedWait until then.
func (is *Isolation) AttemptEstimate(id string) time.Duration {
	st := is.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inflight < is.opts.Inflight || st.freed.IsZero() {
		return max(st.latency, st.stuck(is.now()))
	}
	return max(st.latency, is.now().Sub(st.freed))
}

// stuck is how long attempts have been running with none ending, when
// that marks the webhook slow (0 otherwise; st.mu held).
func (st *webhookState) stuck(now time.Time) time.Duration {
	if st.inflight > 0 && now.Sub(st.progress) >= SlowAttempt {
		return now.Sub(st.progress)
	}
	return 0
}

// observe adds an attempt's duration to the moving average (weight 1/8).
func (st *webhookState) observe(took time.Duration) {
	took = max(took, time.Microsecond) // 0 means "none yet"
	if st.latency == 0 {
		st.latency = took
		return
	}
	st.latency += (took - st.latency) / 8
}
