package api

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// DefaultReplayRate is how many deliveries per second an API process
// replays by default (HERMOD_REPLAY_RATE).
const DefaultReplayRate = 500

// Replay runner timings.
const (
	// ReplayLease is how long a runner's claim on a replay lasts without a
	// step; after it, any API process takes the replay over.
	ReplayLease = 15 * time.Second
	// ReplayPoll is how often an API process looks for replays without a
	// live lease (a new replay on this process starts at once).
	ReplayPoll = 2 * time.Second
	// replayTries bounds the tries of one step against a failing Redis or
	// NATS before the replay is marked failed.
	replayTries = 5
)

// Replayer runs bulk replays in an API process. Each running replay is
// stored in Redis with its counts, its position (a cursor into the
// webhook's status index, by creation time) and a lease: the process that
// holds the lease runs it and renews the lease at every step. A process
// that stops gracefully gives its leases up; one that dies lets them lapse
// (ReplayLease). Every API process looks for running replays without a
// live lease every ReplayPoll and resumes them from their position, so a
// replay survives the loss of its process. What a runner did after its
// last step is not in the counts (at most one step, rate/10 deliveries):
// the deliveries it requeued are pending, no longer dead, and the process
// that resumes does not see them; one it published without marking it
// pending is published again under the same message id, which the
// deliveries stream drops as a duplicate (requeuer.requeue).
//
// Every replay of this process shares one rate (deliveries per second), so
// replays never take more of the deliverers than that from live traffic.
type Replayer struct {
	q          requeuer
	log        zerolog.Logger
	limiter    *rate.Limiter
	step       int
	owner      string
	keep       time.Duration
	poll       time.Duration // ReplayPoll (shorter in tests)
	onFinished func(ReplayView)

	wakeC   chan struct{}
	mu      sync.Mutex
	running map[string]bool
}

// newReplayer makes the replay runner at perSecond deliveries per second.
func newReplayer(q requeuer, perSecond int, keep time.Duration, log zerolog.Logger) *Replayer {
	if perSecond <= 0 {
		perSecond = DefaultReplayRate
	}
	return &Replayer{q: q, log: log.With().Str("component", "replays").Logger(),
		limiter: rate.NewLimiter(rate.Limit(perSecond), max(1, perSecond/50)),
		step:    min(100, max(1, perSecond/10)), owner: uuid.NewString(), keep: keep, poll: ReplayPoll,
		wakeC: make(chan struct{}, 1), running: map[string]bool{}}
}

// OnFinished sets what is called once a replay this process ran (or
// cancelled without a runner) reached a final state; set it before Run.
func (r *Replayer) OnFinished(fn func(ReplayView)) { r.onFinished = fn }

func (r *Replayer) wake() {
	select {
	case r.wakeC <- struct{}{}:
	default:
	}
}

func (r *Replayer) finished(rp *store.Replay) {
	if r.onFinished != nil && rp != nil && rp.State.Final() {
		r.onFinished(replayView(rp))
	}
}

// Run runs replays until ctx ends; then it waits for its runners, which
// give their leases up.
func (r *Replayer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(r.poll)
	defer t.Stop()
	for {
		r.claim(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wakeC:
		}
	}
}

// claim starts a runner for each running replay it can take the lease of.
func (r *Replayer) claim(ctx context.Context, wg *sync.WaitGroup) {
	ids, err := r.q.st.RunningReplays(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("cannot list the running replays")
		}
		return
	}
	for _, id := range ids {
		r.mu.Lock()
		mine := r.running[id]
		r.mu.Unlock()
		if mine {
			continue
		}
		now := time.Now()
		ok, err := r.q.st.ClaimReplay(ctx, id, r.owner, now, now.Add(ReplayLease))
		if err != nil || !ok {
			continue
		}
		r.mu.Lock()
		r.running[id] = true
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx, id)
			r.mu.Lock()
			delete(r.running, id)
			r.mu.Unlock()
		}()
	}
}

// run runs one replay whose lease this process holds, from its position.
func (r *Replayer) run(ctx context.Context, id string) {
	rp, err := r.q.st.GetReplay(ctx, id)
	if err != nil {
		r.log.Warn().Err(err).Str("replay_id", id).Msg("cannot load the replay; its lease lapses and it is tried again")
		return
	}
	log := r.log.With().Str("replay_id", id).Str("webhook_id", rp.WebhookID).Logger()
	log.Info().Int("position", rp.PosStatus).Int64("requeued", rp.Requeued).Msg("replay running")
	run := replayRun{r: r, rp: rp, log: log, pos: rp.PosStatus, cursor: rp.PosCursor}
	state, msg := run.loop(ctx)
	switch {
	case state == "" && ctx.Err() != nil:
		// Stopping: record the last step and give the lease up so another
		// process (or this one restarted) resumes at once.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := run.report(sctx, time.Time{}); err != nil {
			log.Warn().Err(err).Msg("cannot record the replay's last step; its lease lapses")
		}
		log.Info().Msg("replay handed over: this process stops")
		return
	case state == "":
		return // the lease is another's, or Redis failed: the lease lapses
	case state == store.ReplayRunning:
		state = store.ReplayDone
	}
	if state != store.ReplayCancelled {
		ok, err := r.q.st.FinishReplay(ctx, rp, r.owner, state, msg, time.Now(), r.keep)
		if err != nil {
			log.Warn().Err(err).Msg("cannot finish the replay; its lease lapses and it is resumed")
			return
		}
		if !ok {
			state = store.ReplayCancelled // cancelled meanwhile (after the last step)
		}
	}
	final, err := r.q.st.GetReplay(ctx, id)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the finished replay")
		return
	}
	log.Info().Str("state", string(final.State)).Int64("matched", final.Matched).Int64("requeued", final.Requeued).
		Int64("skipped", final.Skipped).Msg("replay finished")
	r.finished(final)
}

