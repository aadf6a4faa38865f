package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/streams"
)

var recordStatuses = []streams.Status{streams.StatusPending, streams.StatusSuccess, streams.StatusFailed, streams.StatusDead}

// LatencyBuckets are the upper bounds (ms) of the per-minute latency histogram.
var LatencyBuckets = []int64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000}

func bucketOf(ms int64) int {
	for i, b := range LatencyBuckets {
		if ms <= b {
			return i
		}
	}
	return len(LatencyBuckets)
}

// mergeScript applies one outcome to a delivery record. Records only move
// forward: an outcome whose order (epoch, attempt, status rank) is not above
// the record's is kept in the attempt history only (once) and changes nothing
// else, so late and duplicate outcomes are harmless.
//
// KEYS: 1 record, 2 attempts, 3 webhook stats, 4 webhook's delivery index
// (status indexes are KEYS[4]..":"..status), 5 minute stats, 6 event payload.
// ARGV: 1 outcome JSON, 2 retention s, 3 history limit, 4 attempt entry JSON
// or "", 5 latency bucket or "", 6 now ms.
var mergeScript = redis.NewScript(`
local u = cjson.decode(ARGV[1])
local rank = {pending=0, failed=2, success=5, dead=5}
local st = u.status
local epoch = tonumber(u.epoch) or 0
local attempt = tonumber(u.attempt) or 0
local ord = epoch * 100000 + attempt * 10 + (rank[st] or 0)
if ARGV[4] ~= '' then
  local f = tostring(epoch) .. '.' .. string.format('%03d', attempt)
  if redis.call('HSETNX', KEYS[2], f, ARGV[4]) == 1 then
    local fld = 'f'
    if u.attempt_status == 'success' then fld = 's' elseif st == 'dead' then fld = 'd' end
    redis.call('HINCRBY', KEYS[5], fld, 1)
    if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[5], 'h' .. ARGV[5], 1) end
    redis.call('EXPIRE', KEYS[5], 90000)
  end
end
local cur = redis.call('HMGET', KEYS[1], 'ord', 'status', 'created_at')
if cur[1] and tonumber(cur[1]) >= ord then return 0 end
if st == 'dead' and ARGV[4] == '' then
  redis.call('HINCRBY', KEYS[5], 'd', 1)
  redis.call('EXPIRE', KEYS[5], 90000)
end
local id = u.delivery_id
local created = cur[3] or tostring(u.created_at)
local now = ARGV[6]
redis.call('HSET', KEYS[1], 'ord', ord, 'status', st, 'epoch', epoch, 'attempts', attempt,
  'webhook_id', u.webhook_id, 'event_id', u.event_id, 'event_type', u.event_type,
  'created_at', created, 'updated_at', now, 'payload_size', tonumber(u.payload_size) or 0)
if u.target_labels and type(u.target_labels) == 'table' and #u.target_labels > 0 then
  redis.call('HSET', KEYS[1], 'target_labels', cjson.encode(u.target_labels))
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'last_status_code', tonumber(u.status_code) or 0, 'delivered_by', u.by or '')
end
if u.error and u.error ~= '' then
  redis.call('HSET', KEYS[1], 'last_error', u.error)
elseif st == 'success' or st == 'pending' then
  redis.call('HDEL', KEYS[1], 'last_error')
end
if u.reason and u.reason ~= '' then redis.call('HSET', KEYS[1], 'reason', u.reason) else redis.call('HDEL', KEYS[1], 'reason') end
if u.next_retry_at and tonumber(u.next_retry_at) > 0 then
  redis.call('HSET', KEYS[1], 'next_retry_at', u.next_retry_at)
else
  redis.call('HDEL', KEYS[1], 'next_retry_at')
end
local statuses = {'pending', 'success', 'failed', 'dead'}
if not cur[1] then
  redis.call('ZADD', KEYS[4], created, id)
  local n = redis.call('ZCARD', KEYS[4])
  local limit = tonumber(ARGV[3])
  if n > limit then
    local olds = redis.call('ZRANGE', KEYS[4], 0, n - limit - 1)
    for _, o in ipairs(olds) do
      redis.call('DEL', 'hermod:d:' .. o, 'hermod:da:' .. o)
      redis.call('ZREM', KEYS[4], o)
      for _, s in ipairs(statuses) do redis.call('ZREM', KEYS[4] .. ':' .. s, o) end
    end
  end
elseif cur[2] ~= st then
  redis.call('ZREM', KEYS[4] .. ':' .. cur[2], id)
end
redis.call('ZADD', KEYS[4] .. ':' .. st, created, id)
if st == 'success' or st == 'dead' then
  local ret = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'completed_at', now)
  local last3 = redis.call('HGET', KEYS[3], 'last3') or ''
  if st == 'success' then
    redis.call('HINCRBY', KEYS[3], 'delivered', 1)
    last3 = last3 .. 'S'
  else
    redis.call('HINCRBY', KEYS[3], 'failed', 1)
    last3 = last3 .. 'D'
  end
  if #last3 > 3 then last3 = string.sub(last3, -3) end
  redis.call('HSET', KEYS[3], 'last3', last3, 'last_at', now)
  redis.call('EXPIRE', KEYS[1], ret)
  redis.call('EXPIRE', KEYS[2], ret)
  redis.call('EXPIRE', KEYS[6], ret, 'GT')
else
  redis.call('HDEL', KEYS[1], 'completed_at')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return 1
`)

