package matching_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/webhooks"
)

func sp(s string) *string { return &s }

func TestTypeMatchesTable(t *testing.T) {
	for _, c := range []struct {
		pattern, typ string
		want         bool
	}{
		// exact
		{"deployment.applied", "deployment.applied", true},
		{"deployment.applied", "deployment.created", false},
		{"deployment.applied", "deployment.applied.v2", false},
		{"deployment.applied", "Deployment.applied", false},
		// family.*
		{"deployment.*", "deployment.applied", true},
		{"deployment.*", "deployment.created", true},
		{"deployment.*", "deployment.deeper.type", true},
		{"deploy.*", "deployment.applied", false},
		{"deployment.*", "deploy.applied", false},
		{"deployment.*", "deploymentx.applied", false},
		{"deployment.*", "deployment", false},
		{"deployment.*", "instance.crash", false},
		{"instance.*", "deployment.applied", false},
		{"agent.*", "agent.registered", true},
		{"webhook.*", "webhook.test", true},
		// *
		{"*", "deployment.applied", true},
		{"*", "webhook.test", true},
		{"*", "x", true},
		// things that are not wildcards
		{"deployment.", "deployment.applied", false},
		{"deployment*", "deployment.applied", false},
		{"*.applied", "deployment.applied", false},
		{"", "deployment.applied", false},
	} {
		if got := matching.TypeMatches(c.pattern, c.typ); got != c.want {
			t.Errorf("TypeMatches(%q, %q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
}

// FiltersMatch against events parsed from real envelopes, so the numeric and
// null cases go through ParseEnvelope as they do in the router.
func TestFiltersMatchTable(t *testing.T) {
	parse := func(s string) *matching.Event {
		t.Helper()
		_, ev, err := matching.ParseEnvelope([]byte(s))
		if err != nil {
			t.Fatalf("ParseEnvelope(%s): %v", s, err)
		}
		return ev
	}
	full := parse(`{"id":"e1","event_type":"deployment.applied","data":{"agent_id":"a-1","stack_id":"s-9"},"labels":{"env":"prod","region":"eu"}}`)
	numeric := parse(`{"id":"e2","event_type":"deployment.applied","data":{"agent_id":7,"stack_id":42}}`)
	nulls := parse(`{"id":"e3","event_type":"deployment.applied","data":{"agent_id":null,"stack_id":null},"labels":null}`)
	missing := parse(`{"id":"e4","event_type":"deployment.applied","data":{"other":1}}`)
	noData := parse(`{"id":"e5","event_type":"deployment.applied"}`)
	objects := parse(`{"id":"e6","event_type":"deployment.applied","data":{"agent_id":{"id":"a-1"},"stack_id":["s-9"]}}`)
	boolean := parse(`{"id":"e7","event_type":"deployment.applied","data":{"agent_id":true}}`)
	emptyStr := parse(`{"id":"e8","event_type":"deployment.applied","data":{"agent_id":""},"labels":{"env":""}}`)
	spaced := parse(`{"id":"e9","event_type":"deployment.applied","data" : { "agent_id" : "a-1" } }`)
	stringData := parse(`{"id":"e10","event_type":"deployment.applied","data":"agent_id"}`)

	for _, c := range []struct {
		name string
		f    *webhooks.Filters
		ev   *matching.Event
		want bool
	}{
		{"nil filters match everything", nil, missing, true},
		{"empty filters match everything", &webhooks.Filters{}, noData, true},
		{"agent_id equal", &webhooks.Filters{AgentID: sp("a-1")}, full, true},
		{"agent_id different", &webhooks.Filters{AgentID: sp("a-2")}, full, false},
		{"agent_id is case-sensitive", &webhooks.Filters{AgentID: sp("A-1")}, full, false},
		{"agent_id with whitespace in data", &webhooks.Filters{AgentID: sp("a-1")}, spaced, true},
		{"stack_id equal", &webhooks.Filters{StackID: sp("s-9")}, full, true},
		{"stack_id different", &webhooks.Filters{StackID: sp("s-8")}, full, false},
		{"numeric agent_id 7 matches \"7\"", &webhooks.Filters{AgentID: sp("7")}, numeric, true},
		{"numeric stack_id 42 matches \"42\"", &webhooks.Filters{StackID: sp("42")}, numeric, true},
		{"numeric agent_id 7 does not match \"07\"", &webhooks.Filters{AgentID: sp("07")}, numeric, false},
		{"null agent_id never matches", &webhooks.Filters{AgentID: sp("a-1")}, nulls, false},
		{"null agent_id never matches \"null\"", &webhooks.Filters{AgentID: sp("null")}, nulls, false},
		{"null agent_id never matches \"\"", &webhooks.Filters{AgentID: sp("")}, nulls, false},
		{"null stack_id never matches", &webhooks.Filters{StackID: sp("")}, nulls, false},
		{"missing agent_id never matches", &webhooks.Filters{AgentID: sp("a-1")}, missing, false},
		{"missing agent_id never matches \"\"", &webhooks.Filters{AgentID: sp("")}, missing, false},
		{"no data never matches", &webhooks.Filters{StackID: sp("s-9")}, noData, false},
		{"string data never matches", &webhooks.Filters{AgentID: sp("agent_id")}, stringData, false},
		{"object agent_id never matches", &webhooks.Filters{AgentID: sp(`{"id":"a-1"}`)}, objects, false},
		{"array stack_id never matches", &webhooks.Filters{StackID: sp(`["s-9"]`)}, objects, false},
		{"boolean agent_id never matches", &webhooks.Filters{AgentID: sp("true")}, boolean, false},
		{"empty-string agent_id matches \"\"", &webhooks.Filters{AgentID: sp("")}, emptyStr, true},
		{"label equal", &webhooks.Filters{Labels: map[string]string{"env": "prod"}}, full, true},
		{"all labels equal", &webhooks.Filters{Labels: map[string]string{"env": "prod", "region": "eu"}}, full, true},
		{"one label differs", &webhooks.Filters{Labels: map[string]string{"env": "prod", "region": "us"}}, full, false},
		{"label missing on event", &webhooks.Filters{Labels: map[string]string{"team": "core"}}, full, false},
		{"label filter, event without labels", &webhooks.Filters{Labels: map[string]string{"env": "prod"}}, noData, false},
		{"label filter, null labels", &webhooks.Filters{Labels: map[string]string{"env": ""}}, nulls, false},
		{"empty label value equal", &webhooks.Filters{Labels: map[string]string{"env": ""}}, emptyStr, true},
		{"all keys must match: agent ok, stack wrong", &webhooks.Filters{AgentID: sp("a-1"), StackID: sp("x")}, full, false},
		{"all keys must match: agent ok, label wrong", &webhooks.Filters{AgentID: sp("a-1"), Labels: map[string]string{"env": "dev"}}, full, false},
		{"all keys match", &webhooks.Filters{AgentID: sp("a-1"), StackID: sp("s-9"), Labels: map[string]string{"region": "eu"}}, full, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := matching.FiltersMatch(c.f, c.ev); got != c.want {
				t.Errorf("FiltersMatch = %v, want %v (event %+v)", got, c.want, c.ev)
			}
		})
	}
}

func ids(ws []*webhooks.Webhook) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	sort.Strings(out)
	return out
}

// Build+Match: every webhook whose patterns and filters match is returned
// exactly once, however many of its patterns match.
func TestBuildMatchTable(t *testing.T) {
	ws := []*webhooks.Webhook{
		{ID: "family+exact", EventTypes: []string{"deployment.*", "deployment.applied"}},
		{ID: "exact+family", EventTypes: []string{"deployment.applied", "deployment.*"}},
		{ID: "star", EventTypes: []string{"*"}},
		{ID: "star+exact+family", EventTypes: []string{"deployment.applied", "*", "deployment.*"}},
		{ID: "exact", EventTypes: []string{"deployment.applied"}},
		{ID: "two exacts", EventTypes: []string{"deployment.applied", "deployment.failed"}},
		{ID: "other family", EventTypes: []string{"instance.*"}},
		{ID: "two families", EventTypes: []string{"instance.*", "deployment.*"}},
		{ID: "prefix family", EventTypes: []string{"deploy.*"}},
		{ID: "exact other family + family", EventTypes: []string{"instance.crash", "deployment.*"}},
		{ID: "filtered in", EventTypes: []string{"deployment.*"}, Filters: &webhooks.Filters{AgentID: sp("7")}},
		{ID: "filtered out", EventTypes: []string{"*"}, Filters: &webhooks.Filters{AgentID: sp("8")}},
		{ID: "label filtered", EventTypes: []string{"deployment.applied"}, Filters: &webhooks.Filters{Labels: map[string]string{"env": "prod"}}},
		{ID: "ops", EventTypes: []string{"hermod.*"}},
		{ID: "star+ops", EventTypes: []string{"*", "hermod.*"}},
		{ID: "star+ops exact", EventTypes: []string{"*", "hermod.delivery.dead", "hermod.delivery.dead"}},
	}
	s := matching.Build(ws)
	if s.Len() != len(ws) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(ws))
	}
	for _, w := range ws {
		if got, ok := s.Get(w.ID); !ok || got != w {
			t.Errorf("Get(%q) = %v, %v", w.ID, got, ok)
		}
	}
	if _, ok := s.Get("absent"); ok {
		t.Errorf("Get of an unknown id succeeded")
	}
	for _, c := range []struct {
		envelope string
		want     []string
	}{
		{`{"event_type":"deployment.applied","data":{"agent_id":7},"labels":{"env":"prod"}}`, []string{
			"exact", "exact other family + family", "exact+family", "family+exact", "filtered in", "label filtered",
			"star", "star+exact+family", "star+ops", "star+ops exact", "two exacts", "two families"}},
		{`{"event_type":"deployment.applied","data":{"agent_id":"9"}}`, []string{
			"exact", "exact other family + family", "exact+family", "family+exact",
			"star", "star+exact+family", "star+ops", "star+ops exact", "two exacts", "two families"}},
		{`{"event_type":"deployment.failed"}`, []string{
			"exact other family + family", "exact+family", "family+exact", "star", "star+exact+family", "star+ops", "star+ops exact", "two exacts", "two families"}},
		{`{"event_type":"instance.crash","data":{"agent_id":"8"}}`, []string{
			"exact other family + family", "filtered out", "other family", "star", "star+exact+family", "star+ops", "star+ops exact", "two families"}},
		{`{"event_type":"stack.created"}`, []string{"star", "star+exact+family", "star+ops", "star+ops exact"}},
		{`{"event_type":"webhook.test"}`, []string{"star", "star+exact+family", "star+ops", "star+ops exact"}},
		// Operational events: "*" does not cover them, only their name does.
		{`{"event_type":"hermod.delivery.dead"}`, []string{"ops", "star+ops", "star+ops exact"}},
		{`{"event_type":"hermod.webhook.degraded"}`, []string{"ops", "star+ops"}},
	} {
		_, ev, err := matching.ParseEnvelope([]byte(c.envelope))
		if err != nil {
			t.Fatal(err)
		}
		got := s.Match(ev, nil)
		if strings.Join(ids(got), "|") != strings.Join(c.want, "|") {
			t.Errorf("%s matched\n  %v\nwant\n  %v", ev.Type, ids(got), c.want)
		}
		// Match agrees with TypeMatches+FiltersMatch applied one by one.
		var brute []*webhooks.Webhook
		for _, w := range ws {
			for _, p := range w.EventTypes {
				if matching.TypeMatches(p, ev.Type) {
					if matching.FiltersMatch(w.Filters, ev) {
						brute = append(brute, w)
					}
					break
				}
			}
		}
		if strings.Join(ids(got), "|") != strings.Join(ids(brute), "|") {
			t.Errorf("%s: Match %v, brute force %v", ev.Type, ids(got), ids(brute))
		}
	}
	// Match appends to out.
	prefix := []*webhooks.Webhook{{ID: "already"}}
	_, ev, _ := matching.ParseEnvelope([]byte(`{"event_type":"stack.created"}`))
	if out := s.Match(ev, prefix); len(out) != 5 || out[0].ID != "already" {
		t.Errorf("Match did not append: %v", ids(out))
	}
	if got := matching.Build(nil).Match(ev, nil); len(got) != 0 {
		t.Errorf("empty set matched %v", ids(got))
	}
}

