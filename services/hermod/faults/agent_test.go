//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Labels the suite's agents are granted and their webhooks target.
const (
	agentLabel = "region:eu"
	goldLabel  = "tier:gold"
)

// startAgent registers an agent granted labels through the API and starts
// hermod-agent with its credentials (through NATS's auth callout).
func (r *run) startAgent(id string, labels ...string) {
	r.t.Helper()
	code, answer, err := call(r.f, http.MethodPost, "/api/v1/agents", map[string]any{"id": id, "labels": labels})
	var reg struct {
		Credentials struct {
			Token string `json:"token"`
		} `json:"credentials"`
	}
	if err != nil || code != http.StatusCreated || json.Unmarshal(answer, &reg) != nil || reg.Credentials.Token == "" {
		r.t.Fatalf("register agent: %d %s %v", code, answer, err)
	}
	r.f.StartAgent(fleet.RoleAgent, id, reg.Credentials.Token)
	r.started = append(r.started, fleet.RoleAgent)
}

// TestKillAgent kills hermod-agent (connected through NATS's auth callout,
// as deployed) with SIGKILL while it delivers its label set's webhooks,
// and starts it again: what it had pulled comes back when its lease runs
// out; what it had attempted and not acknowledged is attempted again.
func TestKillAgent(t *testing.T) {
	r := startFleet(t, "kill-agent", fleet.Config{Layout: fleet.LayoutServices, AuthCallout: true}, receiver.Fast)
	r.startAgent("faults-1", agentLabel)
	specs := make([]hookSpec, hooksPerRun)
	for i := range specs {
		specs[i] = hookSpec{name: fmt.Sprint(i), body: map[string]any{"event_types": []string{eventType},
			"target_labels": []string{agentLabel}}}
	}
	r.createHooks(specs)
	for i := range r.want {
		r.want[i] = eventsPerRun
	}
	r.send()
	r.awaitShare(0.25)
	r.killRestart(fleet.RoleAgent)
	r.verify(checks{duplicatesAllowed: true}, "")
	r.deliveredBy(0, "agent:faults-1")
}

// TestTargetLabelsChange moves one webhook from the broker deliverers to
// the agent and another from the agent to the broker while their
// deliveries flow (100 ms answers, so that many are queued): a queued
// delivery found on the wrong subject is rerouted, never dropped, never
// sent twice. The second webhook's old label set is targeted by no webhook
// after the change: the agent still takes the deliveries waiting there and
// sends them on (the control plane tells it of the moved webhook).
func TestTargetLabelsChange(t *testing.T) {
	r := startFleet(t, "target-labels", fleet.Config{Layout: fleet.LayoutServices, AuthCallout: true,
		SlowDelay: 100 * time.Millisecond}, receiver.Slow)
	r.startAgent("faults-2", agentLabel, goldLabel)
	r.createHooks([]hookSpec{
		{name: "to-agent", body: map[string]any{"event_types": []string{eventType}}},
		{name: "to-broker", body: map[string]any{"event_types": []string{eventType}, "target_labels": []string{agentLabel, goldLabel}}},
	})
	r.want = []int{eventsPerRun, eventsPerRun}
	in := r.send()
	hermodtest.CheckFor(t, 2*time.Minute, 10*time.Millisecond, func() error {
		if n := in.accepted.Load(); n < eventsPerRun/2 {
			return fmt.Errorf("%d events accepted", n)
		}
		return nil
	})
	r.fault("move one webhook to the agent and one to the broker while deliveries flow", func() {
		r.change(0, http.MethodPatch, "", map[string]any{"target_labels": []string{agentLabel}})
		r.change(1, http.MethodPatch, "", map[string]any{"target_labels": []string{}})
	})
	if got, _, _, _ := r.arrived(); got >= r.expected() {
		t.Fatalf("every delivery arrived before the change: nothing was in flight")
	}
	r.verify(checks{}, "")
	r.deliveredBy(0, "agent:faults-2")
	r.deliveredBy(1, "broker")
}

// deliveredBy checks that the newest delivery of webhook i was made by by.
func (r *run) deliveredBy(i int, by string) {
	r.t.Helper()
	var list struct {
		Data []struct {
			DeliveredBy string `json:"delivered_by"`
		} `json:"data"`
	}
	if err := r.apiGet("/api/v1/webhooks/"+r.hookIDs[i]+"/deliveries?status=success&limit=1", &list); err != nil {
		r.t.Fatal(err)
	}
	if len(list.Data) != 1 || list.Data[0].DeliveredBy != by {
		r.t.Errorf("webhook %d: newest delivery %+v, want delivered by %s", i, list.Data, by)
	}
}
