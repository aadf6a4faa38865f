package connect

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// Conns are what a service runs on.
type Conns struct {
	NC    *nats.Conn
	JS    jetstream.JetStream
	Redis redis.UniversalClient
	Store *store.Store
}

// Open connects to NATS and Redis, checks the encryption key against the
// stored data (box nil: a service that never needs a secret), brings the
// data to the store's key layout (store.Migrate), and creates or updates
// the streams (waiting, with backoff, for a cluster that cannot settle
// them yet; each wait is logged on log). nc, when given, is used instead
// of connecting.
func Open(ctx context.Context, name string, c envconfig.Common, box *encryption.Box, nc *nats.Conn, log zerolog.Logger) (*Conns, error) {
	own := nc == nil
	if own {
		var err error
		if nc, err = NATS(c.NATSURL, name); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Conns, error) {
		if own {
			nc.Close()
		}
		return nil, err
	}
	js, err := JetStream(nc)
	if err != nil {
		return fail(err)
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{log}) })
	rdb, err := Redis(ctx, c.RedisURL, 30*time.Second)
	if err != nil {
		return fail(err)
	}
	st := store.New(rdb, box)
	if box != nil {
		if err := st.CheckKey(ctx); err != nil {
			_ = rdb.Close()
			return fail(err)
		}
	}
	if err := st.Migrate(ctx); err != nil {
		_ = rdb.Close()
		return fail(err)
	}
	settings := c.StreamSettings(catalog.New(catalog.Default).StreamSubjects())
	settings.OnRetry = func(stream string, err error, wait time.Duration) {
		log.Warn().Err(err).Str("stream", stream).Dur("retry_in", wait).Msg("JetStream cannot settle the stream yet; trying again")
	}
	if err := streams.EnsureStreams(ctx, js, settings); err != nil {
		_ = rdb.Close()
		return fail(err)
	}
	return &Conns{NC: nc, JS: js, Redis: rdb, Store: st}, nil
}

// redisLog writes go-redis's own messages (a Sentinel naming a new
// primary, a dial that failed) to the process's log, as JSON like the rest.
// go-redis has one logger per process: the first Open sets it.
type redisLog struct{ log zerolog.Logger }

var redisLogOnce sync.Once

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn().Str("component", "redis").Msg(fmt.Sprintf(format, v...))
}

// Close closes Redis and NATS.
func (c *Conns) Close() {
	_ = c.Redis.Close()
	c.NC.Close()
}

// Checks are the readiness checks of a process on NATS and Redis.
func (c *Conns) Checks() map[string]ops.Check {
	return map[string]ops.Check{
		"nats": func(context.Context) error {
			if !c.NC.IsConnected() {
				return fmt.Errorf("not connected")
			}
			return nil
		},
		"redis": func(ctx context.Context) error { return c.Redis.Ping(ctx).Err() },
	}
}