// Build indexes each webhook so that it matches a type at most once. Apply
// deduplicates event_types, but a Webhook can also reach Build from the
// store; a repeated exact type must not produce two deliveries.
func TestBuildRepeatedExactTypeMatchesOnce(t *testing.T) {
	s := matching.Build([]*webhooks.Webhook{{ID: "dup", EventTypes: []string{"deployment.applied", "deployment.applied"}}})
	got := s.Match(&matching.Event{Type: "deployment.applied"}, nil)
	if len(got) != 1 {
		t.Errorf("regression: matching.Build indexes a webhook once per repeated exact "+
			"event type, so Match returns it %d times (one delivery per copy would be enqueued)", len(got))
	}
}

func TestParseEnvelopeTable(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		ok   bool
		typ  string
		id   string
	}{
		{"minimal", `{"event_type":"deployment.applied"}`, true, "deployment.applied", ""},
		{"full", `{"id":"e","event_type":"alert.triggered","timestamp":"2026-11-24T00:00:00Z","data":{},"labels":{"a":"b"}}`, true, "alert.triggered", "e"},
		{"unknown fields are ignored", `{"event_type":"x.y","extra":[1,2,3]}`, true, "x.y", ""},
		{"data array", `{"event_type":"x.y","data":[1]}`, true, "x.y", ""},
		{"data null", `{"event_type":"x.y","data":null}`, true, "x.y", ""},
		{"empty input", ``, false, "", ""},
		{"whitespace only", "  \n", false, "", ""},
		{"not JSON", `event_type=x`, false, "", ""},
		{"truncated", `{"event_type":"x.y"`, false, "", ""},
		{"array", `[{"event_type":"x.y"}]`, false, "", ""},
		{"empty array", `[]`, false, "", ""},
		{"null", `null`, false, "", ""},
		{"string", `"deployment.applied"`, false, "", ""},
		{"no event_type", `{"id":"e","data":{}}`, false, "", ""},
		{"empty event_type", `{"event_type":""}`, false, "", ""},
		{"null event_type", `{"event_type":null}`, false, "", ""},
		{"numeric event_type", `{"event_type":1}`, false, "", ""},
		{"labels with a number value", `{"event_type":"x.y","labels":{"a":1}}`, false, "", ""},
		{"labels as an array", `{"event_type":"x.y","labels":["a:b"]}`, false, "", ""},
		{"id as a number", `{"id":5,"event_type":"x.y"}`, false, "", ""},
		{"timestamp as a number", `{"event_type":"x.y","timestamp":0}`, false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, ev, err := matching.ParseEnvelope([]byte(c.in))
			if !c.ok {
				if err == nil {
					t.Fatalf("ParseEnvelope(%q) accepted: %+v", c.in, ev)
				}
				if env != nil || ev != nil {
					t.Errorf("values returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnvelope(%q): %v", c.in, err)
			}
			if ev.Type != c.typ || env.EventType != c.typ {
				t.Errorf("type %q/%q, want %q", ev.Type, env.EventType, c.typ)
			}
			if ev.ID != c.id {
				t.Errorf("id %q, want %q", ev.ID, c.id)
			}
		})
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
		env, ev, err := matching.ParseEnvelope(b)
		if err != nil {
			return
		}
		if ev.Type == "" || env.EventType != ev.Type {
			t.Fatalf("accepted envelope without a type: %q", b)
		}
		_ = matching.FiltersMatch(&webhooks.Filters{AgentID: sp("a"), Labels: map[string]string{"env": "prod"}}, ev)
	})
}

