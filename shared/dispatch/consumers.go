package dispatch

import (
	"context"
	"time"

	"github.com/hermodhq/hermod/shared/streams"
)

// RunConsumers delivers from existing consumers of the deliveries stream
// (an agent's label sets), looked up, never created: names is asked every
// interval, so a label set granted or first used later is picked up and one
// no longer named is drained. No scheduler or releaser runs beside it:
// delayed and held deliveries are the control plane's.
func (w *Worker) RunConsumers(ctx context.Context, js JetStream, names func() []string, interval time.Duration) error {
	work := make(chan streams.Pulled)
	wait := w.start(work)
	feeds := map[string]func(){}
	refresh := func() {
		want := map[string]bool{}
		for _, n := range names() {
			want[n] = true
			if feeds[n] == nil {
				if drain := w.follow(ctx, js, n, work); drain != nil {
					feeds[n] = drain
				}
			}
		}
		for n, drain := range feeds {
			if !want[n] {
				drain()
				delete(feeds, n)
				w.deps.Log.Info().Str("consumer", n).Msg("no longer taking deliveries of a label set")
			}
		}
	}
	refresh()
	t := time.NewTicker(interval)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			refresh()
		}
	}
	for _, drain := range feeds {
		drain()
	}
	close(work)
	wait()
	return nil
}

// follow starts taking deliveries of the label-set consumer name into work
// and answering the in-flight questions about that label set (and no
// other); it returns the function that stops both, or nil when it could
// not start (it is tried again at the next refresh).
func (w *Worker) follow(ctx context.Context, js JetStream, name string, work chan<- streams.Pulled) func() {
	log := w.deps.Log.With().Str("consumer", name).Logger()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := js.Consumer(lctx, streams.DeliveriesStream, name)
	cancel()
	if err != nil {
		log.Warn().Err(err).Msg("label set consumer not available yet")
		return nil
	}
	ctl, err := js.Conn().Subscribe(streams.InFlightPrefix+name, w.answerInFlight)
	if err != nil {
		log.Warn().Err(err).Msg("cannot answer in-flight questions for label set")
		return nil
	}
	drain, err := streams.FeedShared(cons, w.conc, work, w.pullInterrupted)
	if err != nil {
		_ = ctl.Unsubscribe()
		log.Warn().Err(err).Msg("cannot pull from label set")
		return nil
	}
	log.Info().Msg("taking deliveries of a label set")
	return func() { drain(); _ = ctl.Unsubscribe() }
}
