package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// mergeLua, run as mergeScript, applies one outcome to a delivery record.
// Records only move forward: an outcome whose order (epoch, attempt, status
// rank) is not above the record's is kept in the attempt history only (once)
// and changes nothing else, so late and duplicate outcomes are harmless.
//
// Every key it touches comes in KEYS, all under the webhook's hash tag (see
// keys.go): 1 record, 2 attempts, 3 webhook stats, 4 webhook's delivery
// index, 5-8 its pending, success, failed and dead indexes, 9 minute stats,
// 10 trimmed ids. ARGV: 1 outcome JSON, 2 retention s, 3 history limit,
// 4 attempt entry JSON or "", 5 latency bucket or "", 6 now ms.
//
// It returns the ids that the history limit pushed out of the indexes: they
// wait in KEYS[10] until dropTrimmedScript deletes their records (whose keys
// this call cannot name in advance). A trimmed delivery is gone at once: an
// outcome for it meanwhile starts a new record, as after the deletion.
const mergeLua = `
local u = cjson.decode(ARGV[1])
local rank = {pending=0, failed=2, success=5, dead=5}
local index = {pending=KEYS[5], success=KEYS[6], failed=KEYS[7], dead=KEYS[8]}
local st = u.status
if not index[st] then return {'0'} end
if redis.call('ZSCORE', KEYS[10], u.delivery_id) then
  -- trimmed, its record not deleted yet: gone all the same
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[10], u.delivery_id)
end
local epoch = tonumber(u.epoch) or 0
local attempt = tonumber(u.attempt) or 0
local ord = epoch * 100000 + attempt * 10 + rank[st]
if ARGV[4] ~= '' then
  local f = tostring(epoch) .. '.' .. string.format('%03d', attempt)
  if redis.call('HSETNX', KEYS[2], f, ARGV[4]) == 1 then
    local fld = 'f'
    if u.attempt_status == 'success' then fld = 's' elseif st == 'dead' then fld = 'd' end
    redis.call('HINCRBY', KEYS[9], fld, 1)
    if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[9], 'h' .. ARGV[5], 1) end
    redis.call('EXPIRE', KEYS[9], 90000)
  end
end
local cur = redis.call('HMGET', KEYS[1], 'ord', 'status', 'created_at')
if cur[1] and tonumber(cur[1]) >= ord then return {'0'} end
if st == 'dead' and ARGV[4] == '' then
  redis.call('HINCRBY', KEYS[9], 'd', 1)
  redis.call('EXPIRE', KEYS[9], 90000)
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
local trimmed, gone = {}, false
if not cur[1] then
  redis.call('ZADD', KEYS[4], created, id)
  local n = redis.call('ZCARD', KEYS[4])
  local limit = tonumber(ARGV[3])
  if n > limit then
    trimmed = redis.call('ZRANGE', KEYS[4], 0, n - limit - 1, 'WITHSCORES')
    local ids = {}
    for i = 1, #trimmed, 2 do
      local o = trimmed[i]
      ids[#ids + 1] = o
      if o == id then gone = true end -- older than the history kept
      redis.call('ZADD', KEYS[10], trimmed[i + 1], o)
      redis.call('ZREM', KEYS[4], o)
      for k = 5, 8 do redis.call('ZREM', KEYS[k], o) end
    end
    trimmed = ids
  end
elseif cur[2] ~= st and index[cur[2]] then
  redis.call('ZREM', index[cur[2]], id)
end
if not gone then redis.call('ZADD', index[st], created, id) end
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
else
  redis.call('HDEL', KEYS[1], 'completed_at')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
-- First: whether this call created the record ('1'), then the trimmed ids.
local created = '0'
if not cur[1] then created = '1' end
table.insert(trimmed, 1, created)
return trimmed
`

var mergeScript = redis.NewScript(mergeLua)

