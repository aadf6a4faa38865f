package catalog_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/catalog"
)

func TestValidPatternTable(t *testing.T) {
	c := catalog.New(catalog.Default)
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{"*", true},
		{"deployment.*", true},
		{"workorder.*", true},
		{"agent.*", true},
		{"stack.*", true},
		{"instance.*", true},
		{"cluster.*", true},
		{"alert.*", true},
		{"webhook.*", true},
		{"deployment.created", true},
		{"deployment.applied", true},
		{"workorder.claimed", true},
		{"agent.deregistered", true},
		{"instance.crash", true},
		{"cluster.degraded", true},
		{"alert.resolved", true},
		{"webhook.test", true},
		{"", false},
		{"**", false},
		{"*.*", false},
		{".*", false},
		{"deployment", false},
		{"deployment.", false},
		{"deployment.>", false},
		{"deployment.**", false},
		{"deploy.*", false},
		{"deployments.*", false},
		{"Deployment.*", false},
		{"DEPLOYMENT.APPLIED", false},
		{"deployment.exploded", false},
		{"deployment.applied.*", false},
		{"nope.*", false},
		{" deployment.applied", false},
		{"deployment.applied ", false},
	} {
		if got := c.ValidPattern(tc.pattern); got != tc.want {
			t.Errorf("ValidPattern(%q) = %v, want %v", tc.pattern, got, tc.want)
		}
	}
}

func TestDefaultCatalogue(t *testing.T) {
	c := catalog.New(catalog.Default)
	want := []string{
		"deployment.created", "deployment.applied", "deployment.failed", "deployment.deleted",
		"workorder.created", "workorder.claimed", "workorder.completed", "workorder.failed",
		"agent.registered", "agent.deregistered", "stack.created", "stack.deleted",
		"instance.crash", "instance.started", "instance.stopped", "cluster.created", "cluster.degraded",
		"alert.triggered", "alert.resolved", "webhook.test",
		"hermod.webhook.degraded", "hermod.webhook.recovered", "hermod.delivery.dead",
		"hermod.agent.inactive", "hermod.agent.active", "hermod.replay.finished",
	}
	var got []string
	for _, et := range c.Types() {
		got = append(got, et.Type)
		if et.Description == "" {
			t.Errorf("%s has no description", et.Type)
		}
		if !c.Known(et.Type) {
			t.Errorf("Known(%q) = false", et.Type)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("types %v\nwant  %v", got, want)
	}
	if !c.Known(catalog.TestEventType) || catalog.TestEventType != "webhook.test" {
		t.Errorf("test event type %q", catalog.TestEventType)
	}
	for _, p := range []string{"*", "deployment.*", "deployment", ""} {
		if c.Known(p) {
			t.Errorf("Known(%q) = true; patterns are not types", p)
		}
	}
	wantFams := []string{"agent", "alert", "cluster", "deployment", "hermod", "instance", "stack", "webhook", "workorder"}
	if got := c.Families(); !reflect.DeepEqual(got, wantFams) {
		t.Errorf("Families = %v, want %v", got, wantFams)
	}
}

func TestStreamSubjectsTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types []catalog.EventType
		want  []string
	}{
		{"default catalogue", catalog.Default, []string{"agent.>", "alert.>", "cluster.>", "deployment.>", "instance.>", "stack.>", "workorder.>"}},
		{"only the webhook family", []catalog.EventType{{Type: "webhook.test"}}, nil},
		{"custom, sorted, deduplicated", []catalog.EventType{{Type: "z.one"}, {Type: "a.one"}, {Type: "z.two"}, {Type: catalog.TestEventType}}, []string{"a.>", "z.>"}},
		{"empty", nil, nil},
		{"the operational family is never a platform subject", []catalog.EventType{{Type: catalog.DeliveryDead}, {Type: "a.one"}}, []string{"a.>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := catalog.New(tc.types).StreamSubjects()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("StreamSubjects = %v, want %v", got, tc.want)
			}
			for _, s := range got {
				// Hermod's own subjects live under hermod.> and the internal
				// webhook.test event is never captured from the platform.
				if strings.HasPrefix(s, "webhook.") || strings.HasPrefix(s, "hermod.") {
					t.Errorf("subject %q captured", s)
				}
			}
		})
	}
}

// A custom catalogue: patterns follow it, not the default.
func TestCustomCatalogue(t *testing.T) {
	c := catalog.New([]catalog.EventType{{Type: "build.started", Description: "b"}, {Type: "build.finished"}})
	for p, want := range map[string]bool{"build.*": true, "build.started": true, "*": true, "deployment.*": false, "deployment.applied": false, "webhook.test": false} {
		if got := c.ValidPattern(p); got != want {
			t.Errorf("ValidPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

// The operational family: its types are in the default catalogue, may be
// subscribed to like any other, and are told apart from platform types.
func TestOperationalFamily(t *testing.T) {
	c := catalog.New(catalog.Default)
	for _, typ := range []string{catalog.WebhookDegraded, catalog.WebhookRecovered, catalog.DeliveryDead,
		catalog.AgentInactive, catalog.AgentActive, catalog.ReplayFinished} {
		if !c.Known(typ) || !catalog.IsOperational(typ) {
			t.Errorf("%s: known %v, operational %v", typ, c.Known(typ), catalog.IsOperational(typ))
		}
	}
	if !c.ValidPattern("hermod.*") {
		t.Error("hermod.* is not a valid pattern")
	}
	for _, typ := range []string{"agent.registered", "hermodx.a", "hermod", "webhook.test"} {
		if catalog.IsOperational(typ) {
			t.Errorf("%s taken for an operational type", typ)
		}
	}
	if !catalog.IsOperational("hermod.anything.else") {
		t.Error("an unknown hermod.* type must be reserved too")
	}
}
