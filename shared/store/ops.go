package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// OpsStateTTL is how long the state of operational events about a webhook
// or an agent is kept after its last change: after it, the next change is
// told as if nothing had been told before.
const OpsStateTTL = 7 * 24 * time.Hour

// opsTries bounds the optimistic retries of UpdateOpsState when other
// replicas change the same key at once.
const opsTries = 16

// GetOpsStates loads the operational-event states at keys (OpsWebhookKey,
// OpsAgentKey) in one round trip; a key without state is absent.
func (s *Store) GetOpsStates(ctx context.Context, keys []string) (map[string][]byte, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load ops states: %w", err)
	}
	out := make(map[string][]byte, len(keys))
	for i, c := range cmds {
		if b, err := c.Bytes(); err == nil {
			out[keys[i]] = b
		}
	}
	return out, nil
}

// UpdateOpsState changes the state at key atomically: change is given the
// current value (nil: none) and returns the new one, or nil to leave it.
// When another process changes the key meanwhile, change is called again
// with the newer value, so of several replicas deciding the same
// transition exactly one writes it (WATCH / MULTI / EXEC on one key).
func (s *Store) UpdateOpsState(ctx context.Context, key string, change func(old []byte) ([]byte, error)) error {
	for range opsTries {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			old, err := tx.Get(ctx, key).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			next, err := change(old)
			if err != nil || next == nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, next, OpsStateTTL)
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("update %s: changed by others %d times in a row", key, opsTries)
}

// AgentIDs returns every registered agent's id.
func (s *Store) AgentIDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, AgentListKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return ids, nil
}

// ClaimOps sets each of keys that is not set yet (SET NX, expiring after
// ttl) and says, per key, whether this call set it: of several processes
// claiming one key, exactly one gets true.
func (s *Store) ClaimOps(ctx context.Context, keys []string, ttl time.Duration) ([]bool, error) {
	cmds := make([]*redis.BoolCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.SetNX(ctx, k, "1", ttl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim ops keys: %w", err)
	}
	out := make([]bool, len(keys))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