// replayRun is one runner's pass through a replay.
type replayRun struct {
	r      *Replayer
	rp     *store.Replay
	log    zerolog.Logger
	pos    int
	cursor string
	done   store.ReplayStep // counts since the last report
}

// report adds the counts since the last report and the position, and
// renews the lease until until (zero: gives it up).
func (x *replayRun) report(ctx context.Context, until time.Time) (store.ReplayState, error) {
	st := x.done
	st.PosStatus, st.PosCursor = x.pos, x.cursor
	state, err := x.r.q.st.ReplayProgress(ctx, x.rp.ID, x.r.owner, st, until)
	if err == nil {
		x.done = store.ReplayStep{}
	}
	return state, err
}

// loop goes through the replay's statuses from its position. It returns
// the state to finish in (running: went through everything) with an error
// message for failed, or "" to leave the replay (stopping, lease lost).
func (x *replayRun) loop(ctx context.Context) (store.ReplayState, string) {
	for x.pos < len(x.rp.Statuses) {
		status := x.rp.Statuses[x.pos]
		var w *webhooks.Webhook
		err := x.try(ctx, func() error {
			var err error
			w, err = x.r.q.st.GetWebhook(ctx, x.rp.WebhookID)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return store.ReplayFailed, "the webhook was deleted"
		}
		if err != nil {
			return x.failed(ctx, "redis", err)
		}
		if status == streams.StatusFailed {
			// Still retrying: counted, never published again (ReplayStatuses).
			var n int64
			if err := x.try(ctx, func() error {
				var err error
				n, err = x.r.q.st.CountDeliveriesBetween(ctx, w.ID, status, x.rp.Since, x.rp.Until)
				return err
			}); err != nil {
				return x.failed(ctx, "redis", err)
			}
			x.done.Matched += n
			x.done.Skipped += n
			x.pos, x.cursor = x.pos+1, ""
		} else {
			var ds []*store.Delivery
			var next string
			if err := x.try(ctx, func() error {
				var err error
				ds, next, err = x.r.q.st.ListDeliveriesBetween(ctx, w.ID, status, x.rp.Since, x.rp.Until, x.r.step, x.cursor)
				return err
			}); err != nil {
				return x.failed(ctx, "redis", err)
			}
			for _, d := range ds {
				if x.r.limiter.Wait(ctx) != nil {
					return "", "" // Wait fails only when ctx ends: stopping
				}
				x.done.Matched++
				requeued, err := x.one(ctx, d, w)
				if err != nil {
					var re *requeueError
					dep := "redis"
					if errors.As(err, &re) {
						dep = re.dep
					}
					return x.failed(ctx, dep, err)
				}
				if requeued {
					x.done.Requeued++
				} else {
					x.done.Skipped++
				}
			}
			if next == "" {
				x.pos, x.cursor = x.pos+1, ""
			} else {
				x.cursor = next
			}
		}
		state, err := x.report(ctx, time.Now().Add(ReplayLease))
		if err != nil {
			if !errors.Is(err, store.ErrLeaseLost) {
				x.log.Warn().Err(err).Msg("cannot record the replay's progress; its lease lapses and it is resumed")
			}
			return "", ""
		}
		if state != store.ReplayRunning {
			return state, ""
		}
	}
	return store.ReplayRunning, ""
}

// failed is what loop returns when a step failed on dep: leave the replay
// when stopping, else fail it.
func (x *replayRun) failed(ctx context.Context, dep string, err error) (store.ReplayState, string) {
	if ctx.Err() != nil {
		return "", ""
	}
	x.log.Error().Err(err).Str("dependency", dep).Msg("replay failed")
	if _, rerr := x.report(ctx, time.Now().Add(ReplayLease)); rerr != nil {
		return "", ""
	}
	return store.ReplayFailed, dep + " is unavailable"
}

// try runs f up to replayTries times, backing off between (0.25 s,
// doubling); ErrNotFound is an answer, not a failure.
func (x *replayRun) try(ctx context.Context, f func() error) error {
	wait := 250 * time.Millisecond
	var err error
	for i := 0; i < replayTries; i++ {
		if err = f(); err == nil || errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
			return err
		}
		x.log.Warn().Err(err).Msg("replay step failed; trying again")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
	return err
}

// one requeues delivery d to webhook w; false when it is skipped: no longer
// dead, its payload expired, or its webhook changed so that it would not
// have been sent there now (the webhook no longer takes its event type, or
// it goes to other target labels).
func (x *replayRun) one(ctx context.Context, d *store.Delivery, w *webhooks.Webhook) (bool, error) {
	if d.Status != streams.StatusDead || !webhookTakes(w, d) {
		return false, nil
	}
	var payload []byte
	if err := x.try(ctx, func() error {
		var err error
		payload, err = x.r.q.st.Payload(ctx, d.EventID)
		return err
	}); err != nil {
		return false, err
	}
	if len(payload) == 0 {
		return false, nil
	}
	err := x.try(ctx, func() error { return x.r.q.requeue(ctx, d, w, payload) })
	return err == nil, err
}

// webhookTakes says whether w, as it is now, would take delivery d: it
// subscribes to d's event type and sends to the same target labels.
func webhookTakes(w *webhooks.Webhook, d *store.Delivery) bool {
	if !slices.Equal(w.TargetLabels, d.TargetLabels) {
		return false
	}
	return slices.ContainsFunc(w.EventTypes, func(p string) bool { return matching.TypeMatches(p, d.EventType) })
}
