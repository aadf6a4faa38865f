package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Migrate brings data written by an older build to LayoutVersion and then
// records the version under LayoutKey, so it runs once. Every process calls
// it when it opens the store, before it reads or writes records.
//
// Layout 1 to 2 moves (RENAME keeps each key's TTL) every delivery record
// and attempt history under its webhook's tag, writes each delivery's
// webhook pointer, and moves statistics, delivery indexes and minute
// buckets under the tag. Webhooks, agents, sessions and event payloads keep
// their keys. Every step checks its source, so a run that stopped half way
// is finished by the next, and processes that start together may all run it
// (they then find each other's work done). Processes of an older build must
// be stopped before a newer one starts: what they write in the old layout
// after the migration is not moved.
func (s *Store) Migrate(ctx context.Context) error {
	v, err := s.rdb.Get(ctx, LayoutKey()).Result()
	version := 1 // no version recorded: layout 1, or an empty Redis
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return fmt.Errorf("read layout version: %w", err)
	default:
		if version, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("layout version %q in Redis: %w", v, err)
		}
	}
	if version == LayoutVersion {
		return nil
	}
	if version > LayoutVersion {
		return fmt.Errorf("the data in Redis has layout version %d, newer than this build's %d: run a newer build", version, LayoutVersion)
	}
	for _, step := range []func(context.Context) error{s.moveV1Records, s.moveV1Attempts, s.moveV1WebhookKeys} {
		if err := step(ctx); err != nil {
			return fmt.Errorf("migrate Redis layout %d to %d: %w", version, LayoutVersion, err)
		}
	}
	if err := s.rdb.Set(ctx, LayoutKey(), LayoutVersion, 0).Err(); err != nil {
		return fmt.Errorf("record layout version: %w", err)
	}
	return nil
}

// scanEach calls f with the keys matching pattern, a SCAN page at a time.
// A SCAN covers one server, so on a Redis Cluster every primary is scanned
// (f is called by one of them at a time).
func (s *Store) scanEach(ctx context.Context, pattern string, f func(keys []string) error) error {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return scanNode(ctx, s.rdb, pattern, f)
	}
	var mu sync.Mutex
	return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		return scanNode(ctx, node, pattern, func(keys []string) error {
			mu.Lock()
			defer mu.Unlock()
			return f(keys)
		})
	})
}

// scanner is the one command scanNode needs.
type scanner interface {
	Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
}

func scanNode(ctx context.Context, rdb scanner, pattern string, f func(keys []string) error) error {
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", pattern, err)
		}
		if len(keys) > 0 {
			if err := f(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// execMoves runs a pipeline of renames and pointer writes; a rename whose
// source is gone (another process moved it, or it expired) is done.
func execMoves(ctx context.Context, p redis.Pipeliner) error {
	cmds, err := p.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !strings.Contains(e.Error(), "no such key") {
			return fmt.Errorf("move keys: %w", e)
		}
	}
	return nil
}

// moveV1Records moves each delivery record and its attempts under the
// webhook's tag. The pointer is written first: a run stopped after it is
// finished by moveV1Attempts.
func (s *Store) moveV1Records(ctx context.Context) error {
	return s.scanEach(ctx, v1Pattern(v1Delivery), func(keys []string) error {
		var ids []string
		for _, k := range keys {
			if d, ok := v1Rest(v1Delivery, k); ok {
				ids = append(ids, d)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		owners := make([]*redis.StringCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, d := range ids {
				owners[i] = p.HGet(ctx, v1DeliveryKey(d), "webhook_id")
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read records: %w", err)
		}
		p := s.rdb.Pipeline()
		for i, d := range ids {
			wh := owners[i].Val()
			if wh == "" {
				continue // gone meanwhile, or not a record of any webhook
			}
			p.Set(ctx, DeliveryWebhookKey(d), wh, 0)
			p.Rename(ctx, v1DeliveryKey(d), DeliveryKey(wh, d))
			p.Rename(ctx, v1AttemptsKey(d), AttemptsKey(wh, d))
		}
		return execMoves(ctx, p)
	})
}

// moveV1Attempts moves the attempt histories left behind by a stopped run
// (their record moved, their pointer written). One whose delivery has no
// pointer has had no record since before the migration; it stays as it is.
func (s *Store) moveV1Attempts(ctx context.Context) error {
	return s.scanEach(ctx, v1Pattern(v1Attempts), func(keys []string) error {
		var ids []string
		for _, k := range keys {
			if d, ok := v1Rest(v1Attempts, k); ok {
				ids = append(ids, d)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		owners := make([]*redis.StringCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, d := range ids {
				owners[i] = p.Get(ctx, DeliveryWebhookKey(d))
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read delivery pointers: %w", err)
		}
		p := s.rdb.Pipeline()
		for i, d := range ids {
			if wh := owners[i].Val(); wh != "" {
				p.Rename(ctx, v1AttemptsKey(d), AttemptsKey(wh, d))
			}
		}
		return execMoves(ctx, p)
	})
}

// moveV1WebhookKeys moves statistics, delivery indexes and minute buckets
// under their webhook's tag.
func (s *Store) moveV1WebhookKeys(ctx context.Context) error {
	for _, kind := range []struct {
		prefix string
		target func(string) (string, bool)
	}{{v1Stats, v1StatsTarget}, {v1Index, v1IndexTarget}, {v1Minute, v1MinuteTarget}} {
		err := s.scanEach(ctx, v1Pattern(kind.prefix), func(keys []string) error {
			p := s.rdb.Pipeline()
			for _, k := range keys {
				if to, ok := kind.target(k); ok {
					p.Rename(ctx, k, to)
				}
			}
			return execMoves(ctx, p)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