// Limits of the records kept.
type Limits struct {
	Retention    time.Duration
	HistoryLimit int
	// PayloadTTL is how long an event payload is kept before any of its
	// deliveries finished (finishing extends it to Retention from then).
	PayloadTTL time.Duration
}

// AttemptEntry is one line of a delivery's attempt history.
type AttemptEntry struct {
	Attempt     int            `json:"attempt"`
	Epoch       int            `json:"epoch"`
	StartedAt   string         `json:"started_at"`
	Status      streams.Status `json:"status"`
	StatusCode  int            `json:"status_code"`
	DurationMs  int64          `json:"duration_ms"`
	PayloadSize int            `json:"payload_size"`
	Error       string         `json:"error"`
	By          string         `json:"by"`
}

func minuteKey(webhookID string, ms int64) string {
	return keyMinute + webhookID + ":" + strconv.FormatInt(ms/60000, 10)
}

func (s *Store) queueOutcome(ctx context.Context, p redis.Pipeliner, o *streams.Outcome, lim Limits, now int64) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	entry, bucket := "", ""
	at := now
	if o.FinishedAt != 0 {
		at = o.FinishedAt
	}
	if o.AttemptStatus != "" {
		e := AttemptEntry{Attempt: o.Attempt, Epoch: o.Epoch, Status: o.AttemptStatus, StatusCode: o.StatusCode,
			DurationMs: o.DurationMs, PayloadSize: o.PayloadSize, Error: o.Error, By: o.By,
			StartedAt: time.UnixMilli(o.StartedAt).UTC().Format(time.RFC3339Nano)}
		eb, err := json.Marshal(e)
		if err != nil {
			return err
		}
		entry = string(eb)
		bucket = strconv.Itoa(bucketOf(o.DurationMs))
	}
	keys := []string{keyDelivery + o.DeliveryID, keyAttempts + o.DeliveryID, keyStats + o.WebhookID,
		keyWebhookDlv + o.WebhookID, minuteKey(o.WebhookID, at), keyEvent + o.EventID}
	mergeScript.EvalSha(ctx, p, keys, string(body), int64(lim.Retention/time.Second), lim.HistoryLimit, entry, bucket, now)
	return nil
}

// breakerScript keeps the newest breaker report (by its time).
var breakerScript = redis.NewScript(`
local at = tonumber(redis.call('HGET', KEYS[1], 'breaker_at') or '0')
if tonumber(ARGV[2]) >= at then
  redis.call('HSET', KEYS[1], 'breaker_until', ARGV[1], 'breaker_at', ARGV[2])
end
return 1
`)