// dropTrimmedLua, run as dropTrimmedScript, deletes the records of trimmed
// deliveries of one webhook. KEYS: 1 the webhook's trimmed ids, then each
// delivery's record and attempts (2i, 2i+1); ARGV: the delivery ids. A
// delivery that an outcome started anew meanwhile (mergeScript took it out
// of KEYS[1]) is left alone. It returns the ids whose pointers are to be
// deleted: those whose records it deleted, and those another caller (the
// sweep) deleted first, without a record now: that caller may have
// deleted the pointer before the batch wrote it (pointed), which would
// leave a pointer to nothing, kept for ever.
const dropTrimmedLua = `
local dropped = {}
for i, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('DEL', KEYS[2 * i], KEYS[2 * i + 1])
    dropped[#dropped + 1] = id
  elseif redis.call('EXISTS', KEYS[2 * i]) == 0 then
    dropped[#dropped + 1] = id
  end
end
return dropped
`

var dropTrimmedScript = redis.NewScript(dropTrimmedLua)

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
	// Response is the start of the receiver's answer (at most 1 KiB) and
	// ResponseType its media type: why a receiver said no.
	Response     string `json:"response"`
	ResponseType string `json:"response_type,omitempty"`
}

// mergeKeys are the keys of mergeScript for one delivery of one webhook,
// at minute (unix ms / 60000).
func mergeKeys(webhookID, deliveryID string, minute int64) []string {
	return []string{DeliveryKey(webhookID, deliveryID), AttemptsKey(webhookID, deliveryID), StatsKey(webhookID),
		DeliveryIndexKey(webhookID), StatusIndexKey(webhookID, streams.StatusPending),
		StatusIndexKey(webhookID, streams.StatusSuccess), StatusIndexKey(webhookID, streams.StatusFailed),
		StatusIndexKey(webhookID, streams.StatusDead), MinuteKey(webhookID, minute), TrimmedKey(webhookID)}
}

// queuedMerge is a mergeScript call waiting in a pipeline.
type queuedMerge struct {
	webhookID, deliveryID string
	pending               bool // its pointer was written with it
	cmd                   *redis.Cmd
}

// queueOutcome adds an outcome's writes to p: the merge (one slot: the
// webhook's), the delivery's webhook pointer when missing (a delivery never
// changes webhook) and, for a finished outcome, the event payload's
// extension to the retention (the payload is shared by every webhook the
// event went to, so it has no webhook tag and is no key of the script). The
// extension only ever lengthens the payload's life, so a late or duplicate
// outcome extending it again is harmless.
func (s *Store) queueOutcome(ctx context.Context, p redis.Pipeliner, o *streams.Outcome, lim Limits, now int64) (*queuedMerge, error) {
	if o.WebhookID == "" || o.DeliveryID == "" || !slices.Contains(recordStatuses, o.Status) {
		return nil, nil // nothing to record it under
	}
	// The script reads these fields only (not the answer's excerpt, which
	// travels once, in the attempt entry).
	body, err := json.Marshal(mergeInput{DeliveryID: o.DeliveryID, WebhookID: o.WebhookID, EventID: o.EventID,
		EventType: o.EventType, Epoch: o.Epoch, Attempt: o.Attempt, Status: o.Status, AttemptStatus: o.AttemptStatus,
		StatusCode: o.StatusCode, Error: o.Error, Reason: o.Reason, By: o.By, NextRetryAt: o.NextRetryAt,
		CreatedAt: o.CreatedAt, PayloadSize: o.PayloadSize, TargetLabels: o.TargetLabels})
	if err != nil {
		return nil, err
	}
	entry, bucket := "", ""
	at := now
	if o.FinishedAt != 0 {
		at = o.FinishedAt
	}
	if o.AttemptStatus != "" {
		e := AttemptEntry{Attempt: o.Attempt, Epoch: o.Epoch, Status: o.AttemptStatus, StatusCode: o.StatusCode,
			DurationMs: o.DurationMs, PayloadSize: o.PayloadSize, Error: o.Error, By: o.By, Response: o.Response, ResponseType: o.ResponseType,
			StartedAt: time.UnixMilli(o.StartedAt).UTC().Format(time.RFC3339Nano)}
		eb, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		entry = string(eb)
		bucket = strconv.Itoa(bucketOf(o.DurationMs))
	}
	keys := mergeKeys(o.WebhookID, o.DeliveryID, at/60000)
	cmd := mergeScript.EvalSha(ctx, p, keys, string(body), int64(lim.Retention/time.Second), lim.HistoryLimit, entry, bucket, now)
	// The pointer comes with the pending outcome every delivery has (the
	// router's enqueue record, or a manual retry's requeue); an outcome
	// that arrives first and creates the record writes it after the batch
	// (pointed), so a delivery costs one pointer write, not one an outcome.
	pending := o.Status == streams.StatusPending
	if pending {
		p.SetNX(ctx, DeliveryWebhookKey(o.DeliveryID), o.WebhookID, 0)
	}
	// The payload was stored for retention + max hold + 1 d: a delivery
	// finishing later than that minus the retention must keep it a
	// retention from now; earlier, its TTL already outlasts the record's.
	if o.Status.Final() && o.EventID != "" && now-o.CreatedAt > (lim.PayloadTTL-lim.Retention).Milliseconds() {
		p.ExpireGT(ctx, EventKey(o.EventID), lim.Retention)
	}
	return &queuedMerge{webhookID: o.WebhookID, deliveryID: o.DeliveryID, pending: pending, cmd: cmd}, nil
}

