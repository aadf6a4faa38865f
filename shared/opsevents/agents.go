package opsevents

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/store"
)

// AgentStore is what the agent watcher reads; *store.Store implements it.
type AgentStore interface {
	StateStore
	AgentIDs(ctx context.Context) ([]string, error)
	GetAgent(ctx context.Context, id string) (*store.Agent, error)
}

// AgentOptions time the agent watcher.
type AgentOptions struct {
	// Every is how often agents are looked at (the heartbeat interval).
	Every time.Duration
	// InactiveAfter is how long without a heartbeat makes an agent
	// INACTIVE (3 heartbeat intervals, as the API shows it).
	InactiveAfter time.Duration
}

// AgentWatcher tells agents going inactive and coming back. Every replica
// of the control plane runs one; the state in Redis makes one of them
// tell each change.
type AgentWatcher struct {
	st     AgentStore
	pub    *Publisher
	policy Policy
	opts   AgentOptions
	m      *metrics.Ops
	log    zerolog.Logger
	now    func() time.Time
}

// NewAgentWatcher makes the watcher.
func NewAgentWatcher(st AgentStore, pub *Publisher, policy Policy, opts AgentOptions, m *metrics.Ops, log zerolog.Logger) *AgentWatcher {
	return &AgentWatcher{st: st, pub: pub, policy: policy.withDefaults(), opts: opts, m: m, log: log, now: time.Now}
}

// Run looks at the agents every opts.Every until ctx ends.
func (a *AgentWatcher) Run(ctx context.Context) error {
	t := time.NewTicker(a.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.Check(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn().Err(err).Msg("agents' operational events not checked")
			}
		}
	}
}

// Check looks at every agent once and tells the changes.
func (a *AgentWatcher) Check(ctx context.Context) error {
	ids, err := a.st.AgentIDs(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		a.m.SetAgents(0, 0, 0)
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = store.OpsAgentKey(id)
	}
	states, err := a.st.GetOpsStates(ctx, keys)
	if err != nil {
		return err
	}
	var errs []error
	var nActive, nInactive, nNever int
	defer func() {
		if len(errs) == 0 {
			a.m.SetAgents(nActive, nInactive, nNever)
		}
	}()
	for i, id := range ids {
		ag, err := a.st.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		now := a.now()
		seen := !ag.LastSeenAt.IsZero()
		active := seen && now.Sub(ag.LastSeenAt) < a.opts.InactiveAfter
		switch {
		case active:
			nActive++
		case seen:
			nInactive++
		default:
			nNever++
		}
		told := decodeAgent(states[keys[i]])
		if _, t, changed := a.policy.DecideAgent(told, active, seen, now); !changed {
			if t == Coalesced {
				a.m.Suppress(catalog.AgentInactive, "cooldown")
			}
			continue
		}
		var t Transition
		err = a.st.UpdateOpsState(ctx, keys[i], func(old []byte) ([]byte, error) {
			prev := decodeAgent(old)
			next, tt, ch := a.policy.DecideAgent(prev, active, seen, now)
			t, told = tt, prev
			if !ch {
				return nil, nil
			}
			return json.Marshal(next)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a.tell(ctx, ag, t, told, now)
	}
	return errors.Join(errs...)
}

func (a *AgentWatcher) tell(ctx context.Context, ag *store.Agent, t Transition, told AgentState, now time.Time) {
	var last *time.Time
	if !ag.LastSeenAt.IsZero() {
		l := ag.LastSeenAt.UTC()
		last = &l
	}
	labels := ag.Labels
	if labels == nil {
		labels = []string{}
	}
	switch t {
	case Degrade:
		_ = a.pub.Publish(ctx, AgentInactive{AgentID: ag.ID, Labels: labels, LastSeenAt: last, InactiveAt: now.UTC(),
			Message: "no heartbeat for " + a.opts.InactiveAfter.String()})
	case Recover:
		ev := AgentActive{AgentID: ag.ID, Labels: labels, LastSeenAt: last, Message: "it sends heartbeats again"}
		if told.InactiveAt != 0 {
			s := time.UnixMilli(told.InactiveAt).UTC()
			ev.InactiveSince = &s
		}
		_ = a.pub.Publish(ctx, ev)
	case Coalesced:
		a.m.Suppress(catalog.AgentInactive, "cooldown")
	}
}

func decodeAgent(b []byte) AgentState {
	var s AgentState
	if len(b) > 0 {
		_ = json.Unmarshal(b, &s)
	}
	return s
}