// Batch is what the recorder writes at once.
type Batch struct {
	Outcomes []streams.Outcome
	Enqueued []streams.Enqueued
	Breakers []streams.BreakerState
}

// ApplyBatch writes a batch in one pipeline.
func (s *Store) ApplyBatch(ctx context.Context, b Batch, lim Limits) error {
	return s.applyOutcomes(ctx, b.Outcomes, b.Enqueued, b.Breakers, lim)
}

// ApplyOutcomes writes outcomes and enqueue records in one pipeline.
func (s *Store) ApplyOutcomes(ctx context.Context, outs []streams.Outcome, enq []streams.Enqueued, lim Limits) error {
	return s.applyOutcomes(ctx, outs, enq, nil, lim)
}

// loadScripts loads the Lua scripts once (not once per batch).
func (s *Store) loadScripts(ctx context.Context) error {
	if s.scripts.Load() {
		return nil
	}
	for _, sc := range []*redis.Script{mergeScript, breakerScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	s.scripts.Store(true)
	return nil
}

// execScripts runs a pipeline of script calls, noting when Redis lost them.
func (s *Store) execScripts(ctx context.Context, p redis.Pipeliner) error {
	_, err := p.Exec(ctx)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		s.scripts.Store(false)
	}
	return err
}

func (s *Store) applyOutcomes(ctx context.Context, outs []streams.Outcome, enq []streams.Enqueued, brk []streams.BreakerState, lim Limits) error {
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	p := s.rdb.Pipeline()
	for i := range enq {
		e := &enq[i]
		if len(e.Payload) > 0 {
			p.SetNX(ctx, keyEvent+e.EventID, []byte(e.Payload), lim.PayloadTTL)
		}
		for _, d := range e.Deliveries {
			o := streams.Outcome{V: streams.SchemaVersion, DeliveryID: d.DeliveryID, WebhookID: d.WebhookID,
				EventID: e.EventID, EventType: e.EventType, Status: streams.StatusPending,
				CreatedAt: e.CreatedAt, PayloadSize: len(e.Payload), TargetLabels: d.TargetLabels}
			if err := s.queueOutcome(ctx, p, &o, lim, now); err != nil {
				return err
			}
		}
	}
	for i := range outs {
		if err := s.queueOutcome(ctx, p, &outs[i], lim, now); err != nil {
			return err
		}
	}
	for _, b := range brk {
		breakerScript.EvalSha(ctx, p, []string{keyStats + b.WebhookID}, b.OpenUntil, b.At)
	}
	if err := s.execScripts(ctx, p); err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	return nil
}

// Delivery is a delivery record as stored.
type Delivery struct {
	ID             string
	WebhookID      string
	EventID        string
	EventType      string
	Status         streams.Status
	Reason         streams.Reason
	Epoch          int
	Attempts       int
	NextRetryAt    time.Time
	LastStatusCode int
	LastError      string
	TargetLabels   []string
	DeliveredBy    string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    time.Time
	PayloadSize    int
}

func msTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func deliveryFromHash(id string, h map[string]string) *Delivery {
	d := &Delivery{ID: id, WebhookID: h["webhook_id"], EventID: h["event_id"], EventType: h["event_type"],
		Status: streams.Status(h["status"]), Reason: streams.Reason(h["reason"]), LastError: h["last_error"], DeliveredBy: h["delivered_by"],
		NextRetryAt: msTime(h["next_retry_at"]), CreatedAt: msTime(h["created_at"]), UpdatedAt: msTime(h["updated_at"]),
		CompletedAt: msTime(h["completed_at"])}
	d.Epoch, _ = strconv.Atoi(h["epoch"])
	d.Attempts, _ = strconv.Atoi(h["attempts"])
	d.LastStatusCode, _ = strconv.Atoi(h["last_status_code"])
	d.PayloadSize, _ = strconv.Atoi(h["payload_size"])
	if tl := h["target_labels"]; tl != "" {
		_ = json.Unmarshal([]byte(tl), &d.TargetLabels)
	}
	return d
}