// FuzzSetMatch checks the index against the brute-force definition for
// patterns the API accepts (valid catalogue patterns, deduplicated as Apply
// does): every matching webhook exactly once, no other.
func FuzzSetMatch(f *testing.F) {
	for _, s := range [][4]string{
		{"deployment.applied", "deployment.*", "deployment.applied", "*"},
		{"deployment.applied", "deploy.*", "deployment.applied", ""},
		{"instance.crash", "instance.crash", "instance.*", "alert.*"},
		{"webhook.test", "*", "", ""},
		{"deployment", "deployment.*", "deployment.created", "*"},
		{"deployment.applied.extra", "deployment.*", "deployment.applied", ""},
		{"", "*", "", ""},
		{"alert.resolved", "alert.triggered", "alert.resolved", "cluster.*"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	cat := catalog.New(catalog.Default)
	f.Fuzz(func(t *testing.T, typ, p1, p2, p3 string) {
		var ws []*webhooks.Webhook
		// One webhook per non-empty subset of the patterns.
		pats := []string{p1, p2, p3}
		for mask := 1; mask < 8; mask++ {
			seen := map[string]bool{}
			var ets []string
			for i, p := range pats {
				if mask&(1<<i) != 0 && cat.ValidPattern(p) && !seen[p] {
					seen[p] = true
					ets = append(ets, p)
				}
			}
			if len(ets) > 0 {
				ws = append(ws, &webhooks.Webhook{ID: strings.Repeat("w", mask), EventTypes: ets})
			}
		}
		got := map[string]int{}
		for _, w := range matching.Build(ws).Match(&matching.Event{Type: typ}, nil) {
			got[w.ID]++
		}
		for _, w := range ws {
			want := 0
			for _, p := range w.EventTypes {
				if matching.TypeMatches(p, typ) {
					want = 1
					break
				}
			}
			if got[w.ID] != want {
				t.Fatalf("type %q, patterns %q: matched %d times, want %d", typ, w.EventTypes, got[w.ID], want)
			}
		}
	})
}

// A missing or null field never matches, and that holds for labels too: a
// label whose value is JSON null in the envelope is decoded into the
// map[string]string as "", so it matches a filter asking for the empty value.
func TestNullLabelValueNeverMatches(t *testing.T) {
	_, ev, err := matching.ParseEnvelope([]byte(`{"event_type":"deployment.applied","labels":{"env":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if matching.FiltersMatch(&webhooks.Filters{Labels: map[string]string{"env": "prod"}}, ev) {
		t.Errorf("a null label matched a non-empty filter value")
	}
	if matching.FiltersMatch(&webhooks.Filters{Labels: map[string]string{"env": ""}}, ev) {
		t.Errorf("regression: envelope label {\"env\":null} is parsed as %q and matches filter labels {\"env\":\"\"}",
			ev.Labels["env"])
	}
}