// mergeInput is what the merge script reads of an outcome.
type mergeInput struct {
	DeliveryID    string         `json:"delivery_id"`
	WebhookID     string         `json:"webhook_id"`
	EventID       string         `json:"event_id"`
	EventType     string         `json:"event_type"`
	Epoch         int            `json:"epoch"`
	Attempt       int            `json:"attempt"`
	Status        streams.Status `json:"status"`
	AttemptStatus streams.Status `json:"attempt_status,omitempty"`
	StatusCode    int            `json:"status_code,omitempty"`
	Error         string         `json:"error,omitempty"`
	Reason        streams.Reason `json:"reason,omitempty"`
	By            string         `json:"by,omitempty"`
	NextRetryAt   int64          `json:"next_retry_at,omitempty"`
	CreatedAt     int64          `json:"created_at"`
	PayloadSize   int            `json:"payload_size"`
	TargetLabels  []string       `json:"target_labels,omitempty"`
}

// breakerLua, run as breakerScript, keeps the newest breaker report (by its
// time). KEYS: 1 webhook stats. ARGV: 1 open until ms, 2 report time ms.
const breakerLua = `
local at = tonumber(redis.call('HGET', KEYS[1], 'breaker_at') or '0')
if tonumber(ARGV[2]) >= at then
  redis.call('HSET', KEYS[1], 'breaker_until', ARGV[1], 'breaker_at', ARGV[2])
end
return 1
`

var breakerScript = redis.NewScript(breakerLua)

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
	for _, sc := range []*redis.Script{mergeScript, breakerScript, dropTrimmedScript, sweepScript} {
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
	var merges []*queuedMerge
	queue := func(o *streams.Outcome) error {
		m, err := s.queueOutcome(ctx, p, o, lim, now)
		if m != nil {
			merges = append(merges, m)
		}
		return err
	}
	for i := range enq {
		e := &enq[i]
		if len(e.Payload) > 0 {
			p.SetNX(ctx, EventKey(e.EventID), []byte(e.Payload), lim.PayloadTTL)
		}
		for _, d := range e.Deliveries {
			o := streams.Outcome{V: streams.SchemaVersion, DeliveryID: d.DeliveryID, WebhookID: d.WebhookID,
				EventID: e.EventID, EventType: e.EventType, Status: streams.StatusPending,
				CreatedAt: e.CreatedAt, PayloadSize: len(e.Payload), TargetLabels: d.TargetLabels}
			if err := queue(&o); err != nil {
				return err
			}
		}
	}
	for i := range outs {
		if err := queue(&outs[i]); err != nil {
			return err
		}
	}
	for _, b := range brk {
		breakerScript.EvalSha(ctx, p, []string{StatsKey(b.WebhookID)}, b.OpenUntil, b.At)
	}
	if err := s.execScripts(ctx, p); err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	if err := s.pointed(ctx, merges); err != nil {
		return err
	}
	return s.dropTrimmed(ctx, trimmedOf(merges))
}