// GetDelivery loads one delivery with its attempt history and payload.
func (s *Store) GetDelivery(ctx context.Context, id string) (*Delivery, []AttemptEntry, []byte, error) {
	h, err := s.rdb.HGetAll(ctx, keyDelivery+id).Result()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get delivery %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, nil, nil, ErrNotFound
	}
	d := deliveryFromHash(id, h)
	raw, err := s.rdb.HGetAll(ctx, keyAttempts+id).Result()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get attempts %s: %w", id, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	hist := make([]AttemptEntry, 0, len(keys))
	for _, k := range keys {
		var e AttemptEntry
		if json.Unmarshal([]byte(raw[k]), &e) == nil {
			hist = append(hist, e)
		}
	}
	payload, err := s.rdb.Get(ctx, keyEvent+d.EventID).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, nil, fmt.Errorf("get payload %s: %w", d.EventID, err)
	}
	return d, hist, payload, nil
}

// ListDeliveries returns a page of a webhook's deliveries, newest first,
// optionally only those in one status.
func (s *Store) ListDeliveries(ctx context.Context, webhookID string, status streams.Status, limit int, cursor string) ([]*Delivery, string, error) {
	key := keyWebhookDlv + webhookID
	if status != "" {
		key += ":" + string(status)
	}
	ids, next, err := s.pageDesc(ctx, key, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, keyDelivery+id)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]*Delivery, 0, len(ids))
	for i, c := range cmds {
		h := c.Val()
		if len(h) == 0 {
			continue // expired; the sweeper removes it from the index
		}
		out = append(out, deliveryFromHash(ids[i], h))
	}
	return out, next, nil
}

// Requeue marks a dead delivery pending again in a new epoch (manual retry).
func (s *Store) Requeue(ctx context.Context, d *Delivery, lim Limits) error {
	o := streams.Outcome{V: streams.SchemaVersion, DeliveryID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID,
		EventType: d.EventType, Epoch: d.Epoch + 1, Status: streams.StatusPending,
		CreatedAt: d.CreatedAt.UnixMilli(), PayloadSize: d.PayloadSize, TargetLabels: d.TargetLabels}
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	p := s.rdb.Pipeline()
	if err := s.queueOutcome(ctx, p, &o, lim, time.Now().UnixMilli()); err != nil {
		return err
	}
	if err := s.execScripts(ctx, p); err != nil {
		return fmt.Errorf("requeue %s: %w", d.ID, err)
	}
	return nil
}

// WebhookStats are a webhook's lasting counters.
type WebhookStats struct {
	Delivered      int64
	Failed         int64
	LastDeliveryAt time.Time
	Last3          string // outcomes of the last 3 finished deliveries, S or D, oldest first
	BreakerUntil   time.Time
}

// Degraded reports whether the last 3 finished deliveries all died or a
// deliverer's failure breaker for the webhook is open.
func (w WebhookStats) Degraded(now time.Time) bool {
	return w.Last3 == "DDD" || now.Before(w.BreakerUntil)
}

// Stats loads the counters of several webhooks in one round trip.
func (s *Store) Stats(ctx context.Context, ids []string) (map[string]WebhookStats, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, keyStats+id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load stats: %w", err)
	}
	out := make(map[string]WebhookStats, len(ids))
	for i, c := range cmds {
		h := c.Val()
		var st WebhookStats
		st.Delivered, _ = strconv.ParseInt(h["delivered"], 10, 64)
		st.Failed, _ = strconv.ParseInt(h["failed"], 10, 64)
		st.LastDeliveryAt = msTime(h["last_at"])
		st.Last3 = h["last3"]
		st.BreakerUntil = msTime(h["breaker_until"])
		out[ids[i]] = st
	}
	return out, nil
}

