// Package agentauth makes NATS itself enforce an agent's grant: an auth
// callout service (nats-server ≥ 2.10) that checks an agent's id and token
// and answers with a user JWT whose permissions allow only what the agent's
// grant needs. See docs/agents.md.
package agentauth

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/streams"
)

// UserTTL is how long an agent's user JWT is valid: the server closes the
// connection then, and the agent reconnects and is authorized again, so a
// grant change or a revocation reaches NATS within this time even when the
// kick (kick.go) fails.
const UserTTL = 5 * time.Minute

// InboxPrefix is an agent's own inbox prefix: a shared _INBOX.> would let
// one agent read another's pulled messages.
func InboxPrefix(agentID string) string { return "_INBOX_" + agentID }

// Grant is what an authenticated agent may do.
type Grant struct {
	AgentID    string
	Consumers  []string // label-set consumers its grant covers
	WebhookIDs []string // the webhooks of those label sets
}

// Grants checks credentials; ok false refuses the connection.
type Grants interface {
	Authorize(ctx context.Context, agentID, token string) (g Grant, ok bool, err error)
}

// Permissions are the subjects an agent may use, and nothing else: pulling
// from and acking its covered label sets, publishing results, talking to the
// control plane, parking its own webhooks' deliveries, and its own inbox.
func Permissions(g Grant) jwt.Permissions {
	var p jwt.Permissions
	for _, c := range g.Consumers {
		p.Pub.Allow.Add(streams.AgentConsumerAPISubjects(c)...)
		p.Sub.Allow.Add(streams.InFlightPrefix + c) // in-flight questions about its own label sets only
	}
	for _, w := range g.WebhookIDs {
		p.Pub.Allow.Add(streams.DelaySubject(w), streams.HeldSubject(w), streams.DeadSubject(w))
	}
	p.Pub.Allow.Add(streams.AgentOutcomeSubject(g.AgentID), streams.AgentBreakerSubject(g.AgentID), streams.AgentControlPrefix+g.AgentID+".*")
	p.Sub.Allow.Add(InboxPrefix(g.AgentID)+".>", streams.AgentTestPrefix+g.AgentID)
	// Replies to the control plane's requests (test, in-flight) only.
	p.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	return p
}

// Callout answers nats-server's authorization requests.
type Callout struct {
	issuer  nkeys.KeyPair
	account string
	grants  Grants
	log     zerolog.Logger
	ttl     time.Duration
}

// NewCallout builds the service from the issuer account's seed ("SA...").
// account is the account agents are placed in ("$G" without accounts).
func NewCallout(seed, account string, grants Grants, log zerolog.Logger) (*Callout, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("auth callout issuer seed: %w", err)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("auth callout issuer seed must be an account seed (SA...)")
	}
	if account == "" {
		account = "$G"
	}
	return &Callout{issuer: kp, account: account, grants: grants, log: log, ttl: UserTTL}, nil
}

// Issuer is the public key to configure as auth_callout.issuer.
func (c *Callout) Issuer() string {
	pub, _ := c.issuer.PublicKey()
	return pub
}

// Serve answers requests on nc until ctx ends. nc's user must be one of the
// server's auth_callout.auth_users.
func (c *Callout) Serve(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.QueueSubscribe(streams.SysAuthCallout, "hermod-auth", func(m *nats.Msg) {
		if resp := c.answer(m.Data); resp != nil {
			_ = m.Respond(resp)
		}
	})
	if err != nil {
		return fmt.Errorf("auth callout subscription: %w", err)
	}
	<-ctx.Done()
	return sub.Drain()
}

func (c *Callout) answer(data []byte) []byte {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		c.log.Warn().Err(err).Msg("unreadable authorization request")
		return nil
	}
	respond := func(userJWT, errMsg string) []byte {
		cr := jwt.NewAuthorizationResponseClaims(req.UserNkey)
		cr.Audience = req.Server.ID
		cr.Jwt, cr.Error = userJWT, errMsg
		tok, err := cr.Encode(c.issuer)
		if err != nil {
			c.log.Error().Err(err).Msg("cannot sign authorization response")
			return nil
		}
		return []byte(tok)
	}
	id, token := req.ConnectOptions.Username, req.ConnectOptions.Password
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	g, ok, err := c.grants.Authorize(ctx, id, token)
	if err != nil {
		c.log.Warn().Err(err).Str("agent_id", id).Msg("authorization unavailable")
		return respond("", "authorization unavailable")
	}
	if !ok {
		c.log.Warn().Str("agent_id", id).Msg("agent connection refused")
		return respond("", "not authorized")
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = UserName(g.AgentID)
	uc.Audience = c.account
	uc.Expires = time.Now().Add(c.ttl).Unix()
	uc.Permissions = Permissions(g)
	ujwt, err := uc.Encode(c.issuer)
	if err != nil {
		c.log.Error().Err(err).Msg("cannot sign user JWT")
		return respond("", "internal error")
	}
	c.log.Info().Str("agent_id", g.AgentID).Int("label_sets", len(g.Consumers)).Msg("agent connection authorized")
	return respond(ujwt, "")
}

// NewIssuerKey makes a callout issuer: an account seed ("SA...",
// HERMOD_AUTH_CALLOUT_SEED) and its public key ("A...", the server's
// auth_callout.issuer).
func NewIssuerKey() (seed, public string, err error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return "", "", fmt.Errorf("account key: %w", err)
	}
	s, err := kp.Seed()
	if err != nil {
		return "", "", fmt.Errorf("account seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("account public key: %w", err)
	}
	return string(s), pub, nil
}

// IssuerOf returns the public key ("A...") of an account seed.
func IssuerOf(seed string) (string, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return "", fmt.Errorf("auth callout issuer seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return "", fmt.Errorf("auth callout issuer seed must be an account seed (SA...)")
	}
	return pub, nil
}
