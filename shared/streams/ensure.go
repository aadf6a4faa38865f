package streams

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamMaker creates or updates streams; jetstream.JetStream implements it.
type StreamMaker interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

// EnsureStreams creates or updates every stream. It is idempotent. A
// stream the server cannot settle yet (a cluster still electing its
// leaders, a timeout, a node unreachable) is tried again with backoff for
// up to Settings.EnsureFor; a refusal of the configuration fails at once.
func EnsureStreams(ctx context.Context, js StreamMaker, s Settings) error {
	s = s.withDefaults()
	if len(s.Subjects) == 0 {
		return errors.New("ensure streams: no event subjects")
	}
	cfgs := []jetstream.StreamConfig{
		{Name: EventsStream, Subjects: append(slices.Clip(s.Subjects), OpsEventPrefix+">"), Retention: jetstream.WorkQueuePolicy,
			Duplicates: s.DedupWindow, MaxAge: 7 * 24 * time.Hour, Storage: jetstream.FileStorage, Replicas: s.Replicas,
			MaxMsgSize:  int32(MaxEnvelopeBytes(s.MaxEventBytes) + EventHeaderAllowance),
			Description: "platform events and Hermod's operational events, consumed by the router"},
		{Name: DeliveriesStream, Subjects: []string{DeliverPrefix + ">", DelayPrefix + ">", AgentPrefix + ">"},
			Retention: jetstream.WorkQueuePolicy, Duplicates: s.DedupWindow, Storage: jetstream.FileStorage, Replicas: s.Replicas,
			Description: "deliveries ready (dlv), waiting for a due time (delay), for agents (agentq)"},
		{Name: HeldStream, Subjects: []string{HeldPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, Duplicates: s.DedupWindow,
			Description: "deliveries parked while their webhook is paused"},
		{Name: ResultsStream, Subjects: []string{ResultsPrefix + ">"}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, Duplicates: 2 * time.Minute,
			Description: "delivery outcomes, consumed by the recorder"},
		{Name: DeadStream, Subjects: []string{DeadPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			MaxAge: s.Retention, Storage: jetstream.FileStorage, Replicas: s.Replicas,
			Description: "dead letters"},
	}
	deadline := time.Now().Add(s.EnsureFor)
	for _, c := range cfgs {
		if err := ensureOne(ctx, js, c, deadline, s.OnRetry); err != nil {
			return fmt.Errorf("ensure stream %s: %w", c.Name, err)
		}
	}
	return nil
}

// ensureTry bounds one create-or-update request.
const ensureTry = 5 * time.Second

// ensureOne creates or updates one stream, trying again after a transient
// failure (100 ms, doubling to 5 s, with jitter) until deadline.
func ensureOne(ctx context.Context, js StreamMaker, c jetstream.StreamConfig, deadline time.Time,
	onRetry func(string, error, time.Duration)) error {
	wait := 100 * time.Millisecond
	for {
		tctx, cancel := context.WithTimeout(ctx, ensureTry)
		_, err := js.CreateOrUpdateStream(tctx, c)
		cancel()
		if err == nil {
			return nil
		}
		if !transient(err) || ctx.Err() != nil {
			return err
		}
		sleep := wait/2 + rand.N(wait/2+1)
		if time.Now().Add(sleep).After(deadline) {
			return fmt.Errorf("%w (still failing after trying since start)", err)
		}
		if onRetry != nil {
			onRetry(c.Name, err, sleep)
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// transient says whether a failed create-or-update may succeed when tried
// again: no answer in time, nobody answering, or the server saying it is
// not ready (a 5xx API error: no leader yet, a peer unreachable). A 4xx
// API error is a refusal of the configuration itself.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500 || apiErr.Code == 408
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrConnectionReconnecting)
}
