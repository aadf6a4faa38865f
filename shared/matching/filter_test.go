package matching

import (
	"slices"
	"testing"

	"github.com/hermodhq/hermod/shared/webhooks"
)

func filtered(id, expr string, types ...string) *webhooks.Webhook {
	if len(types) == 0 {
		types = []string{"*"}
	}
	return &webhooks.Webhook{ID: id, EventTypes: types, Filter: expr}
}

func ids(ws []*webhooks.Webhook) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.ID)
	}
	slices.Sort(out)
	return out
}

// The event type patterns, the simple filters and the expression must all
// match; a failing expression is no match and is reported.
func TestMatchWithFilterExpressions(t *testing.T) {
	agent := "a-1"
	ws := []*webhooks.Webhook{
		filtered("plain", ""),
		filtered("severe", `data.severity in ["critical","high"] && labels.env == "prod"`),
		filtered("severe-alerts-only", `data.severity == "critical"`, "alert.*"),
		{ID: "agent-and-expr", EventTypes: []string{"*"}, Filters: &webhooks.Filters{AgentID: &agent}, Filter: `data.severity == "critical"`},
		filtered("missing", `data.team == "infra"`),
		filtered("guarded", `has(data.team) && data.team == "infra"`),
		filtered("by-id", `id == "ev-9" && timestamp != ""`),
	}
	s := Build(ws)
	cases := []struct {
		envelope string
		want     []string
		errs     map[string]string // webhook id -> reason
	}{
		{`{"id":"ev-1","event_type":"deployment.applied","timestamp":"2026-01-01T00:00:00Z","labels":{"env":"prod"},"data":{"severity":"critical","agent_id":"a-1"}}`,
			[]string{"agent-and-expr", "plain", "severe"}, map[string]string{"missing": "missing_field"}},
		{`{"id":"ev-2","event_type":"alert.fired","labels":{"env":"prod"},"data":{"severity":"critical","team":"infra"}}`,
			[]string{"guarded", "missing", "plain", "severe", "severe-alerts-only"}, nil},
		{`{"id":"ev-3","event_type":"alert.fired","data":{"severity":"high"}}`,
			[]string{"plain"}, map[string]string{"severe": "missing_field", "missing": "missing_field"}},
		{`{"id":"ev-9","event_type":"stack.created","timestamp":"t"}`,
			[]string{"by-id", "plain"}, map[string]string{"missing": "missing_field", "severe": "missing_field"}},
	}
	for _, c := range cases {
		_, ev, err := ParseEnvelope([]byte(c.envelope))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		ev.OnFilterError = func(w *webhooks.Webhook, reason string, err error) { got[w.ID] = reason }
		if m := ids(s.Match(ev, nil)); !slices.Equal(m, c.want) {
			t.Errorf("%s: matched %v, want %v", c.envelope, m, c.want)
		}
		if len(got) != len(c.errs) {
			t.Errorf("%s: errors %v, want %v", c.envelope, got, c.errs)
		}
		for id, reason := range c.errs {
			if got[id] != reason {
				t.Errorf("%s: webhook %s error %q, want %q", c.envelope, id, got[id], reason)
			}
		}
	}
}

// Rebuild compiles an expression only when its webhook's expression
// changed; the rest are taken from the previous set.
func TestRebuildReusesCompiledExpressions(t *testing.T) {
	a := filtered("a", `labels.env == "prod"`)
	b := filtered("b", `data.x == 1`)
	s1 := Build([]*webhooks.Webhook{a, b})
	b2 := filtered("b", `data.x == 2`)
	c := filtered("c", `true`)
	s2 := Rebuild(s1, []*webhooks.Webhook{filtered("a", a.Filter), b2, c})
	if s2.progs["a"] != s1.progs["a"] {
		t.Error("the unchanged expression of a was compiled again")
	}
	if s2.progs["b"] == s1.progs["b"] || s2.progs["b"].Source() != b2.Filter {
		t.Error("the changed expression of b was not compiled again")
	}
	if s2.progs["c"] == nil {
		t.Error("the new webhook c has no compiled expression")
	}
	s3 := Rebuild(s2, []*webhooks.Webhook{filtered("a", "")})
	if len(s3.progs) != 0 {
		t.Errorf("cleared and deleted expressions are still held: %v", s3.progs)
	}
}

// An expression stored by another version that no longer compiles makes
// its webhook match nothing, reported as "compile"; a webhook the set
// does not hold the expression of is treated the same way.
func TestBrokenStoredExpressionMatchesNothing(t *testing.T) {
	s := Build([]*webhooks.Webhook{filtered("broken", `nosuchfunction(data)`), filtered("ok", "true")})
	_, ev, _ := ParseEnvelope([]byte(`{"event_type":"stack.created"}`))
	var reasons []string
	ev.OnFilterError = func(w *webhooks.Webhook, reason string, err error) { reasons = append(reasons, w.ID+":"+reason) }
	if got := ids(s.Match(ev, nil)); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("matched %v, want [ok]", got)
	}
	if !slices.Equal(reasons, []string{"broken:compile"}) {
		t.Errorf("reported %v", reasons)
	}
	if s.FilterMatches(filtered("stranger", "true"), ev) {
		t.Error("a webhook whose expression the set did not compile matched")
	}
}

// An event no candidate webhook filters with an expression never has its
// data decoded.
func TestDataDecodedOnlyWhenAnExpressionLooks(t *testing.T) {
	s := Build([]*webhooks.Webhook{filtered("plain", ""), filtered("alerts", "data.x == 1", "alert.*")})
	_, ev, _ := ParseEnvelope([]byte(`{"event_type":"stack.created","data":{"x":1}}`))
	if got := ids(s.Match(ev, nil)); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("matched %v", got)
	}
	if ev.vars != nil {
		t.Error("the event's variables were made though no expression was evaluated")
	}
}

// A lookup-only set finds webhooks by id without compiling anything.
func TestLookupOnly(t *testing.T) {
	s := LookupOnly([]*webhooks.Webhook{filtered("a", "data.x == 1"), filtered("b", "")})
	if w, ok := s.Get("a"); !ok || w.ID != "a" || s.Len() != 2 || len(s.progs) != 0 {
		t.Errorf("Get(a) = %v, %v; Len %d; %d programs", w, ok, s.Len(), len(s.progs))
	}
}