// pointed writes the pointers of the records that outcomes created without
// their pending outcome (which writes its own); one round trip, and only
// when there are any. A batch that stops before it leaves the pointer to
// the delivery's pending outcome, which always comes.
func (s *Store) pointed(ctx context.Context, merges []*queuedMerge) error {
	var missing []*queuedMerge
	for _, m := range merges {
		if r, err := m.cmd.StringSlice(); err == nil && !m.pending && len(r) > 0 && r[0] == "1" {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range missing {
			p.SetNX(ctx, DeliveryWebhookKey(m.deliveryID), m.webhookID, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write delivery pointers: %w", err)
	}
	return nil
}

// trimmedOf collects, per webhook, the ids the merges pushed out of the
// history.
func trimmedOf(merges []*queuedMerge) map[string][]string {
	var out map[string][]string
	for _, m := range merges {
		ids, err := m.cmd.StringSlice()
		if err != nil || len(ids) < 2 {
			continue
		}
		ids = ids[1:] // after the created flag
		if out == nil {
			out = make(map[string][]string)
		}
		out[m.webhookID] = append(out[m.webhookID], ids...)
	}
	return out
}

// dropTrimmed deletes the records of trimmed deliveries (ids per webhook),
// then their webhook pointers. What it does not finish stays listed under
// TrimmedKey for the next sweep.
func (s *Store) dropTrimmed(ctx context.Context, trimmed map[string][]string) error {
	if len(trimmed) == 0 {
		return nil
	}
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	p := s.rdb.Pipeline()
	var cmds []*redis.Cmd
	for wh, ids := range trimmed {
		for start := 0; start < len(ids); start += 500 {
			chunk := ids[start:min(start+500, len(ids))]
			keys := make([]string, 0, 1+2*len(chunk))
			keys = append(keys, TrimmedKey(wh))
			args := make([]any, len(chunk))
			for i, d := range chunk {
				keys = append(keys, DeliveryKey(wh, d), AttemptsKey(wh, d))
				args[i] = d
			}
			cmds = append(cmds, dropTrimmedScript.EvalSha(ctx, p, keys, args...))
		}
	}
	if err := s.execScripts(ctx, p); err != nil {
		return fmt.Errorf("drop trimmed records: %w", err)
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range cmds {
			dropped, _ := c.StringSlice()
			for _, d := range dropped {
				p.Del(ctx, DeliveryWebhookKey(d))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop trimmed records: %w", err)
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
	wh, ok, err := s.deliveryOwner(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if !ok {
		return nil, nil, nil, ErrNotFound
	}
	var rec, att *redis.MapStringStringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		rec = p.HGetAll(ctx, DeliveryKey(wh, id))
		att = p.HGetAll(ctx, AttemptsKey(wh, id))
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get delivery %s: %w", id, err)
	}
	h := rec.Val()
	if len(h) == 0 {
		return nil, nil, nil, ErrNotFound
	}
	d := deliveryFromHash(id, h)
	raw := att.Val()
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
	payload, err := s.Payload(ctx, d.EventID)
	if err != nil {
		return nil, nil, nil, err
	}
	return d, hist, payload, nil
}

// ListDeliveries returns a page of a webhook's deliveries, newest first,
// optionally only those in one status.
func (s *Store) ListDeliveries(ctx context.Context, webhookID string, status streams.Status, limit int, cursor string) ([]*Delivery, string, error) {
	key := DeliveryIndexKey(webhookID)
	if status != "" {
		key = StatusIndexKey(webhookID, status)
	}
	ids, next, err := s.pageDesc(ctx, key, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, DeliveryKey(webhookID, id))
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
	m, err := s.queueOutcome(ctx, p, &o, lim, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	if err := s.execScripts(ctx, p); err != nil {
		return fmt.Errorf("requeue %s: %w", d.ID, err)
	}
	if m == nil {
		return nil
	}
	return s.dropTrimmed(ctx, trimmedOf([]*queuedMerge{m}))
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
			cmds[i] = p.HGetAll(ctx, StatsKey(id))
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
			cmds[i] = p.HGetAll(ctx, MinuteKey(webhookID, m))
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
// that expired (retention) so listings and counts stay exact, with their
// webhook pointers, and deletes the records of trimmed deliveries that a
// batch left behind.
func (s *Store) SweepIndexes(ctx context.Context, retention time.Duration) error {
	ids, err := s.rdb.ZRange(ctx, WebhookListKey(), 0, -1).Result()
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	cutoff := strconv.FormatInt(time.Now().Add(-retention).UnixMilli(), 10)
	for _, wh := range ids {
		if err := s.sweepExpired(ctx, wh, cutoff); err != nil {
			return err
		}
		if err := s.sweepTrimmed(ctx, wh); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) sweepExpired(ctx context.Context, wh, cutoff string) error {
	old, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: DeliveryIndexKey(wh), Start: "-inf", Stop: cutoff, ByScore: true, Count: 5000}).Result()
	if err != nil {
		return fmt.Errorf("sweep %s: %w", wh, err)
	}
	if len(old) == 0 {
		return nil
	}
	if err := s.loadScripts(ctx); err != nil {
		return err
	}
	keys := make([]string, 0, 1+len(recordStatuses)+len(old))
	keys = append(keys, DeliveryIndexKey(wh))
	for _, st := range recordStatuses {
		keys = append(keys, StatusIndexKey(wh, st))
	}
	args := make([]any, len(old))
	for i, d := range old {
		keys = append(keys, DeliveryKey(wh, d))
		args[i] = d
	}
	gone, err := sweepScript.EvalSha(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		if strings.Contains(err.Error(), "NOSCRIPT") {
			s.scripts.Store(false)
		}
		return fmt.Errorf("sweep %s: %w", wh, err)
	}
	if len(gone) == 0 {
		return nil
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range gone {
			p.Del(ctx, DeliveryWebhookKey(d))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("sweep %s: %w", wh, err)
	}
	return nil
}

// sweepLua, run as sweepScript, removes from a webhook's indexes the
// deliveries whose records expired. KEYS: 1 the delivery index, 2-5 its
// status indexes, then each delivery's record (5+i); ARGV: the delivery
// ids. The check and the removal are one step: an outcome that starts a
// delivery anew between them would otherwise be left out of the indexes
// (and, pending, never expire). It returns the ids it removed.
const sweepLua = `
local gone = {}
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[5 + i]) == 0 then
    for k = 1, 5 do redis.call('ZREM', KEYS[k], id) end
    gone[#gone + 1] = id
  end
end
return gone
`

var sweepScript = redis.NewScript(sweepLua)

// sweepTrimmed deletes the records still listed under a webhook's
// TrimmedKey (a batch that stopped between its two steps left them).
func (s *Store) sweepTrimmed(ctx context.Context, wh string) error {
	for {
		ids, err := s.rdb.ZRange(ctx, TrimmedKey(wh), 0, 499).Result()
		if err != nil {
			return fmt.Errorf("sweep %s: %w", wh, err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.dropTrimmed(ctx, map[string][]string{wh: ids}); err != nil {
			return fmt.Errorf("sweep %s: %w", wh, err)
		}
	}
}

// DeliveryWebhook returns the webhook a delivery record belongs to (ok
// false when there is no such record).
func (s *Store) DeliveryWebhook(ctx context.Context, id string) (string, bool, error) {
	wh, ok, err := s.deliveryOwner(ctx, id)
	if err != nil || !ok {
		return "", false, err
	}
	n, err := s.rdb.Exists(ctx, DeliveryKey(wh, id)).Result()
	if err != nil {
		return "", false, fmt.Errorf("delivery %s: %w", id, err)
	}
	return wh, n == 1, nil
}

// deliveryOwner reads a delivery's webhook pointer (ok false: none). The
// pointer may outlive the record by up to a sweep.
func (s *Store) deliveryOwner(ctx context.Context, id string) (string, bool, error) {
	w, err := s.rdb.Get(ctx, DeliveryWebhookKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("delivery %s: %w", id, err)
	}
	return w, w != "", nil
}
