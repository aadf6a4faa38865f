// Package store keeps Hermod's system of record in Redis: webhooks (secrets
// sealed with AES-256-GCM), delivery records, attempt history, statistics
// and event payloads. keys.go builds every key name; the layout and sizes
// are in docs/architecture.md, section "Redis layout".
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errors.New("not found")

// ErrBadCursor is returned for a cursor this store did not make.
var ErrBadCursor = errors.New("malformed cursor")

// Store is the Redis-backed system of record.
type Store struct {
	rdb redis.UniversalClient
	box *encryption.Box
	// scripts is true once the Lua scripts are loaded; a NOSCRIPT answer
	// (Redis restarted) clears it so the next write loads them again.
	scripts atomic.Bool
}

// New wraps a Redis client. box may be nil for services that never see a
// secret (they must not call the webhook methods).
func New(rdb redis.UniversalClient, box *encryption.Box) *Store {
	return &Store{rdb: rdb, box: box}
}

// Redis returns the client (for health checks).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// CheckKey makes sure the encryption key opens the data already stored: on
// first use it stores a sealed marker; later it must open. Without a key it
// refuses when encrypted data exists.
func (s *Store) CheckKey(ctx context.Context) error {
	v, err := s.rdb.Get(ctx, KeyCheckKey()).Result()
	if errors.Is(err, redis.Nil) {
		if s.box == nil {
			return nil
		}
		sealed, err := s.box.Seal("hermod")
		if err != nil {
			return err
		}
		if err := s.rdb.SetNX(ctx, KeyCheckKey(), sealed, 0).Err(); err != nil {
			return fmt.Errorf("store key marker: %w", err)
		}
		return s.CheckKey(ctx)
	}
	if err != nil {
		return fmt.Errorf("read key marker: %w", err)
	}
	if s.box == nil {
		return errors.New("encrypted data exists in Redis: HERMOD_ENCRYPTION_KEY is required")
	}
	if pt, err := s.box.Open(v); err != nil || pt != "hermod" {
		return errors.New("HERMOD_ENCRYPTION_KEY does not open the data stored in Redis (wrong key)")
	}
	return nil
}

