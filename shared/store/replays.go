package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/streams"
)

// ReplayState is where a bulk replay stands.
type ReplayState string

// Replay states: running until it went through every match (done), an
// operator cancelled it, or it could not go on (failed, with an error).
const (
	ReplayRunning   ReplayState = "running"
	ReplayDone      ReplayState = "done"
	ReplayCancelled ReplayState = "cancelled"
	ReplayFailed    ReplayState = "failed"
)

// Final says whether the replay will change no more.
func (s ReplayState) Final() bool { return s != ReplayRunning }

// ErrReplayRunning is returned when a webhook already has a running replay.
var ErrReplayRunning = errors.New("a replay of this webhook is running")

// ErrReplayFinished is returned when cancelling a replay that has finished.
var ErrReplayFinished = errors.New("the replay has finished")

// ErrLeaseLost is returned to a runner whose lease on a replay another
// process took over (it stalled longer than the lease).
var ErrLeaseLost = errors.New("the replay's lease was taken over")

// Replay is a bulk replay of one webhook's deliveries, as stored.
type Replay struct {
	ID         string
	WebhookID  string
	Statuses   []streams.Status
	Since      time.Time // created at or after
	Until      time.Time // created before
	State      ReplayState
	Matched    int64
	Requeued   int64
	Skipped    int64
	Error      string
	CreatedAt  time.Time
	FinishedAt time.Time
	// Position is where the runner resumes: the status it is going through
	// (an index into Statuses; len(Statuses) when all are done) and, in it,
	// the cursor after the last delivery it handled.
	PosStatus int
	PosCursor string
	// LeaseUntil is when the runner's lease ends (another process may take
	// the replay over after it).
	LeaseUntil time.Time
}

func replayFromHash(id string, h map[string]string) *Replay {
	r := &Replay{ID: id, WebhookID: h["webhook_id"], Since: msTime(h["since"]), Until: msTime(h["until"]),
		State: ReplayState(h["state"]), Error: h["error"], CreatedAt: msTime(h["created_at"]),
		FinishedAt: msTime(h["finished_at"]), PosCursor: h["pos_cursor"], LeaseUntil: msTime(h["lease_until"])}
	for _, st := range strings.Split(h["statuses"], ",") {
		if st != "" {
			r.Statuses = append(r.Statuses, streams.Status(st))
		}
	}
	r.Matched, _ = strconv.ParseInt(h["matched"], 10, 64)
	r.Requeued, _ = strconv.ParseInt(h["requeued"], 10, 64)
	r.Skipped, _ = strconv.ParseInt(h["skipped"], 10, 64)
	r.PosStatus, _ = strconv.Atoi(h["pos_status"])
	return r
}

func joinStatuses(ss []streams.Status) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// createReplayLua, run as createReplayScript, stores a new running replay
// unless its webhook has one running. KEYS: 1 the replay, 2 the webhook's
// running pointer, 3 the webhook's replay list, 4 the running replays.
// ARGV: 1 id, 2 now ms, 3 how long finished replays are listed (ms), then
// the replay's field/value pairs. It returns the running replay's id, or
// "" when it stored this one.
const createReplayLua = `
local cur = redis.call('GET', KEYS[2])
if cur then return cur end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SET', KEYS[2], ARGV[1])
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. tostring(now - tonumber(ARGV[3])))
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return ''
`

var createReplayScript = redis.NewScript(createReplayLua)

// claimReplayLua, run as claimReplayScript, gives a runner the lease on a
// running replay when nobody holds it (or it already does). KEYS: 1 the
// replay. ARGV: 1 owner, 2 now ms, 3 lease until ms. Returns 1 when claimed.
const claimReplayLua = `
local h = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until')
if h[1] ~= 'running' then return 0 end
if h[2] ~= ARGV[1] and (tonumber(h[3]) or 0) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until', ARGV[3])
return 1
`

var claimReplayScript = redis.NewScript(claimReplayLua)

// progressReplayLua, run as progressReplayScript, adds a runner's counts
// and moves its position, and renews (or, lease 0, gives up) its lease.
// KEYS: 1 the replay. ARGV: 1 owner, 2 lease until ms, 3 matched, 4
// requeued, 5 skipped, 6 position status, 7 position cursor. The counts
// are added even after a cancel (what the runner did meanwhile happened).
// Returns the state, or "" when the lease is another runner's.
const progressReplayLua = `
local h = redis.call('HMGET', KEYS[1], 'state', 'owner')
if h[2] ~= ARGV[1] then return '' end
redis.call('HINCRBY', KEYS[1], 'matched', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'requeued', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[5])
if h[1] == 'running' then
  redis.call('HSET', KEYS[1], 'pos_status', ARGV[6], 'pos_cursor', ARGV[7], 'lease_until', ARGV[2])
end
return h[1]
`

