// Package formats renders an event's envelope in the body a receiver
// expects: Hermod's own envelope (standard), a Slack message, a PagerDuty
// Events API v2 event, a Datadog event, Alertmanager API v2 alerts, a Teams
// Adaptive Card message, or the output of the webhook's own jq template.
//
// A Renderer is compiled once per webhook change (a template is parsed and
// compiled then) and renders many deliveries; rendering is pure: no I/O, a
// time and size budget for templates, and the same body for the same
// envelope and clock, so what is signed is what is sent.
package formats

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Name is a payload format.
type Name string

// Formats.
const (
	Standard     Name = "standard"
	Slack        Name = "slack"
	PagerDuty    Name = "pagerduty"
	Datadog      Name = "datadog"
	Alertmanager Name = "alertmanager"
	Teams        Name = "teams"
	Template     Name = "template"
)

// Names lists every format.
var Names = []Name{Standard, Slack, PagerDuty, Datadog, Alertmanager, Teams, Template}

// Options configure a format; each format takes only the options named
// for it (Validate refuses the others).
type Options struct {
	// PagerDuty: the integration's routing key (a secret: sealed at rest,
	// never returned), the source (default "hermod"), and which data field
	// identifies the incident (default: the event pair's id field, else
	// the event id).
	RoutingKey string `json:"routing_key,omitempty"`
	Source     string `json:"source,omitempty"`
	DedupField string `json:"dedup_field,omitempty"`
	// PagerDuty, Alertmanager, Datadog: severity per event type pattern
	// ("alert.*", "deployment.failed", "*"): critical, error, warning or
	// info. The most specific pattern wins.
	Severity map[string]string `json:"severity,omitempty"`
	// Alertmanager: data fields that become identifying labels (besides the
	// event pair's id field), and fixed labels added to every alert.
	LabelFields []string          `json:"label_fields,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Datadog: tags added to every event ("key:value"), and the Datadog
	// site the webhook's url must be on (its host is api.<site>).
	Tags []string `json:"tags,omitempty"`
	Site string   `json:"site,omitempty"`
	// Template: a jq program whose output is the body.
	Template string `json:"template,omitempty"`
}

// options each format accepts (by their JSON names).
var accepted = map[Name][]string{
	Standard:     nil,
	Slack:        nil,
	PagerDuty:    {"routing_key", "source", "dedup_field", "severity"},
	Datadog:      {"severity", "tags", "site"},
	Alertmanager: {"severity", "label_fields", "labels"},
	Teams:        nil,
	Template:     {"template"},
}

// Renderer renders envelopes in one webhook's format.
type Renderer struct {
	name Name
	opts Options
	key  string // a template's identity in the runners (templateKey)
}

// Compile checks name and opts and prepares the renderer (a template is
// parsed and compiled here, once per webhook change). Errors are
// *OptionError naming the field.
func Compile(name Name, opts *Options) (*Renderer, error) {
	name = name.OrStandard()
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := validate(name, o); err != nil {
		return nil, err
	}
	if name == Template {
		// Compiled here to refuse what does not compile; it runs in the
		// template runner, which compiles it once itself (runner.go).
		if _, err := compileTemplate(o.Template); err != nil {
			return nil, err
		}
		return &Renderer{name: name, opts: o, key: templateKey(o.Template)}, nil
	}
	return &Renderer{name: name, opts: o}, nil
}

// OrStandard is n, or Standard for a webhook stored without a format.
func (n Name) OrStandard() Name {
	if n == "" {
		return Standard
	}
	return n
}

// Name is the renderer's format.
func (r *Renderer) Name() Name { return r.name }

// Render renders an envelope (the standard body, as the router enqueued
// it) at now. Standard returns body itself.
func (r *Renderer) Render(ctx context.Context, body []byte, now time.Time) ([]byte, error) {
	if r == nil || r.name == Standard {
		return body, nil
	}
	if r.name == Template {
		// In a template runner, a child process (runner.go).
		return runners().render(ctx, r.key, r.opts.Template, body)
	}
	ev, err := parseEvent(body)
	if err != nil {
		return nil, err
	}
	if err := r.canResolve(ev); err != nil {
		return nil, err
	}
	var out any
	switch r.name {
	case Slack:
		out = slackMessage(ev)
	case PagerDuty:
		out = pagerDutyEvent(ev, r.opts)
	case Datadog:
		out = datadogEvent(ev, r.opts, now)
	case Alertmanager:
		out = alertmanagerAlerts(ev, r.opts, now)
	case Teams:
		out = teamsMessage(ev)
	default:
		return nil, fmt.Errorf("unknown format %q", r.name)
	}
	return json.Marshal(out)
}

// canResolve refuses to render a resolving event that could not match what
// its opener opened (the receiver would accept it and resolve nothing):
// PagerDuty needs the field its dedup key comes from, Alertmanager every
// identifying label's field.
func (r *Renderer) canResolve(ev *event) error {
	if !ev.resolves() {
		return nil
	}
	var fields []string
	switch r.name {
	case PagerDuty:
		f := r.opts.DedupField
		if f == "" {
			f = ev.idField()
		}
		fields = []string{f}
	case Alertmanager:
		fields = append([]string{ev.idField()}, r.opts.LabelFields...)
	}
	for i, f := range fields {
		if ev.str(f) == "" {
			e := &MissingFieldError{Field: f, Message: fmt.Sprintf("%s cannot resolve what %s opened: the event has no data field %q",
				ev.Type, opener(ev), f)}
			switch {
			case r.name == PagerDuty && r.opts.DedupField != "":
				e.Option = "format_options.dedup_field"
			case r.name == Alertmanager && i > 0:
				e.Option = "format_options.label_fields"
			}
			return e
		}
	}
	return nil
}

// MissingFieldError is a render refused because of the event, not the
// format: it lacks the data field Field that the format needs (a resolving
// event without the field its opener's incident or alert is known by).
// Option is the format option naming that field, or "" when it is the
// event pair's own id field.
type MissingFieldError struct {
	Field   string
	Option  string
	Message string
}

func (e *MissingFieldError) Error() string { return e.Message }

// OptionError is a format or option the API refuses (422), naming the field.
type OptionError struct {
	Field   string
	Message string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Message }

func optErr(field, format string, a ...any) *OptionError {
	return &OptionError{Field: field, Message: fmt.Sprintf(format, a...)}
}

var severities = []string{"critical", "error", "warning", "info"}

// reservedLabels are the Alertmanager labels Hermod sets itself.
var reservedLabels = map[string]bool{"alertname": true, "severity": true}

// DatadogSites are the Datadog sites; a webhook on one posts to
// https://api.<site>/api/v1/events.
var DatadogSites = []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ddog-gov.com"}

// CheckURL checks rawURL against the options that name where the webhook
// must post: a Datadog site wants https://api.<site>/.
func CheckURL(name Name, o *Options, rawURL string) error {
	if name != Datadog || o == nil || o.Site == "" || rawURL == "" {
		return nil // no site, or no url to check (a preview of an unsaved body)
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Hostname() != "api."+o.Site {
		return optErr("format_options.site", "the url must be https://api.%s/api/v1/events for the site %s", o.Site, o.Site)
	}
	return nil
}

// validate checks the format and that it takes exactly the options given.
func validate(name Name, o Options) error {
	ok, known := accepted[name]
	if !known {
		names := make([]string, len(Names))
		for i, n := range Names {
			names[i] = string(n)
		}
		return optErr("format", "must be one of %s", strings.Join(names, ", "))
	}
	for _, given := range o.given() {
		if !slices.Contains(ok, given) {
			return optErr("format_options."+given, "is not an option of the %s format", name)
		}
	}
	// The keys are event type patterns: the catalogue checks them where
	// webhooks are validated (package webhooks), not here.
	for pattern, sev := range o.Severity {
		if !slices.Contains(severities, sev) {
			return optErr("format_options.severity."+pattern, "must be one of critical, error, warning, info")
		}
	}
	switch name {
	case PagerDuty:
		if len(o.RoutingKey) != 32 || !isAlnum(o.RoutingKey) {
			return optErr("format_options.routing_key", "is required: the 32-character integration key of a PagerDuty Events API v2 integration")
		}
		if len(o.Source) > 255 {
			return optErr("format_options.source", "must be at most 255 characters")
		}
		if o.DedupField != "" && !fieldNameRe.MatchString(o.DedupField) {
			return optErr("format_options.dedup_field", "must be a data field name")
		}
	case Alertmanager:
		for _, f := range o.LabelFields {
			if !fieldNameRe.MatchString(f) || reservedLabels[labelSafe(f)] {
				return optErr("format_options.label_fields", "%q is not a data field name Hermod may use as a label (alertname and severity are its own)", f)
			}
		}
		for k, v := range o.Labels {
			if reservedLabels[k] {
				return optErr("format_options.labels."+k, "is set by Hermod (alertname from the event family, severity from format_options.severity)")
			}
			if !labelNameRe.MatchString(k) || len(v) > 1024 {
				return optErr("format_options.labels."+k, "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) with a value of at most 1024 bytes")
			}
		}
	case Datadog:
		if len(o.Tags) > 50 {
			return optErr("format_options.tags", "at most 50 tags")
		}
		for _, t := range o.Tags {
			if t == "" || len(t) > 200 {
				return optErr("format_options.tags", "each tag must be 1 to 200 characters")
			}
		}
		if o.Site != "" && !slices.Contains(DatadogSites, o.Site) {
			return optErr("format_options.site", "must be one of %s", strings.Join(DatadogSites, ", "))
		}
	case Template:
		if o.Template == "" {
			return optErr("format_options.template", "is required: a jq program whose output is the body")
		}
	}
	return nil
}

// given lists the options set, by their JSON names.
func (o Options) given() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(o.RoutingKey != "", "routing_key")
	add(o.Source != "", "source")
	add(o.DedupField != "", "dedup_field")
	add(len(o.Severity) > 0, "severity")
	add(len(o.LabelFields) > 0, "label_fields")
	add(len(o.Labels) > 0, "labels")
	add(len(o.Tags) > 0, "tags")
	add(o.Site != "", "site")
	add(o.Template != "", "template")
	return out
}

// Redacted is o without its secrets (what the API may show).
func (o Options) Redacted() Options {
	o.RoutingKey = ""
	return o
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// opener is the type of the event ev resolves.
func opener(ev *event) string {
	p, _ := ev.pair()
	return p.opener
}
