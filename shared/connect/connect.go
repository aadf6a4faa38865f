// Package connect opens Hermod's connections to NATS and Redis with the
// settings every service shares.
package connect

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/redisurl"
)

// NATS connects to url, retrying the first connection for up to wait.
func NATS(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(64 << 20)}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}

// PubAckTimeout is how long an asynchronous publish waits for its
// acknowledgement before it fails and is published again (deduplicated by
// its message id where one is set). A PubAck normally takes milliseconds;
// one lost when a stream's leader dies must not hold the event or the
// delivery for long (it held a router's event for 30 s).
const PubAckTimeout = 5 * time.Second

// JetStream returns a JetStream context with bounded async publishing.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192), jetstream.WithPublishAsyncTimeout(PubAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

// Redis opens a client for url (a single server, a Sentinel-managed
// primary or a Redis Cluster: see package redisurl) and pings it (for up
// to wait).
func Redis(ctx context.Context, url string, wait time.Duration) (redis.UniversalClient, error) {
	cfg, err := redisurl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("HERMOD_REDIS_URL: %w", err)
	}
	cfg.Tune(32, 2)
	c := cfg.Client()
	deadline := time.Now().Add(wait)
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		err = c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = c.Close()
			return nil, fmt.Errorf("redis (%s) at %s: %w", cfg.Kind, cfg.Where(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
