package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSessionLifecycle(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	sess, err := s.CreateSession(ctx, "key-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Token) < 40 || len(sess.CSRF) < 40 || sess.Token == sess.CSRF {
		t.Fatalf("tokens too short or equal: %q %q", sess.Token, sess.CSRF)
	}
	got, err := s.GetSession(ctx, sess.Token)
	if err != nil || got.CSRF != sess.CSRF || got.Token != "" || got.KeyID != "key-1" {
		t.Fatalf("get: %+v %v", got, err)
	}
	// Redis holds the token's hash, never the token.
	keys, err := rd.Client(t).Keys(ctx, SessionKey("*")).Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], sess.Token) {
		t.Fatalf("session keys: %v %v", keys, err)
	}
	if ttl := rd.Client(t).PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("session key TTL %v", ttl)
	}
	for _, bad := range []string{"", "nope", strings.Repeat("a", 500), sess.CSRF} {
		if _, err := s.GetSession(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession(%.20q): %v, want ErrNotFound", bad, err)
		}
	}
	if err := s.DeleteSession(ctx, sess.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, sess.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after sign-out: %v", err)
	}
	if err := s.DeleteSession(ctx, sess.Token); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

// The expiry written in the session is the rule, even where a store keeps
// the key past its TTL (the all-in-one's embedded store between snapshots).
func TestSessionExpiresByItsOwnClock(t *testing.T) {
	s, rd := newStore(t)
	ctx := context.Background()
	sess, err := s.CreateSession(ctx, "key-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := sessionKey(sess.Token)
	past := time.Now().Add(-time.Second).UnixMilli()
	if err := rd.Client(t).HSet(ctx, key, "expires", past).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, sess.Token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
}
