package matching

import (
	"testing"

	"github.com/hermodhq/hermod/shared/webhooks"
)

func str(s string) *string { return &s }

func TestTypeMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		{"deployment.applied", "deployment.applied", true},
		{"deployment.applied", "deployment.failed", false},
		{"deployment.*", "deployment.applied", true},
		{"deployment.*", "deploymentx.applied", false},
		{"deploy.*", "deployment.applied", false},
		{"instance.*", "deployment.applied", false},
		{"*", "anything.at_all", true},
		{"*", "webhook.test", true},
	} {
		if got := TypeMatches(c.pattern, c.typ); got != c.want {
			t.Errorf("TypeMatches(%q, %q) = %v", c.pattern, c.typ, got)
		}
	}
}

func TestFiltersMatch(t *testing.T) {
	ev := &Event{Type: "deployment.applied", AgentID: str("a-1"), StackID: str("7"), Labels: map[string]string{"env": "prod", "region": "eu"}}
	noFields := &Event{Type: "deployment.applied"}
	for _, c := range []struct {
		name string
		f    *webhooks.Filters
		ev   *Event
		want bool
	}{
		{"nil filter", nil, ev, true},
		{"agent equal", &webhooks.Filters{AgentID: str("a-1")}, ev, true},
		{"agent differs", &webhooks.Filters{AgentID: str("a-2")}, ev, false},
		{"stack equal (number in data)", &webhooks.Filters{StackID: str("7")}, ev, true},
		{"labels subset", &webhooks.Filters{Labels: map[string]string{"env": "prod"}}, ev, true},
		{"labels all", &webhooks.Filters{Labels: map[string]string{"env": "prod", "region": "eu"}}, ev, true},
		{"label value differs", &webhooks.Filters{Labels: map[string]string{"env": "staging"}}, ev, false},
		{"label missing", &webhooks.Filters{Labels: map[string]string{"team": "x"}}, ev, false},
		{"all keys must match", &webhooks.Filters{AgentID: str("a-1"), StackID: str("8")}, ev, false},
		{"missing agent never matches", &webhooks.Filters{AgentID: str("a-1")}, noFields, false},
		{"missing labels never match", &webhooks.Filters{Labels: map[string]string{"env": "prod"}}, noFields, false},
		{"empty-string filter vs missing field", &webhooks.Filters{StackID: str("")}, noFields, false},
	} {
		if got := FiltersMatch(c.f, c.ev); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	_, ev, err := ParseEnvelope([]byte(`{"id":"e","event_type":"alert.triggered","data":{"agent_id":"a","stack_id":42,"x":null},"labels":{"env":"prod"}}`))
	if err != nil || ev.ID != "e" || *ev.AgentID != "a" || *ev.StackID != "42" || ev.Labels["env"] != "prod" {
		t.Fatalf("%+v %v", ev, err)
	}
	_, ev, _ = ParseEnvelope([]byte(`{"event_type":"alert.triggered","data":{"agent_id":null,"stack_id":{"a":1}}}`))
	if ev.AgentID != nil || ev.StackID != nil {
		t.Errorf("null or object ids must not match: %+v", ev)
	}
	_, ev, _ = ParseEnvelope([]byte(`{"event_type":"alert.triggered","data":[1,2]}`))
	if ev.AgentID != nil {
		t.Errorf("array data: %+v", ev)
	}
	for _, bad := range []string{``, `[]`, `{"id":"x"}`, `{"event_type":""}`, `{"event_type":5}`, `not json`} {
		if _, _, err := ParseEnvelope([]byte(bad)); err == nil {
			t.Errorf("ParseEnvelope(%q) accepted", bad)
		}
	}
}

// Each webhook matches an event at most once, whatever its patterns.
func TestSetMatchesOnce(t *testing.T) {
	ws := []*webhooks.Webhook{
		{ID: "exact", EventTypes: []string{"deployment.applied"}},
		{ID: "family+exact", EventTypes: []string{"deployment.*", "deployment.applied"}},
		{ID: "star+family", EventTypes: []string{"*", "deployment.*"}},
		{ID: "other", EventTypes: []string{"instance.crash"}},
		{ID: "filtered", EventTypes: []string{"deployment.*"}, Filters: &webhooks.Filters{AgentID: str("a-9")}},
		{ID: "two families", EventTypes: []string{"instance.*", "deployment.*"}},
	}
	s := Build(ws)
	got := map[string]int{}
	for _, w := range s.Match(&Event{Type: "deployment.applied", AgentID: str("a-1")}, nil) {
		got[w.ID]++
	}
	want := map[string]int{"exact": 1, "family+exact": 1, "star+family": 1, "two families": 1}
	if len(got) != len(want) {
		t.Errorf("matched %v, want %v", got, want)
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("%s matched %d times", id, got[id])
		}
	}
	if w, ok := s.Get("other"); !ok || w.ID != "other" || s.Len() != 6 {
		t.Errorf("Get/Len")
	}
	if m := s.Match(&Event{Type: "stack.created"}, nil); len(m) != 1 || m[0].ID != "star+family" {
		t.Errorf("stack.created matched %v", m)
	}
}

// FuzzParseEnvelope: no input panics; an accepted envelope has a type.
func FuzzParseEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"id":"e","event_type":"deployment.applied","timestamp":"2026-11-24T00:00:00Z","data":{"agent_id":"a","stack_id":1}}`,
		`{"event_type":"alert.triggered","data":null,"labels":{"env":"prod"}}`,
		`{"event_type":"x","data":{"agent_id":{"nested":[1,2]}}}`,
		`{"event_type":"x","data":"string"}`,
		`{"event_type":"x","data":{"agent_id":1e400}}`,
		`{"event_type":"x","labels":{"a":1}}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, ev, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		if ev.Type == "" || env.EventType != ev.Type {
			t.Fatalf("accepted envelope without a type: %q", b)
		}
		_ = FiltersMatch(&webhooks.Filters{AgentID: str("a"), Labels: map[string]string{"env": "prod"}}, ev)
	})
}