var progressReplayScript = redis.NewScript(progressReplayLua)

// finishReplayLua, run as finishReplayScript, moves a running replay to a
// final state: its runner (owner) finishing it, or anyone cancelling it
// (owner ""). KEYS: 1 the replay, 2 its webhook's running pointer, 3 the
// running replays. ARGV: 1 id, 2 owner or "", 3 state, 4 error, 5 now ms,
// 6 how long the replay is kept after (s). Returns {state before, lease
// until}: the transition happened when the state before is running.
const finishReplayLua = `
local h = redis.call('HMGET', KEYS[1], 'state', 'owner', 'lease_until')
if not h[1] then return {'', '0'} end
if h[1] ~= 'running' then return {h[1], '0'} end
if ARGV[2] ~= '' and h[2] ~= ARGV[2] then return {'', '0'} end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'finished_at', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {'running', h[3] or '0'}
`

var finishReplayScript = redis.NewScript(finishReplayLua)

func (s *Store) replayScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	return sc.Run(ctx, s.rdb, keys, args...)
}

// CreateReplay stores r as a running replay. keep is how long finished
// replays stay listed (and stored). It returns ErrReplayRunning, with the
// running replay's id, when r's webhook has one running.
func (s *Store) CreateReplay(ctx context.Context, r *Replay, keep time.Duration) (string, error) {
	now := r.CreatedAt.UnixMilli()
	args := []any{r.ID, now, keep.Milliseconds(),
		"webhook_id", r.WebhookID, "statuses", joinStatuses(r.Statuses),
		"since", r.Since.UnixMilli(), "until", r.Until.UnixMilli(), "state", string(ReplayRunning),
		"matched", 0, "requeued", 0, "skipped", 0, "created_at", now, "pos_status", 0, "pos_cursor", "",
		"owner", "", "lease_until", 0}
	cur, err := s.replayScript(ctx, createReplayScript, []string{ReplayKey(r.ID), ReplayRunningKey(r.WebhookID),
		ReplayListKey(r.WebhookID), ReplaysActiveKey()}, args...).Text()
	if err != nil {
		return "", fmt.Errorf("create replay: %w", err)
	}
	if cur != "" {
		return cur, ErrReplayRunning
	}
	r.State = ReplayRunning
	return "", nil
}

// GetReplay loads one replay.
func (s *Store) GetReplay(ctx context.Context, id string) (*Replay, error) {
	h, err := s.rdb.HGetAll(ctx, ReplayKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get replay %s: %w", id, err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return replayFromHash(id, h), nil
}

// ListReplays returns a page of a webhook's replays, newest first.
func (s *Store) ListReplays(ctx context.Context, webhookID string, limit int, cursor string) ([]*Replay, string, error) {
	ids, next, err := s.pageDesc(ctx, ReplayListKey(webhookID), limit, cursor)
	if err != nil {
		return nil, "", err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, ReplayKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list replays: %w", err)
	}
	out := make([]*Replay, 0, len(ids))
	for i, c := range cmds {
		if h := c.Val(); len(h) > 0 {
			out = append(out, replayFromHash(ids[i], h))
		}
	}
	return out, next, nil
}

// RunningReplays returns the ids of the running replays, oldest first.
func (s *Store) RunningReplays(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, ReplaysActiveKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("running replays: %w", err)
	}
	return ids, nil
}

// ClaimReplay gives owner the lease on a running replay until until, when
// nobody else holds a live lease on it. It says whether owner has it.
func (s *Store) ClaimReplay(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	n, err := s.replayScript(ctx, claimReplayScript, []string{ReplayKey(id)}, owner, now.UnixMilli(), until.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("claim replay %s: %w", id, err)
	}
	return n == 1, nil
}

// ReplayStep is what a runner did since its last report.
type ReplayStep struct {
	Matched, Requeued, Skipped int64
	PosStatus                  int
	PosCursor                  string
}

// ReplayProgress adds a runner's step to its replay and renews its lease
// until until (zero: gives the lease up). It returns the replay's state
// (a cancel shows here), or ErrLeaseLost.
func (s *Store) ReplayProgress(ctx context.Context, id, owner string, st ReplayStep, until time.Time) (ReplayState, error) {
	lease := int64(0)
	if !until.IsZero() {
		lease = until.UnixMilli()
	}
	state, err := s.replayScript(ctx, progressReplayScript, []string{ReplayKey(id)}, owner, lease,
		st.Matched, st.Requeued, st.Skipped, st.PosStatus, st.PosCursor).Text()
	if err != nil {
		return "", fmt.Errorf("replay %s progress: %w", id, err)
	}
	if state == "" {
		return "", ErrLeaseLost
	}
	return ReplayState(state), nil
}

