package dispatch

import "time"

// The slow lane. A webhook's slots bound what one endpoint can hold, not
// what several can: with 64 workers and 32 slots each, two endpoints that
// turned slow at once would hold every worker, and every other webhook's
// deliveries would wait behind them. So the attempts to slow webhooks
// together may hold at most half of a worker's workers (the slow lane); a
// slow webhook's delivery that finds the lane full is parked (Decide:
// Park, saturated) for the webhook's expected attempt, exactly as when its
// own slots are all taken, and the other half of the workers always serves
// the webhooks that answer in time.
//
// A webhook is slow while its attempts take SlowAttempt or longer: its
// moving-average attempt duration says so, or attempts to it are running
// and none has ended for SlowAttempt (an endpoint that just turned slow has
// no average to go by until its first attempts end, up to its timeout).
// What an endpoint that turns slow can take before that second has passed
// is bounded by its slots only.

// SlowAttempt is the attempt duration from which a webhook counts as slow.
const SlowAttempt = time.Second

// slowLaneShare is the part of a worker's workers the slow lane may hold.
const slowLaneShare = 2 // one half

// setWorkers sizes the slow lane for a worker of n workers.
func (is *Isolation) setWorkers(n int) {
	is.slowCap = int32(max(n/slowLaneShare, 1))
}

// slow says whether st's webhook is slow at now (st.mu held).
func (st *webhookState) slow(now time.Time) bool {
	return st.latency >= SlowAttempt || st.inflight > 0 && now.Sub(st.progress) >= SlowAttempt
}

// takeLane takes a unit of the slow lane for st's webhook if it is slow
// (st.mu held); false when it is slow and the lane is full. Attempts of
// the webhook that began before it counted as slow take their units now:
// the lane may run over for them, and takes no other slow attempt until
// it is back under its size.
func (is *Isolation) takeLane(st *webhookState, now time.Time) bool {
	if is.slowCap == 0 || !st.slow(now) {
		return true
	}
	if behind := st.inflight - st.lane; behind > 0 {
		st.lane += behind
		is.m.SlowLaneHeld(is.slowHeld.Add(int32(behind)))
	}
	n := is.slowHeld.Add(1)
	if n > is.slowCap {
		is.slowHeld.Add(-1)
		is.m.SlowLaneFull()
		return false
	}
	is.m.SlowLaneHeld(n)
	st.lane++
	return true
}

// leaveLane gives back a unit of the slow lane st's webhook holds, if any
// (st.mu held).
func (is *Isolation) leaveLane(st *webhookState) {
	if st.lane > 0 {
		st.lane--
		is.m.SlowLaneHeld(is.slowHeld.Add(-1))
	}
}

// SlowLane is how many attempts to slow webhooks run now, and the most
// that may.
func (is *Isolation) SlowLane() (held, capacity int) {
	return int(is.slowHeld.Load()), int(is.slowCap)
}