type storedWebhook struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Description    string            `json:"description,omitempty"`
	URL            string            `json:"url_enc"`
	AuthHeader     string            `json:"auth_enc,omitempty"`
	Headers        string            `json:"headers_enc,omitempty"` // sealed JSON object; absent = none
	Secret         string            `json:"secret_enc"`
	PrevSecret     string            `json:"prev_secret_enc,omitempty"`
	PrevExpires    int64             `json:"prev_expires,omitempty"`
	EventTypes     []string          `json:"event_types"`
	TargetLabels   []string          `json:"target_labels,omitempty"`
	Filters        *webhooks.Filters `json:"filters,omitempty"`
	Filter         string            `json:"filter,omitempty"` // CEL expression
	MaxRetries     int               `json:"max_retries"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	Enabled        bool              `json:"enabled"`
	Format         formats.Name      `json:"format,omitempty"`
	FormatOptions  string            `json:"format_options_enc,omitempty"` // JSON, sealed: it may hold a routing key
	CreatedAt      int64             `json:"created_at"`                   // unix micro
	UpdatedAt      int64             `json:"updated_at"`
}

func (s *Store) seal(w *webhooks.Webhook) ([]byte, error) {
	if s.box == nil {
		return nil, errors.New("store has no encryption key")
	}
	sw := storedWebhook{ID: w.ID, Name: w.Name, Description: w.Description, EventTypes: w.EventTypes,
		TargetLabels: w.TargetLabels, Filters: w.Filters, Filter: w.Filter, MaxRetries: w.MaxRetries, TimeoutSeconds: w.TimeoutSeconds,
		Enabled: w.Enabled, CreatedAt: w.CreatedAt.UnixMicro(), UpdatedAt: w.UpdatedAt.UnixMicro()}
	var err error
	if sw.URL, err = s.box.Seal(w.URL); err != nil {
		return nil, err
	}
	if sw.AuthHeader, err = s.box.Seal(w.AuthHeader); err != nil {
		return nil, err
	}
	if len(w.Headers) > 0 {
		hs, err := json.Marshal(w.Headers)
		if err != nil {
			return nil, fmt.Errorf("webhook %s headers: %w", w.ID, err)
		}
		if sw.Headers, err = s.box.Seal(string(hs)); err != nil {
			return nil, err
		}
	}
	if sw.Secret, err = s.box.Seal(w.Secret); err != nil {
		return nil, err
	}
	if sw.PrevSecret, err = s.box.Seal(w.PrevSecret); err != nil {
		return nil, err
	}
	if !w.PrevSecretExpiresAt.IsZero() {
		sw.PrevExpires = w.PrevSecretExpiresAt.UnixMicro()
	}
	sw.Format = w.Format
	if w.FormatOptions != nil {
		opts, err := json.Marshal(w.FormatOptions)
		if err != nil {
			return nil, err
		}
		if sw.FormatOptions, err = s.box.Seal(string(opts)); err != nil {
			return nil, err
		}
	}
	return json.Marshal(sw)
}

// open decodes a stored webhook. Without a key (the router) the sealed
// fields stay empty: matching needs none of them.
func (s *Store) open(data []byte) (*webhooks.Webhook, error) {
	var sw storedWebhook
	if err := json.Unmarshal(data, &sw); err != nil {
		return nil, fmt.Errorf("decode webhook: %w", err)
	}
	w := &webhooks.Webhook{ID: sw.ID, Name: sw.Name, Description: sw.Description, EventTypes: sw.EventTypes,
		TargetLabels: sw.TargetLabels, Filters: sw.Filters, Filter: sw.Filter, MaxRetries: sw.MaxRetries, TimeoutSeconds: sw.TimeoutSeconds,
		Enabled: sw.Enabled, Format: sw.Format, CreatedAt: time.UnixMicro(sw.CreatedAt).UTC(), UpdatedAt: time.UnixMicro(sw.UpdatedAt).UTC()}
	if s.box == nil {
		w.URL = "" // sealed; not needed without the key
		return w, nil
	}
	var err error
	if w.URL, err = s.box.Open(sw.URL); err != nil {
		return nil, fmt.Errorf("webhook %s url: %w", sw.ID, err)
	}
	if w.AuthHeader, err = s.box.Open(sw.AuthHeader); err != nil {
		return nil, fmt.Errorf("webhook %s auth header: %w", sw.ID, err)
	}
	if sw.Headers != "" {
		hs, err := s.box.Open(sw.Headers)
		if err != nil {
			return nil, fmt.Errorf("webhook %s headers: %w", sw.ID, err)
		}
		if err := json.Unmarshal([]byte(hs), &w.Headers); err != nil {
			return nil, fmt.Errorf("webhook %s headers: %w", sw.ID, err)
		}
	}
	if w.Secret, err = s.box.Open(sw.Secret); err != nil {
		return nil, fmt.Errorf("webhook %s secret: %w", sw.ID, err)
	}
	if w.PrevSecret, err = s.box.Open(sw.PrevSecret); err != nil {
		return nil, fmt.Errorf("webhook %s previous secret: %w", sw.ID, err)
	}
	if sw.PrevExpires != 0 {
		w.PrevSecretExpiresAt = time.UnixMicro(sw.PrevExpires).UTC()
	}
	if sw.FormatOptions != "" {
		opts, err := s.box.Open(sw.FormatOptions)
		if err != nil {
			return nil, fmt.Errorf("webhook %s format options: %w", sw.ID, err)
		}
		w.FormatOptions = &formats.Options{}
		if err := json.Unmarshal([]byte(opts), w.FormatOptions); err != nil {
			return nil, fmt.Errorf("webhook %s format options: %w", sw.ID, err)
		}
	}
	return w, nil
}

// PutWebhook creates or replaces a webhook and bumps the change version,
// in that order (one pipeline of single-key commands, so the keys need not
// share a slot): whoever sees the new version or the id listed finds the
// webhook.
func (s *Store) PutWebhook(ctx context.Context, w *webhooks.Webhook) error {
	data, err := s.seal(w)
	if err != nil {
		return err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, WebhookKey(w.ID), data, 0)
		p.ZAdd(ctx, WebhookListKey(), redis.Z{Score: float64(w.CreatedAt.UnixMicro()), Member: w.ID})
		p.Incr(ctx, WebhookVersionKey())
		return nil
	})
	if err != nil {
		return fmt.Errorf("put webhook %s: %w", w.ID, err)
	}
	return nil
}

// GetWebhook loads one webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (*webhooks.Webhook, error) {
	data, err := s.rdb.Get(ctx, WebhookKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook %s: %w", id, err)
	}
	return s.open(data)
}

// DeleteWebhook removes a webhook, its statistics and its delivery records.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	n, err := s.rdb.Del(ctx, WebhookKey(id)).Result()
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	if err := s.rdb.ZRem(ctx, WebhookListKey(), id).Err(); err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	if err := s.rdb.Incr(ctx, WebhookVersionKey()).Err(); err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	return s.dropRecords(ctx, id)
}

func (s *Store) dropRecords(ctx context.Context, webhookID string) error {
	all := DeliveryIndexKey(webhookID)
	for {
		ids, err := s.rdb.ZRange(ctx, all, 0, 499).Result()
		if err != nil {
			return fmt.Errorf("drop records of %s: %w", webhookID, err)
		}
		if len(ids) == 0 {
			break
		}
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, d := range ids {
				p.Del(ctx, DeliveryKey(webhookID, d), AttemptsKey(webhookID, d))
				p.Del(ctx, DeliveryWebhookKey(d))
			}
			members := make([]any, len(ids))
			for i, d := range ids {
				members[i] = d
			}
			p.ZRem(ctx, all, members...)
			return nil
		})
		if err != nil {
			return fmt.Errorf("drop records of %s: %w", webhookID, err)
		}
	}
	if err := s.sweepTrimmed(ctx, webhookID); err != nil {
		return fmt.Errorf("drop records of %s: %w", webhookID, err)
	}
	keys := []string{StatsKey(webhookID), TrimmedKey(webhookID)}
	for _, st := range recordStatuses {
		keys = append(keys, StatusIndexKey(webhookID, st))
	}
	return s.rdb.Del(ctx, keys...).Err()
}

// Version returns the webhook change counter.
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, WebhookVersionKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// AllWebhooks loads every webhook (for an index's full resync).
func (s *Store) AllWebhooks(ctx context.Context) ([]*webhooks.Webhook, error) {
	ids, err := s.rdb.ZRange(ctx, WebhookListKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	out := make([]*webhooks.Webhook, 0, len(ids))
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		cmds := make([]*redis.StringCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.Get(ctx, WebhookKey(id))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("load webhooks: %w", err)
		}
		for _, c := range cmds {
			data, err := c.Bytes()
			if errors.Is(err, redis.Nil) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("load webhooks: %w", err)
			}
			w, err := s.open(data)
			if err != nil {
				return nil, err
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// Cursor helpers: a cursor is base64("<score>|<member>") of the last item.
func encodeCursor(score float64, member string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatFloat(score, 'f', -1, 64) + "|" + member))
}

func decodeCursor(c string) (float64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	sc, member, ok := strings.Cut(string(raw), "|")
	if !ok || member == "" {
		return 0, "", ErrBadCursor
	}
	score, err := strconv.ParseFloat(sc, 64)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	return score, member, nil
}

// pageDesc returns up to limit members of a zset, newest (highest score)
// first, after cursor; and the next cursor ("" at the end).
func (s *Store) pageDesc(ctx context.Context, key string, limit int, cursor string) ([]string, string, error) {
	maxScore := "+inf"
	var cScore float64
	var cMember string
	if cursor != "" {
		var err error
		if cScore, cMember, err = decodeCursor(cursor); err != nil {
			return nil, "", err
		}
		maxScore = strconv.FormatFloat(cScore, 'f', -1, 64)
	}
	var out []redis.Z
	offset := int64(0)
	for len(out) < limit+1 {
		batch, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Max: maxScore, Min: "-inf", Offset: offset, Count: int64(limit + 1)}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("page %s: %w", key, err)
		}
		for _, z := range batch {
			m := z.Member.(string)
			if cursor != "" && z.Score == cScore && m >= cMember {
				continue
			}
			out = append(out, z)
		}
		if len(batch) < limit+1 {
			break
		}
		offset += int64(len(batch))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[len(out)-1]
		next = encodeCursor(last.Score, last.Member.(string))
	}
	ids := make([]string, len(out))
	for i, z := range out {
		ids[i] = z.Member.(string)
	}
	return ids, next, nil
}

// ListWebhooks returns a page of webhooks, newest first.
func (s *Store) ListWebhooks(ctx context.Context, limit int, cursor string) ([]*webhooks.Webhook, string, error) {
	ids, next, err := s.pageDesc(ctx, WebhookListKey(), limit, cursor)
	if err != nil {
		return nil, "", err
	}
	out := make([]*webhooks.Webhook, 0, len(ids))
	for _, id := range ids {
		w, err := s.GetWebhook(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, w)
	}
	return out, next, nil
}
