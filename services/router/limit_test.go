package router

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Events published straight to JetStream, on a real embedded server with
// HERMOD_MAX_EVENT_BYTES = 4096: one larger than the event stream's
// message size is refused at the publish; one the stream takes but over
// the router's limit is terminated once, counted, and leaves nothing in
// any stream; an event within the limit after it is fanned out as usual.
func TestRouterRefusesOversizedEventsFromJetStream(t *testing.T) {
	const maxEvent = 4096
	_, js := hermodtest.JetStream(t, hermodtest.NATS(t).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := streams.EnsureStreams(ctx, js, streams.Settings{Subjects: []string{"deployment.>"}, MaxEventBytes: maxEvent}); err != nil {
		t.Fatal(err)
	}
	m := metrics.NewRouting(prometheus.NewRegistry())
	wh := hook("w-live", true)
	r := New(js, fixedSet{matching.Build([]*webhooks.Webhook{wh})}, zerolog.Nop(), m, Options{Workers: 2, MaxEventBytes: maxEvent})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()

	envelope := func(id string, n int) []byte {
		head, tail := `{"id":"`+id+`","event_type":"deployment.applied","data":{"x":"`, `"}}`
		return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	}
	limit := streams.MaxEnvelopeBytes(maxEvent)
	if _, err := js.Publish(ctx, "deployment.applied", envelope("ev-huge", limit+streams.EventHeaderAllowance+1)); err == nil {
		t.Error("the event stream took a message over its size limit")
	}
	if _, err := js.Publish(ctx, "deployment.applied", envelope("ev-over", limit+1)); err != nil {
		t.Fatalf("publish an event the stream takes: %v", err)
	}
	hermodtest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if n := testutil.ToFloat64(m.EventsRefused.WithLabelValues("too_large")); n != 1 {
			return fmt.Errorf("refused %v events", n)
		}
		return nil
	})
	if _, err := js.Publish(ctx, "deployment.applied", envelope("ev-ok", limit)); err != nil {
		t.Fatal(err)
	}
	hermodtest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		ev, err := js.Stream(ctx, streams.EventsStream)
		if err != nil {
			return err
		}
		if n := ev.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d events left in the stream", n)
		}
		dl, err := js.Stream(ctx, streams.DeliveriesStream)
		if err != nil {
			return err
		}
		if n := dl.CachedInfo().State.Msgs; n != 1 {
			return fmt.Errorf("%d deliveries, want the one of ev-ok", n)
		}
		return nil
	})
	dl, err := js.Stream(ctx, streams.DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dl.GetLastMsgForSubject(ctx, streams.DeliverSubject(wh.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get(streams.HdrEvent) != "ev-ok" {
		t.Errorf("the delivery is of %q", got.Header.Get(streams.HdrEvent))
	}
	if n := testutil.ToFloat64(m.EventsRefused.WithLabelValues("too_large")); n != 1 {
		t.Errorf("refused %v events, want 1 (a refused event must not come back)", n)
	}
}

// A death's operational-events mark lives twice the cooldown, never longer
// than the retention.
func TestOpsPolicy(t *testing.T) {
	for _, c := range []struct {
		cooldown, retention, want time.Duration
	}{
		{5 * time.Minute, 72 * time.Hour, 10 * time.Minute},
		{5 * time.Minute, 2 * time.Second, 2 * time.Second},
	} {
		p := OpsPolicy(envconfig.Common{OpsCooldown: c.cooldown, OpsDeadLimit: 3, Retention: c.retention})
		if p.DeadMarkTTL != c.want || p.Cooldown != c.cooldown || p.DeadLimit != 3 {
			t.Errorf("cooldown %s retention %s: %+v, want mark TTL %s", c.cooldown, c.retention, p, c.want)
		}
	}
}
