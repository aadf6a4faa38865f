package agentauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/streams"
)

// Kicking: an agent's permissions are fixed in its user JWT when it
// connects, so a grant change (PUT) or a revocation (DELETE) reaches NATS
// only when the agent is authorized again. The control plane therefore asks
// for the agent's open connections to be closed ("kicked"): the agent
// reconnects and the callout authorizes it with the new grant, or refuses it
// when revoked. The user JWT's expiry (UserTTL) and the control plane's
// heartbeat refusal remain the backstop when a kick fails.

// UserName is the name an agent's connection carries on the server (the user
// JWT's name, which the server uses as the connection's user): what the
// system account's CONNZ filters on.
func UserName(agentID string) string { return "agent:" + agentID }

// KickReply answers a kick request.
type KickReply struct {
	Kicked int    `json:"kicked"`
	Error  string `json:"error,omitempty"`
}

// ErrNoKicker: nobody serves kick requests (no system-account connection).
var ErrNoKicker = errors.New("no kicker (set HERMOD_NATS_SYSTEM_URL on hermod-api)")

// RequestKick asks for agentID's connections to be closed and returns how
// many were.
func RequestKick(ctx context.Context, nc *nats.Conn, agentID string) (int, error) {
	body, _ := json.Marshal(KickRequest{KickAgentID: agentID})
	m, err := nc.RequestWithContext(ctx, streams.AgentKickSubject(agentID), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return 0, ErrNoKicker
	}
	if err != nil {
		return 0, fmt.Errorf("kick request: %w", err)
	}
	var r KickReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return 0, fmt.Errorf("kick reply: %w", err)
	}
	if r.Error != "" {
		return r.Kicked, fmt.Errorf("kick: %s", r.Error)
	}
	return r.Kicked, nil
}

// KickRequest is the body of a kick request: it names the agent again. An
// agent cannot publish on streams.AgentKickPrefix, but it can pick the reply subject of
// its own JetStream requests, and the server then publishes JetStream's
// answer there; such an answer never has this shape, so it kicks no one.
type KickRequest struct {
	KickAgentID string `json:"kick_agent_id"`
}

// parseKickRequest accepts exactly {"kick_agent_id": id} for the subject's id.
func parseKickRequest(data []byte, id string) bool {
	var r KickRequest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(&r) == nil && r.KickAgentID == id && id != "" && !dec.More()
}

// maxConcurrentKicks bounds the kicks served at once (each waits for the
// servers' answers).
const maxConcurrentKicks = 8

// KickFunc closes agentID's connections and returns how many it closed.
type KickFunc func(ctx context.Context, agentID string) (int, error)

// ServeKicks answers kick requests on nc with kick until ctx ends.
func ServeKicks(ctx context.Context, nc *nats.Conn, kick KickFunc, log zerolog.Logger) error {
	sem := make(chan struct{}, maxConcurrentKicks)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
	)
	sub, err := nc.QueueSubscribe(streams.AgentKickPrefix+"*", "hermod-kick", func(m *nats.Msg) {
		id := strings.TrimPrefix(m.Subject, streams.AgentKickPrefix)
		if !parseKickRequest(m.Data, id) {
			log.Warn().Str("subject", m.Subject).Msg("ignoring a malformed kick request")
			return
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := kick(kctx, id)
			r := KickReply{Kicked: n}
			if err != nil {
				r.Error = err.Error()
				log.Warn().Err(err).Str("agent_id", id).Int("kicked", n).Msg("could not kick the agent's connections")
			} else {
				log.Info().Str("agent_id", id).Int("kicked", n).Msg("agent connections kicked")
			}
			data, _ := json.Marshal(r)
			_ = m.Respond(data)
		}()
	})
	if err != nil {
		return fmt.Errorf("kick subscription: %w", err)
	}
	<-ctx.Done()
	err = sub.Unsubscribe()
	mu.Lock()
	closed = true
	mu.Unlock()
	wg.Wait()
	return err
}

// System-account requests (nats-server ≥ 2.10): streams.SysConnzPing,
// which every server of the cluster answers, and streams.SysKickSubject, on
// which one server closes one connection.

