//go:build faults

package faults

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/streams"
)

// The two kinds of event the subscription scenario sends, alternately:
// deployment.applied for team a, deployment.failed for team b.
const (
	typeA = "deployment.applied"
	typeB = "deployment.failed"
)

func alternate(seq int) (string, map[string]string) {
	if seq%2 == 0 {
		return typeA, map[string]string{"team": "a"}
	}
	return typeB, map[string]string{"team": "b"}
}

// TestSubscriptionChanges changes three webhooks while their deliveries
// flow (to a receiver that takes 100 ms an answer, so that deliveries of
// the first events are still queued and in flight): one's event types
// (typeA → typeB), one's filter (team a → team b), and one paused, then
// resumed. A change applies to the events published after the API
// answered it; what was routed before is delivered as routed. So: the
// first batch of events is sent and routed, the changes are made, the
// second batch is sent and routed, the paused webhook is resumed; every
// event must arrive exactly as the subscription at its publication says,
// once, and none the subscription did not match.
func TestSubscriptionChanges(t *testing.T) {
	r := startFleet(t, "subscription", fleet.Config{Layout: fleet.LayoutServices, SlowDelay: 100 * time.Millisecond}, receiver.Slow)
	both := []string{typeA, typeB}
	r.createHooks([]hookSpec{
		{name: "types", body: map[string]any{"event_types": []string{typeA}}},
		{name: "filter", body: map[string]any{"event_types": both, "filters": map[string]any{"labels": map[string]string{"team": "a"}}}},
		{name: "pause", body: map[string]any{"event_types": both}},
	})
	const half = eventsPerRun / 2 // events per batch; half of each batch of each kind
	r.want = []int{half, half, 2 * half}
	byType := func(hook, typ string) string { return "/" + r.prefix + "/" + r.name + "/" + hook + "?type=" + typ }
	r.wantByType = map[string]int{
		byType("types", typeA): half / 2, byType("types", typeB): half / 2, // before: A; after: B
		byType("filter", typeA): half / 2, byType("filter", typeB): half / 2, // team a, then team b
		byType("pause", typeA): half, byType("pause", typeB): half, // everything, once
	}

	first := r.sendEvents(r.name+"-1", half, alternate)
	if err := first.wait(); err != nil {
		t.Fatal(err)
	}
	routed := func() {
		t.Helper()
		if err := r.f.AwaitEmpty(streams.EventsStream, time.Minute); err != nil {
			t.Fatalf("events not routed: %v", err)
		}
	}
	routed()
	if got, _, _, _ := r.arrived(); got >= r.expected()/2 {
		t.Fatalf("the first batch was delivered before the changes: nothing in flight (%d arrived)", got)
	}
	r.fault("change event types, filter, pause while the first batch's deliveries flow", func() {
		r.change(0, http.MethodPatch, "", map[string]any{"event_types": []string{typeB}})
		r.change(1, http.MethodPatch, "", map[string]any{"filters": map[string]any{"labels": map[string]string{"team": "b"}}})
		r.change(2, http.MethodPost, "/pause", nil)
	})
	second := r.sendEvents(r.name+"-2", half, alternate)
	if err := second.wait(); err != nil {
		t.Fatal(err)
	}
	routed()
	r.change(2, http.MethodPost, "/resume", nil)
	r.verify(checks{}, "")
}

// change sends a change of webhook i to the API (it answers once every
// webhook index applied it) and fails the test unless it answered 200.
func (r *run) change(i int, method, suffix string, body any) {
	r.t.Helper()
	code, answer, err := call(r.f, method, "/api/v1/webhooks/"+r.hookIDs[i]+suffix, body)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("%d %s", code, answer)
	}
	if err != nil {
		r.t.Fatalf("%s webhook %d%s: %v", method, i, suffix, err)
	}
}