// FinishReplay moves owner's running replay to a final state (errMsg for
// failed); keep is how long it is stored after. It says whether it did
// (false: it was cancelled meanwhile, or another runner holds it).
func (s *Store) FinishReplay(ctx context.Context, r *Replay, owner string, state ReplayState, errMsg string, now time.Time, keep time.Duration) (bool, error) {
	before, _, err := s.finishReplay(ctx, r, owner, state, errMsg, now, keep)
	return before == ReplayRunning, err
}

// CancelReplay cancels a running replay. It returns ErrReplayFinished for
// a replay already final, and whether a runner held a live lease on it
// then (it then sees the cancel at its next step; else nobody runs it).
func (s *Store) CancelReplay(ctx context.Context, r *Replay, now time.Time, keep time.Duration) (bool, error) {
	before, leaseUntil, err := s.finishReplay(ctx, r, "", ReplayCancelled, "", now, keep)
	if err != nil {
		return false, err
	}
	switch before {
	case ReplayRunning:
		return leaseUntil >= now.UnixMilli(), nil
	case "":
		return false, ErrNotFound
	default:
		return false, ErrReplayFinished
	}
}

func (s *Store) finishReplay(ctx context.Context, r *Replay, owner string, state ReplayState, errMsg string, now time.Time, keep time.Duration) (ReplayState, int64, error) {
	res, err := s.replayScript(ctx, finishReplayScript, []string{ReplayKey(r.ID), ReplayRunningKey(r.WebhookID), ReplaysActiveKey()},
		r.ID, owner, string(state), errMsg, now.UnixMilli(), max(int64(keep/time.Second), 1)).StringSlice()
	if err != nil {
		return "", 0, fmt.Errorf("finish replay %s: %w", r.ID, err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("finish replay %s: unexpected answer %q", r.ID, res)
	}
	lease, _ := strconv.ParseInt(res[1], 10, 64)
	return ReplayState(res[0]), lease, nil
}

// ListDeliveriesBetween returns up to limit of a webhook's deliveries in
// one status created in [since, until), oldest first, after cursor; and
// the next cursor ("" at the end). The cursor names the last delivery
// returned (creation time and id), not an offset: deliveries that leave the
// status meanwhile (a replay requeues them) shift nothing.
func (s *Store) ListDeliveriesBetween(ctx context.Context, webhookID string, status streams.Status, since, until time.Time,
	limit int, cursor string) ([]*Delivery, string, error) {
	key := StatusIndexKey(webhookID, status)
	minScore := strconv.FormatInt(since.UnixMilli(), 10)
	var cScore float64
	var cMember string
	if cursor != "" {
		var err error
		if cScore, cMember, err = decodeCursor(cursor); err != nil {
			return nil, "", err
		}
		minScore = strconv.FormatFloat(cScore, 'f', -1, 64)
	}
	maxScore := "(" + strconv.FormatInt(until.UnixMilli(), 10)
	var zs []redis.Z
	offset := int64(0)
	for len(zs) <= limit {
		batch, err := s.rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Min: minScore, Max: maxScore, Offset: offset, Count: int64(limit + 1)}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("page %s: %w", key, err)
		}
		for _, z := range batch {
			m := z.Member.(string)
			if cursor != "" && z.Score == cScore && m <= cMember {
				continue
			}
			zs = append(zs, z)
		}
		if len(batch) < limit+1 {
			break
		}
		offset += int64(len(batch))
	}
	more := len(zs) > limit
	if more {
		zs = zs[:limit]
	}
	next := ""
	if more && len(zs) > 0 {
		last := zs[len(zs)-1]
		next = encodeCursor(last.Score, last.Member.(string))
	}
	cmds := make([]*redis.MapStringStringCmd, len(zs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			cmds[i] = p.HGetAll(ctx, DeliveryKey(webhookID, z.Member.(string)))
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]*Delivery, 0, len(zs))
	for i, c := range cmds {
		if h := c.Val(); len(h) > 0 {
			out = append(out, deliveryFromHash(zs[i].Member.(string), h))
		}
	}
	return out, next, nil
}

// CountDeliveriesBetween counts a webhook's deliveries in one status
// created in [since, until).
func (s *Store) CountDeliveriesBetween(ctx context.Context, webhookID string, status streams.Status, since, until time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, StatusIndexKey(webhookID, status), strconv.FormatInt(since.UnixMilli(), 10),
		"("+strconv.FormatInt(until.UnixMilli(), 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("count deliveries: %w", err)
	}
	return n, nil
}

// Payload returns an event's stored envelope (nil when it expired).
func (s *Store) Payload(ctx context.Context, eventID string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, EventKey(eventID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get payload %s: %w", eventID, err)
	}
	return b, nil
}