// SystemKicker kicks through a system-account connection: it asks every
// server for the agent's connections (CONNZ filtered on the user name) and
// asks each server to close its own (KICK with the connection id).
type SystemKicker struct {
	nc *nats.Conn
	// First is how long to wait for the first server's answer; Quiet, how
	// long after the last answer to wait for other servers of a cluster.
	First, Quiet time.Duration
}

// NewSystemKicker uses nc, connected as a system-account user.
func NewSystemKicker(nc *nats.Conn) *SystemKicker {
	return &SystemKicker{nc: nc, First: 2 * time.Second, Quiet: 250 * time.Millisecond}
}

type apiError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

type connzAnswer struct {
	Server struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"server"`
	Data *struct {
		Conns []struct {
			Cid  uint64 `json:"cid"`
			User string `json:"authorized_user"`
		} `json:"connections"`
	} `json:"data"`
	Error *apiError `json:"error"`
}

// Kick implements KickFunc. It is long because it is one gather-then-act
// exchange with every server of a cluster: ask all for the connections,
// collect answers until they stop coming, then ask each owner to close its
// own; splitting it would spread one protocol over several functions.
func (k *SystemKicker) Kick(ctx context.Context, agentID string) (int, error) {
	user := UserName(agentID)
	inbox := k.nc.NewRespInbox()
	sub, err := k.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("connz subscription: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(map[string]any{"auth": true, "user": user, "state": 0, "limit": 1024})
	if err := k.nc.PublishRequest(streams.SysConnzPing, inbox, req); err != nil {
		return 0, fmt.Errorf("connz request: %w", err)
	}
	type target struct {
		server string
		cid    uint64
	}
	var targets []target
	var errs []error
	answers := 0
	wait := k.First
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("connz: %w", ctx.Err())
			}
			break // no more answers
		}
		answers++
		wait = k.Quiet
		var a connzAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			errs = append(errs, fmt.Errorf("connz answer: %w", err))
			continue
		}
		if a.Error != nil {
			errs = append(errs, fmt.Errorf("connz on %s: %s", a.Server.Name, a.Error.Description))
			continue
		}
		if a.Data == nil {
			continue
		}
		for _, c := range a.Data.Conns {
			if c.User == user {
				targets = append(targets, target{a.Server.ID, c.Cid})
			}
		}
	}
	if answers == 0 {
		return 0, errors.New("no server answered the connz request (is HERMOD_NATS_SYSTEM_URL a system-account user?)")
	}
	kicked := 0
	for _, t := range targets {
		body, _ := json.Marshal(map[string]uint64{"cid": t.cid})
		m, err := k.nc.RequestWithContext(ctx, streams.SysKickSubject(t.server), body)
		if err != nil {
			errs = append(errs, fmt.Errorf("kick connection %d on %s: %w", t.cid, t.server, err))
			continue
		}
		var a struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &a); err != nil {
			errs = append(errs, fmt.Errorf("kick answer: %w", err))
			continue
		}
		if a.Error != nil {
			if strings.Contains(a.Error.Description, "no such client") {
				continue // it went away meanwhile
			}
			errs = append(errs, fmt.Errorf("kick connection %d on %s: %s", t.cid, t.server, a.Error.Description))
			continue
		}
		kicked++
	}
	return kicked, errors.Join(errs...)
}

// AccountOf returns the account nc's user is in ($SYS.REQ.USER.INFO): agents
// are placed in the services' account, where the streams are.
func AccountOf(ctx context.Context, nc *nats.Conn) (string, error) {
	m, err := nc.RequestWithContext(ctx, streams.SysUserInfo, nil)
	if err != nil {
		return "", fmt.Errorf("user info: %w", err)
	}
	var a struct {
		Data *struct {
			Account string `json:"account"`
		} `json:"data"`
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return "", fmt.Errorf("user info answer: %w", err)
	}
	if a.Error != nil || a.Data == nil || a.Data.Account == "" {
		return "", fmt.Errorf("user info: no account in the answer %q", m.Data)
	}
	return a.Data.Account, nil
}
