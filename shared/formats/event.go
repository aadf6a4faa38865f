package formats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hermodhq/hermod/shared/catalog"
)

var (
	fieldNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)
)

// event is what the built-in formats read of an envelope.
type event struct {
	ID        string
	Type      string
	Family    string // "alert" of "alert.triggered"
	Timestamp string
	Data      map[string]any
	Labels    map[string]string
}

// parseEvent reads the envelope the router enqueued.
func parseEvent(body []byte) (*event, error) {
	var env struct {
		ID        string            `json:"id"`
		EventType string            `json:"event_type"`
		Timestamp string            `json:"timestamp"`
		Data      json.RawMessage   `json:"data"`
		Labels    map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("event envelope: %w", err)
	}
	ev := &event{ID: env.ID, Type: env.EventType, Timestamp: env.Timestamp, Labels: env.Labels}
	ev.Family, _, _ = strings.Cut(env.EventType, ".")
	if len(bytes.TrimSpace(env.Data)) > 0 {
		d := json.NewDecoder(bytes.NewReader(env.Data))
		d.UseNumber()
		if err := d.Decode(&ev.Data); err != nil {
			ev.Data = map[string]any{"data": string(env.Data)} // not an object: shown as it is
		}
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	return ev, nil
}

// pair is an event that resolves what an earlier one opened, and the data
// field that identifies what they are about. A resolving event closes the
// PagerDuty incident (same dedup key) and the Alertmanager alert (same
// labels, with endsAt) its opener created.
type pair struct {
	opener, resolver, key string
	// subject names what an operational pair is about ("webhook").
	subject string
}

// pairs of the platform's families, one per family.
var pairs = map[string]pair{
	"alert":     {"alert.triggered", "alert.resolved", "alert_id", ""},
	"instance":  {"instance.crash", "instance.started", "instance_id", ""},
	"workorder": {"workorder.failed", "workorder.completed", "workorder_id", ""},
	"cluster":   {"cluster.degraded", "", "cluster_id", ""},
}

// opsPairs: Hermod's operational family holds several subjects (webhooks,
// agents, replays), so its pairs go by type. A webhook's degradation and
// its deliveries' deaths share the key webhook_id: one PagerDuty incident
// per webhook, resolved when it recovers.
var opsPairs = map[string]pair{
	catalog.WebhookDegraded:  {catalog.WebhookDegraded, catalog.WebhookRecovered, "webhook_id", "webhook"},
	catalog.WebhookRecovered: {catalog.WebhookDegraded, catalog.WebhookRecovered, "webhook_id", "webhook"},
	catalog.DeliveryDead:     {catalog.WebhookDegraded, "", "webhook_id", "webhook"},
	catalog.AgentInactive:    {catalog.AgentInactive, catalog.AgentActive, "agent_id", "agent"},
	catalog.AgentActive:      {catalog.AgentInactive, catalog.AgentActive, "agent_id", "agent"},
	catalog.ReplayFinished:   {catalog.ReplayFinished, "", "id", "replay"},
}

// pair is ev's pair, if it has one.
func (ev *event) pair() (pair, bool) {
	if p, ok := opsPairs[ev.Type]; ok {
		return p, true
	}
	p, ok := pairs[ev.Family]
	return p, ok
}

// resolves says whether ev resolves what its pair's opener opened.
func (ev *event) resolves() bool {
	p, ok := ev.pair()
	return ok && p.resolver != "" && ev.Type == p.resolver
}

// idField is the data field naming what ev is about: its pair's key, or
// "<family>_id".
func (ev *event) idField() string {
	if p, ok := ev.pair(); ok {
		return p.key
	}
	return ev.Family + "_id"
}

// subject names what ev is about in keys and summaries: its family, or
// its pair's subject for an operational event ("webhook").
func (ev *event) subject() string {
	if p, ok := ev.pair(); ok && p.subject != "" {
		return p.subject
	}
	return ev.Family
}

// key is the value identifying what ev is about: field's value (default
// the id field), prefixed by the family ("alert:a-1"; for an operational
// event "hermod.webhook:<id>"), or the event id.
func (ev *event) key(field string) string {
	if field == "" {
		field = ev.idField()
	}
	if v := ev.str(field); v != "" {
		if s := ev.subject(); s != ev.Family {
			return ev.Family + "." + s + ":" + v
		}
		return ev.Family + ":" + v
	}
	return ev.ID
}

// str is a data field as text ("" when absent or not a scalar).
func (ev *event) str(field string) string {
	switch v := ev.Data[field].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// Well-known data fields: the id of what the event is about, its name,
// status and message, and a link.
var (
	nameFields    = []string{"name", "title", "alertname"}
	statusFields  = []string{"status", "state", "phase"}
	messageFields = []string{"message", "reason", "error", "description", "summary"}
	linkFields    = []string{"url", "link", "html_url", "dashboard_url", "runbook_url"}
)

func (ev *event) first(fields []string) (string, string) {
	for _, f := range fields {
		if v := ev.str(f); v != "" {
			return f, v
		}
	}
	return "", ""
}

// summary is the one-line summary of ev: what happened, to what, and why.
func (ev *event) summary() string {
	what := ev.Type
	for _, t := range catalog.Default {
		if t.Type == ev.Type {
			what = t.Description
		}
	}
	var b strings.Builder
	b.WriteString(what)
	if id := ev.str(ev.idField()); id != "" {
		b.WriteString(": " + ev.subject() + " " + id)
	}
	if _, name := ev.first(nameFields); name != "" {
		b.WriteString(" (" + name + ")")
	}
	if _, st := ev.first(statusFields); st != "" {
		b.WriteString(", " + st)
	}
	if _, msg := ev.first(messageFields); msg != "" {
		b.WriteString(": " + msg)
	}
	return cut(b.String(), 1024)
}

// maxLink bounds a link (Slack refuses a button url over 3,000 characters).
const maxLink = 2000

// link is the event's link, if it carries an http(s) one of at most
// maxLink bytes.
func (ev *event) link() string {
	_, l := ev.first(linkFields)
	if len(l) <= maxLink && (strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")) {
		return l
	}
	return ""
}

// field is one data field shown by a format.
type field struct{ Name, Value string }

// fields are the data fields the summary did not already say, sorted by
// name; objects and arrays as compact JSON.
func (ev *event) fields() []field {
	used := map[string]bool{ev.idField(): true}
	for _, fs := range [][]string{nameFields, statusFields, messageFields, linkFields} {
		if f, _ := ev.first(fs); f != "" {
			used[f] = true
		}
	}
	var out []field
	for k, v := range ev.Data {
		if used[k] {
			continue
		}
		s := ev.str(k)
		if s == "" && v != nil {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, field{k, cut(s, 500)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// time is the event's timestamp, or now.
func (ev *event) time(now time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
		return t
	}
	return now
}

// severity is the configured severity of ev's type (the most specific
// pattern wins), else a default from the type: failures, crashes and
// triggered alerts are errors, degradations warnings, the rest info.
func (ev *event) severity(m map[string]string) string {
	if s, ok := m[ev.Type]; ok {
		return s
	}
	if s, ok := m[ev.Family+".*"]; ok {
		return s
	}
	if s, ok := m["*"]; ok {
		return s
	}
	switch {
	case strings.HasSuffix(ev.Type, ".failed"), ev.Type == "instance.crash", ev.Type == "alert.triggered",
		ev.Type == catalog.DeliveryDead:
		return "error"
	case strings.HasSuffix(ev.Type, ".degraded"), ev.Type == catalog.AgentInactive:
		return "warning"
	}
	return "info"
}

// cut bounds s to n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = strings.ToValidUTF8(s[:n-3], "")
	return s + "…"
}
