package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session is a signed-in web page session. The cookie carries Token; the
// page carries CSRF and sends it back on every state-changing request.
type Session struct {
	Token string // only set by CreateSession: never stored in clear
	CSRF  string
	// KeyID names the admin key that signed in (a hash of it, never the
	// key), so removing a key from the configuration ends its sessions.
	KeyID     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RandomToken returns n random bytes, base64url without padding.
func RandomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sessionKey is the key of a cookie value's session: under the value's
// SHA-256, so a copy of Redis does not hand out usable cookies.
func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return SessionKey(hex.EncodeToString(sum[:]))
}

// CreateSession stores a new session valid for ttl, signed in with the
// admin key that keyID names.
func (s *Store) CreateSession(ctx context.Context, keyID string, ttl time.Duration) (*Session, error) {
	token, err := RandomToken(32)
	if err != nil {
		return nil, err
	}
	csrf, err := RandomToken(32)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	sess := &Session{Token: token, CSRF: csrf, KeyID: keyID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	key := sessionKey(token)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "csrf", csrf, "key", keyID, "created", now.UnixMilli(), "expires", sess.ExpiresAt.UnixMilli())
		p.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return sess, nil
}

// GetSession returns the session of a cookie value; ErrNotFound when it is
// unknown, signed out or expired.
func (s *Store) GetSession(ctx context.Context, token string) (*Session, error) {
	if token == "" || len(token) > 128 {
		return nil, ErrNotFound
	}
	h, err := s.rdb.HGetAll(ctx, sessionKey(token)).Result()
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	if len(h) == 0 || h["csrf"] == "" {
		return nil, ErrNotFound
	}
	created, _ := strconv.ParseInt(h["created"], 10, 64)
	expires, _ := strconv.ParseInt(h["expires"], 10, 64)
	sess := &Session{CSRF: h["csrf"], KeyID: h["key"], CreatedAt: time.UnixMilli(created).UTC(), ExpiresAt: time.UnixMilli(expires).UTC()}
	// The expiry is checked here too: Redis's own TTL is the cleanup, not
	// the rule (an embedded store may keep keys past their TTL).
	if !time.Now().Before(sess.ExpiresAt) {
		return nil, ErrNotFound
	}
	return sess, nil
}

// DeleteSession signs a session out; deleting an unknown one is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.rdb.Del(ctx, sessionKey(token)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
