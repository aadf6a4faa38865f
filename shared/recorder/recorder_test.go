package recorder

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// grants is an AgentChecker over fixed tables.
type grants struct {
	agents     map[string][]string
	hooks      map[string][]string
	deliveries map[string]string
	err        error
}

func (g grants) AgentLabels(_ context.Context, id string) ([]string, bool, error) {
	l, ok := g.agents[id]
	return l, ok, g.err
}

func (g grants) WebhookLabels(_ context.Context, id string) ([]string, bool, error) {
	l, ok := g.hooks[id]
	return l, ok, nil
}

func (g grants) DeliveryWebhook(_ context.Context, id string) (string, bool, error) {
	w, ok := g.deliveries[id]
	return w, ok, nil
}

// Which results the recorder believes from an agent.
func TestAgentMay(t *testing.T) {
	g := grants{
		agents:     map[string][]string{"eu": {"env:production", "region:eu"}},
		hooks:      map[string][]string{"prod": {"env:production"}, "staging": {"env:staging"}, "broker": nil},
		deliveries: map[string]string{"d-prod": "prod", "d-broker": "broker"},
	}
	batch := map[string]string{"d-new": "prod"} // enqueued earlier in the same batch
	for _, c := range []struct {
		name                    string
		agent, webhook, deliver string
		want                    verdict
	}{
		{"its own webhook's delivery", "eu", "prod", "d-prod", allowed},
		{"a delivery enqueued in the same batch", "eu", "prod", "d-new", allowed},
		{"a breaker report for its webhook", "eu", "prod", "", allowed},
		{"unknown or revoked agent", "us", "prod", "d-prod", refused},
		{"a label set outside its grant", "eu", "staging", "", refused},
		{"a broker webhook", "eu", "broker", "d-broker", refused},
		{"an unknown webhook", "eu", "gone", "", refused},
		{"another webhook's delivery under its own", "eu", "prod", "d-broker", refused},
		// The router stores a delivery's enqueue record after the delivery:
		// an agent's outcome can arrive first, so it is asked about later.
		{"a delivery not known yet", "eu", "prod", "d-none", unknownYet},
	} {
		r := New(nil, nil, zerolog.Nop(), Options{Agents: g})
		got, err := r.agentMay(c.agent, c.webhook, c.deliver, batch)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	// Without a checker, nothing from agents is believed; a store error is an error (asked again later).
	if v, _ := New(nil, nil, zerolog.Nop(), Options{}).agentMay("eu", "prod", "d-prod", nil); v != refused {
		t.Error("believed an agent without a checker")
	}
	g.err = errors.New("redis down")
	if _, err := New(nil, nil, zerolog.Nop(), Options{Agents: g}).agentMay("eu", "prod", "d-prod", nil); err == nil {
		t.Error("a store error was not returned")
	}
}

// An agent's outcome for an unknown delivery is refused only once it is
// old, however often it was redelivered (a batch nakked while Redis was
// An agent's outcome for an unknown delivery is refused by its age in
// stream time (results stored after it), however often it was redelivered
// and however late the recorder reads it; or once it is very old.
func TestUnknownDeliveryRefusedByAgeOnly(t *testing.T) {
	r := New(nil, nil, zerolog.Nop(), Options{})
	j := &hermodtest.Journal{}
	now := time.Now()
	for _, c := range []struct {
		name      string
		stored    time.Time
		newest    time.Time
		delivered uint64
		want      bool
	}{
		{"just stored", now.Add(-time.Second), now, 1, false},
		{"redelivered often, still young", now.Add(-30 * time.Second), now, 50, false},
		{"read late, after a backlog: nothing newer yet", now.Add(-10 * time.Minute), now.Add(-10 * time.Minute), 1, false},
		{"results 2 min newer were stored", now.Add(-3 * time.Minute), now.Add(-time.Minute), 2, true},
		{"very old by the clock", now.Add(-31 * time.Minute), now.Add(-31 * time.Minute), 2, true},
	} {
		m := &hermodtest.FakeMsg{J: j, Stored: c.stored, Delivered: c.delivered}
		if got := r.waitedEnough(m, c.newest, "eu", "d-1"); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
