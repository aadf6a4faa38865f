package envconfig

import (
	"time"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/redisurl"
	"github.com/hermodhq/hermod/shared/streams"
)

// Common holds the settings several services share.
type Common struct {
	NATSURL         string
	RedisURL        string
	LogLevel        string
	ShutdownTimeout time.Duration
	DedupWindow     time.Duration
	Retention       time.Duration
	HistoryLimit    int
	MaxHold         time.Duration
	AcquireTTL      time.Duration
	StreamReplicas  int
	// MaxEventBytes is the largest event: the API's limit on a POST body and
	// on the envelope it publishes, the event stream's message size limit
	// (with room for headers), and the size above which the router refuses
	// an event published straight to JetStream.
	MaxEventBytes int
	// OpsCooldown (HERMOD_OPS_EVENTS_COOLDOWN) and OpsDeadLimit
	// (HERMOD_OPS_EVENTS_DEAD_LIMIT) bound operational events: one
	// hermod.webhook.degraded (hermod.agent.inactive) per webhook (agent)
	// per cooldown, and at most OpsDeadLimit hermod.delivery.dead per
	// webhook per cooldown window.
	OpsCooldown  time.Duration
	OpsDeadLimit int
}

// StreamSettings are the stream settings every service applies at start
// (they must agree across services: they are re-applied by each).
func (c Common) StreamSettings(subjects []string) streams.Settings {
	return streams.Settings{DedupWindow: c.DedupWindow, Retention: c.Retention, AcquireTTL: c.AcquireTTL,
		Subjects: subjects, Replicas: c.StreamReplicas, MaxEventBytes: c.MaxEventBytes}
}

// Isolation holds the per-webhook limits of a deliverer (or agent): the
// in-flight slots, how long a delivery waits for one, and the failure
// breaker. Its fields are dispatch.IsolationOptions' (the services convert
// it).
type Isolation struct {
	Inflight  int
	SlotWait  time.Duration // 0: never wait
	Threshold int
	Cooldown  time.Duration
}

// ReadIsolation reads HERMOD_WEBHOOK_MAX_INFLIGHT, HERMOD_WEBHOOK_SLOT_WAIT,
// HERMOD_BREAKER_THRESHOLD and HERMOD_BREAKER_COOLDOWN.
func ReadIsolation(r *Reader) Isolation {
	return Isolation{
		Inflight:  r.Int("HERMOD_WEBHOOK_MAX_INFLIGHT", 32, 1, 10000),
		SlotWait:  r.Duration("HERMOD_WEBHOOK_SLOT_WAIT", 250*time.Millisecond, 0, 10*time.Second),
		Threshold: r.Int("HERMOD_BREAKER_THRESHOLD", 10, 1, 1000),
		Cooldown:  r.Duration("HERMOD_BREAKER_COOLDOWN", 30*time.Second, time.Second, time.Hour),
	}
}

// ReadCommon reads the shared settings. required says whether the NATS and
// Redis URLs must be set (the separate binaries: no silent local default).
func ReadCommon(r *Reader, required bool) Common {
	var c Common
	if required {
		c.NATSURL = r.Required("HERMOD_NATS_URL")
		c.RedisURL = r.Required("HERMOD_REDIS_URL")
	} else {
		c.NATSURL = r.String("HERMOD_NATS_URL", "")
		c.RedisURL = r.String("HERMOD_REDIS_URL", "")
	}
	r.seen["HERMOD_REDIS_URL"] = MaskURL(c.RedisURL)
	if c.RedisURL != "" {
		if _, err := redisurl.Parse(c.RedisURL); err != nil {
			r.fail("HERMOD_REDIS_URL", "%v", err)
		}
	}
	r.seen["HERMOD_NATS_URL"] = MaskURL(c.NATSURL)
	c.LogLevel = r.String("HERMOD_LOG_LEVEL", "info")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		r.fail("HERMOD_LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	c.ShutdownTimeout = r.Duration("HERMOD_SHUTDOWN_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute)
	c.DedupWindow = r.Duration("HERMOD_DEDUP_WINDOW", 30*time.Minute, time.Minute, 24*time.Hour)
	c.Retention = r.Duration("HERMOD_RETENTION", 72*time.Hour, time.Minute, 365*24*time.Hour)
	c.HistoryLimit = r.Int("HERMOD_HISTORY_LIMIT", 10000, 1, 10_000_000)
	c.MaxHold = r.Duration("HERMOD_MAX_HOLD", 7*24*time.Hour, time.Second, 365*24*time.Hour)
	c.AcquireTTL = r.Duration("HERMOD_ACQUIRE_TTL", 60*time.Second, time.Second, time.Hour)
	c.StreamReplicas = r.Int("HERMOD_STREAM_REPLICAS", 1, 1, 5)
	c.MaxEventBytes = r.Int("HERMOD_MAX_EVENT_BYTES", 256<<10, 1024, 8<<20)
	c.OpsCooldown = r.Duration("HERMOD_OPS_EVENTS_COOLDOWN", 5*time.Minute, time.Second, 24*time.Hour)
	c.OpsDeadLimit = r.Int("HERMOD_OPS_EVENTS_DEAD_LIMIT", 10, 1, 10000)
	return c
}

// EncryptionKey reads HERMOD_ENCRYPTION_KEY (64 hex) and returns a Box, or
// nil when unset and not required.
func EncryptionKey(r *Reader, required bool) *encryption.Box {
	v := r.Secret("HERMOD_ENCRYPTION_KEY", "")
	if v == "" {
		if required {
			r.fail("HERMOD_ENCRYPTION_KEY", "is required (64 hex characters)")
		}
		return nil
	}
	k, err := encryption.ParseKey(v)
	if err != nil {
		r.fail("HERMOD_ENCRYPTION_KEY", "%s", err.Error())
		return nil
	}
	box, err := encryption.New(k)
	if err != nil {
		r.fail("HERMOD_ENCRYPTION_KEY", "%s", err.Error())
		return nil
	}
	return box
}

// AllowCIDRs reads HERMOD_DELIVERY_ALLOW_CIDRS.
func AllowCIDRs(r *Reader, def string) (string, error) {
	v := r.String("HERMOD_DELIVERY_ALLOW_CIDRS", def)
	if _, err := delivery.ParseCIDRs(v); err != nil {
		r.fail("HERMOD_DELIVERY_ALLOW_CIDRS", "%s", err.Error())
		return v, err
	}
	return v, nil
}
