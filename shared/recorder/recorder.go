// Package recorder is the one writer of delivery outcomes: it consumes the
// results stream and writes records, attempt history and statistics to Redis
// in batches. A batch is acked only after Redis took it; while Redis is down
// the outcomes wait in the stream, so none is lost.
package recorder

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// Writer applies batches; *store.Store implements it.
type Writer interface {
	ApplyBatch(ctx context.Context, b store.Batch, lim store.Limits) error
	SweepIndexes(ctx context.Context, retention time.Duration) error
}

// Options tune the recorder.
type Options struct {
	Limits    store.Limits
	BatchSize int           // default 1000
	MaxDelay  time.Duration // how long a partial batch may wait (default 5ms)
	Sweep     time.Duration // index sweep interval (default 1m)
	// OnError is called with each failed write (metrics).
	OnError func(error)
}

// Recorder consumes the results stream.
type Recorder struct {
	js   jetstream.JetStream
	w    Writer
	log  zerolog.Logger
	opts Options
}

// New builds a recorder.
func New(js jetstream.JetStream, w Writer, log zerolog.Logger, opts Options) *Recorder {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 5 * time.Millisecond
	}
	if opts.Sweep <= 0 {
		opts.Sweep = time.Minute
	}
	return &Recorder{js: js, w: w, log: log, opts: opts}
}

// Run consumes until ctx ends, then writes what it holds and returns.
func (r *Recorder) Run(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, streams.ResultsStream, streams.RecorderConsumerConfig())
	if err != nil {
		return fmt.Errorf("recorder consumer: %w", err)
	}
	msgs := make(chan streams.Pulled, r.opts.BatchSize)
	drain, err := streams.Feed(cons, r.opts.BatchSize, msgs, func(err error) { r.log.Warn().Err(err).Msg("pull interrupted; re-pulling") })
	if err != nil {
		return fmt.Errorf("recorder consume: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.opts.Sweep)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.w.SweepIndexes(ctx, r.opts.Limits.Retention); err != nil && ctx.Err() == nil {
					r.log.Warn().Err(err).Msg("sweep of delivery indexes failed")
				}
			}
		}
	}()
	batch := make([]jetstream.Msg, 0, r.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(batch) > 0 {
			r.write(ctx, batch)
			batch = batch[:0]
		}
	}
	stopping := ctx.Done()
	for {
		select {
		case <-stopping:
			// Stop pulling; the buffered messages still arrive on msgs,
			// which is closed at the end.
			stopping = nil
			go drain()
		case m, ok := <-msgs:
			if !ok {
				timer.Stop()
				flush()
				wg.Wait()
				return nil
			}
			if len(batch) == 0 {
				timer.Reset(r.opts.MaxDelay)
			}
			batch = append(batch, m)
			if len(batch) >= r.opts.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

func (r *Recorder) write(stop context.Context, batch []jetstream.Msg) {
	var b store.Batch
	for _, m := range batch {
		switch m.Subject() {
		case streams.BreakerSubject:
			var bs streams.BreakerState
			if err := json.Unmarshal(m.Data(), &bs); err != nil || bs.V > streams.SchemaVersion || bs.WebhookID == "" {
				r.log.Error().Err(err).Msg("dropping an unreadable breaker report")
				continue
			}
			b.Breakers = append(b.Breakers, bs)
		case streams.EnqueuedSubject:
			var e streams.Enqueued
			if err := json.Unmarshal(m.Data(), &e); err != nil || e.V > streams.SchemaVersion {
				r.log.Error().Err(err).Int("v", e.V).Msg("dropping an unreadable enqueue record")
				continue
			}
			b.Enqueued = append(b.Enqueued, e)
		default:
			var o streams.Outcome
			if err := json.Unmarshal(m.Data(), &o); err != nil || o.V > streams.SchemaVersion || o.DeliveryID == "" {
				r.log.Error().Err(err).Int("v", o.V).Msg("dropping an unreadable outcome")
				continue
			}
			b.Outcomes = append(b.Outcomes, o)
		}
	}
	// Writes are retried here (Redis down: wait, never drop); the stream
	// keeps the messages meanwhile and acks are sent only after success.
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.w.ApplyBatch(ctx, b, r.opts.Limits)
		cancel()
		if err == nil {
			break
		}
		if r.opts.OnError != nil {
			r.opts.OnError(err)
		}
		r.log.Warn().Err(err).Int("batch", len(batch)).Msg("recording outcomes failed; retrying")
		if stop.Err() != nil {
			for _, m := range batch {
				_ = m.Nak() // shutting down: the next recorder takes them
			}
			return
		}
		for _, m := range batch {
			_ = m.InProgress()
		}
		select {
		case <-stop.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	for _, m := range batch {
		_ = m.Ack()
	}
}
