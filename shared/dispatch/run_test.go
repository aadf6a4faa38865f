package dispatch

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// startFailJS is a JetStream whose consumer can be created but whose
// connection is closed, so the worker's in-flight subscription fails.
type startFailJS struct {
	*hermodtest.FakePub
	nc *nats.Conn
}

func (s startFailJS) CreateOrUpdateConsumer(context.Context, string, jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return nil, nil
}

func (s startFailJS) Consumer(context.Context, string, string) (jetstream.Consumer, error) {
	return nil, nil
}

func (s startFailJS) Stream(context.Context, string) (jetstream.Stream, error) { return nil, nil }

func (s startFailJS) Conn() *nats.Conn { return s.nc }

// A worker whose start fails returns the error having started nothing:
// no puller, no worker and no settler goroutine is left behind (goleak
// checks it when the package's tests end).
func TestWorkerRunStartFailureLeavesNothingRunning(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	b := newBundle(t)
	w := b.worker(WorkerOptions{})
	err = w.Run(context.Background(), startFailJS{FakePub: b.pub, nc: nc}, 0)
	if err == nil || !strings.Contains(err.Error(), "in-flight subscription") {
		t.Fatalf("Run = %v, want the subscription's error", err)
	}
}