// MinuteBucket is one minute of a webhook's attempts.
type MinuteBucket struct {
	Minute  time.Time `json:"minute"`
	Success int64     `json:"success"`
	Failed  int64     `json:"failed"`
	Dead    int64     `json:"dead"`
	P50Ms   *int64    `json:"p50_ms"`
	P99Ms   *int64    `json:"p99_ms"`
}

// MinuteStats returns one bucket per minute of the window, oldest first.
func (s *Store) MinuteStats(ctx context.Context, webhookID string, window time.Duration, now time.Time) ([]MinuteBucket, error) {
	n := int(window / time.Minute)
	endMin := now.UnixMilli() / 60000
	cmds := make([]*redis.MapStringStringCmd, n)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < n; i++ {
			m := endMin - int64(n-1-i)
			cmds[i] = p.HGetAll(ctx, keyMinute+webhookID+":"+strconv.FormatInt(m, 10))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("minute stats: %w", err)
	}
	out := make([]MinuteBucket, n)
	for i, c := range cmds {
		m := endMin - int64(n-1-i)
		h := c.Val()
		b := MinuteBucket{Minute: time.UnixMilli(m * 60000).UTC()}
		b.Success, _ = strconv.ParseInt(h["s"], 10, 64)
		b.Failed, _ = strconv.ParseInt(h["f"], 10, 64)
		b.Dead, _ = strconv.ParseInt(h["d"], 10, 64)
		counts := make([]int64, len(LatencyBuckets)+1)
		var total int64
		for k, v := range h {
			if idx, ok := strings.CutPrefix(k, "h"); ok {
				j, err := strconv.Atoi(idx)
				if err != nil || j < 0 || j >= len(counts) {
					continue
				}
				c, _ := strconv.ParseInt(v, 10, 64)
				counts[j] += c
				total += c
			}
		}
		if total > 0 {
			b.P50Ms = quantile(counts, total, 0.50)
			b.P99Ms = quantile(counts, total, 0.99)
		}
		out[i] = b
	}
	return out, nil
}

// quantile returns the upper bound of the histogram bucket holding q.
func quantile(counts []int64, total int64, q float64) *int64 {
	rank := int64(q*float64(total) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for i, c := range counts {
		cum += c
		if cum >= rank {
			var v int64
			if i < len(LatencyBuckets) {
				v = LatencyBuckets[i]
			} else {
				v = LatencyBuckets[len(LatencyBuckets)-1]
			}
			return &v
		}
	}
	return nil
}

// SweepIndexes removes from the per-webhook delivery indexes the records
// that expired (retention) so listings and counts stay exact.
func (s *Store) SweepIndexes(ctx context.Context, retention time.Duration) error {
	ids, err := s.rdb.ZRange(ctx, keyWebhookList, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	cutoff := strconv.FormatInt(time.Now().Add(-retention).UnixMilli(), 10)
	for _, wh := range ids {
		all := keyWebhookDlv + wh
		old, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: all, Start: "-inf", Stop: cutoff, ByScore: true, Count: 5000}).Result()
		if err != nil {
			return fmt.Errorf("sweep %s: %w", wh, err)
		}
		if len(old) == 0 {
			continue
		}
		cmds := make([]*redis.IntCmd, len(old))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, d := range old {
				cmds[i] = p.Exists(ctx, keyDelivery+d)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("sweep %s: %w", wh, err)
		}
		var gone []any
		for i, c := range cmds {
			if c.Val() == 0 {
				gone = append(gone, old[i])
			}
		}
		if len(gone) == 0 {
			continue
		}
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, all, gone...)
			for _, st := range recordStatuses {
				p.ZRem(ctx, all+":"+string(st), gone...)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("sweep %s: %w", wh, err)
		}
	}
	return nil
}

// DeliveryWebhook returns the webhook a delivery record belongs to (ok
// false when there is no such record).
func (s *Store) DeliveryWebhook(ctx context.Context, id string) (string, bool, error) {
	w, err := s.rdb.HGet(ctx, keyDelivery+id, "webhook_id").Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("delivery %s: %w", id, err)
	}
	return w, w != "", nil
}
