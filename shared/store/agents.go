package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrExists is returned when creating something whose id is taken.
var ErrExists = errors.New("already exists")

// Agent is an agent's grant. Its labels come from the grant only; the token
// is kept as a SHA-256 hash and shown once, at registration. The heartbeat
// fields live in their own key so a heartbeat never overwrites a grant.
type Agent struct {
	ID         string    `json:"id"`
	Labels     []string  `json:"labels"`
	TokenHash  string    `json:"token_hash"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Version    string    `json:"-"`
	LastSeenAt time.Time `json:"-"`
	InFlight   int       `json:"-"`
}

// AgentSeen records a heartbeat.
func (s *Store) AgentSeen(ctx context.Context, id, version string, inFlight int, at time.Time) error {
	err := s.rdb.HSet(ctx, AgentSeenKey(id), "version", version, "in_flight", inFlight, "last_seen", at.UnixMilli()).Err()
	if err != nil {
		return fmt.Errorf("agent %s heartbeat: %w", id, err)
	}
	return nil
}

// HashToken hashes an agent token for storage.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenMatches compares a presented token with the stored hash in constant time.
func (a *Agent) TokenMatches(token string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(a.TokenHash)) == 1
}

// CreateAgent stores a new agent; ErrExists when the id is taken.
func (s *Store) CreateAgent(ctx context.Context, a *Agent) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, AgentKey(a.ID), data, 0).Result()
	if err != nil {
		return fmt.Errorf("create agent %s: %w", a.ID, err)
	}
	if !ok {
		return ErrExists
	}
	if err := s.rdb.ZAdd(ctx, AgentListKey(), redis.Z{Score: float64(a.CreatedAt.UnixMicro()), Member: a.ID}).Err(); err != nil {
		return fmt.Errorf("create agent %s: %w", a.ID, err)
	}
	return nil
}

// PutAgent replaces an existing agent's record.
func (s *Store) PutAgent(ctx context.Context, a *Agent) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetXX(ctx, AgentKey(a.ID), data, 0).Result()
	if err != nil {
		return fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

// GetAgent loads one agent.
func (s *Store) GetAgent(ctx context.Context, id string) (*Agent, error) {
	data, err := s.rdb.Get(ctx, AgentKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", id, err)
	}
	var a Agent
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode agent %s: %w", id, err)
	}
	seen, err := s.rdb.HGetAll(ctx, AgentSeenKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get agent %s: %w", id, err)
	}
	a.Version = seen["version"]
	a.InFlight, _ = strconv.Atoi(seen["in_flight"])
	a.LastSeenAt = msTime(seen["last_seen"])
	return &a, nil
}

// DeleteAgent removes an agent (its token stops working at once).
func (s *Store) DeleteAgent(ctx context.Context, id string) error {
	var grant *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		grant = p.Del(ctx, AgentKey(id))
		p.Del(ctx, AgentSeenKey(id)) // apart: the two keys need not share a slot
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", id, err)
	}
	if grant.Val() == 0 {
		return ErrNotFound
	}
	return s.rdb.ZRem(ctx, AgentListKey(), id).Err()
}

// ListAgents returns a page of agents, newest first.
func (s *Store) ListAgents(ctx context.Context, limit int, cursor string) ([]*Agent, string, error) {
	ids, next, err := s.pageDesc(ctx, AgentListKey(), limit, cursor)
	if err != nil {
		return nil, "", err
	}
	out := make([]*Agent, 0, len(ids))
	for _, id := range ids {
		a, err := s.GetAgent(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, a)
	}
	return out, next, nil
}
