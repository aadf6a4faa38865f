// Package catalog holds the event type catalogue: the event types Hermod
// knows, their families, and the stream subjects that capture them.
package catalog

import (
	"sort"
	"strings"
)

// EventType is one entry of the catalogue.
type EventType struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

// TestEventType is the internal event sent by the test endpoint.
const TestEventType = "webhook.test"

// Default is the catalogue shipped with Hermod.
var Default = []EventType{
	{"deployment.created", "A deployment was created"},
	{"deployment.applied", "A deployment was applied to its target"},
	{"deployment.failed", "A deployment failed"},
	{"deployment.deleted", "A deployment was deleted"},
	{"workorder.created", "A work order was created"},
	{"workorder.claimed", "A work order was claimed by an agent"},
	{"workorder.completed", "A work order completed"},
	{"workorder.failed", "A work order failed"},
	{"agent.registered", "An agent registered"},
	{"agent.deregistered", "An agent deregistered"},
	{"stack.created", "A stack was created"},
	{"stack.deleted", "A stack was deleted"},
	{"instance.crash", "An instance crashed"},
	{"instance.started", "An instance started"},
	{"instance.stopped", "An instance stopped"},
	{"cluster.created", "A cluster was created"},
	{"cluster.degraded", "A cluster became degraded"},
	{"alert.triggered", "An alert fired"},
	{"alert.resolved", "An alert resolved"},
	{TestEventType, "Internal test event sent by the test endpoint"},
	{WebhookDegraded, "Hermod: a webhook turned degraded (its last 3 deliveries died, or its breaker opened)"},
	{WebhookRecovered, "Hermod: a degraded webhook delivers again"},
	{DeliveryDead, "Hermod: a delivery died"},
	{AgentInactive, "Hermod: an agent stopped sending heartbeats"},
	{AgentActive, "Hermod: an inactive agent sends heartbeats again"},
	{ReplayFinished, "Hermod: a replay of deliveries finished"},
}

// OpsFamily is the family of Hermod's own operational events. Only Hermod
// publishes them (on its own subjects, see streams.OpsEventSubject): the
// API and the router refuse them from the platform.
const OpsFamily = "hermod"

// Operational event types (family OpsFamily); docs/api.md, section
// "Operational events", describes their data.
const (
	WebhookDegraded  = "hermod.webhook.degraded"
	WebhookRecovered = "hermod.webhook.recovered"
	DeliveryDead     = "hermod.delivery.dead"
	AgentInactive    = "hermod.agent.inactive"
	AgentActive      = "hermod.agent.active"
	ReplayFinished   = "hermod.replay.finished"
)

// IsOperational reports whether t is of Hermod's own family (known or
// not): the platform may never publish such an event.
func IsOperational(t string) bool { return strings.HasPrefix(t, OpsFamily+".") }

// Catalog is an immutable set of event types.
type Catalog struct {
	types    []EventType
	known    map[string]bool
	families map[string]bool
}

// New builds a catalogue from types.
func New(types []EventType) *Catalog {
	c := &Catalog{types: types, known: map[string]bool{}, families: map[string]bool{}}
	for _, t := range types {
		c.known[t.Type] = true
		if fam, _, ok := strings.Cut(t.Type, "."); ok {
			c.families[fam] = true
		}
	}
	return c
}

// Types returns the catalogue entries.
func (c *Catalog) Types() []EventType { return c.types }

// Known reports whether t is an event type of the catalogue.
func (c *Catalog) Known(t string) bool { return c.known[t] }

// ValidPattern reports whether p is a type, "family.*" of a known family, or "*".
func (c *Catalog) ValidPattern(p string) bool {
	if p == "*" {
		return true
	}
	if fam, ok := strings.CutSuffix(p, ".*"); ok {
		return c.families[fam]
	}
	return c.known[p]
}

// Families returns the event families, sorted.
func (c *Catalog) Families() []string {
	out := make([]string, 0, len(c.families))
	for f := range c.families {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// StreamSubjects returns the platform subjects the event stream captures:
// one "family.>" per family except the internal "webhook" family and
// Hermod's own OpsFamily, whose events travel on Hermod's subjects (the
// stream adds those itself, see streams.EnsureStreams).
func (c *Catalog) StreamSubjects() []string {
	var out []string
	for _, f := range c.Families() {
		if f == "webhook" || f == OpsFamily {
			continue
		}
		out = append(out, f+".>")
	}
	return out
}
