package formats

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/catalog"
)

func TestMain(m *testing.M) {
	RunnerMain()
	goleak.VerifyTestMain(m)
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const routingKey = "R0123456789abcdef0123456789ABCDE"

func envelope(t testing.TB, eventType string, data map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": "ev-1", "event_type": eventType, "timestamp": "2026-11-30T11:59:00Z",
		"data": data, "labels": map[string]string{"env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func render(t *testing.T, name Name, opts *Options, body []byte) map[string]any {
	t.Helper()
	r, err := Compile(name, opts)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	out, err := r.Render(context.Background(), body, now)
	if err != nil {
		t.Fatalf("render %s: %v", name, err)
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s rendered no JSON: %v\n%s", name, err, out)
	}
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{"list": v}
}

// Bad formats and options are refused naming the field.
func TestCompileRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		fmt   Name
		opts  Options
		field string
	}{
		{"unknown format", "email", Options{}, "format"},
		{"an option of another format", Slack, Options{RoutingKey: routingKey}, "format_options.routing_key"},
		{"pagerduty without a routing key", PagerDuty, Options{}, "format_options.routing_key"},
		{"pagerduty with a short routing key", PagerDuty, Options{RoutingKey: "abc"}, "format_options.routing_key"},
		{"a severity outside the list", PagerDuty, Options{RoutingKey: routingKey, Severity: map[string]string{"alert.*": "fatal"}},
			"format_options.severity.alert.*"},
		{"a bad dedup field", PagerDuty, Options{RoutingKey: routingKey, DedupField: "a b"}, "format_options.dedup_field"},
		{"a label that Prometheus refuses", Alertmanager, Options{Labels: map[string]string{"team-name": "x"}}, "format_options.labels.team-name"},
		{"a bad label field", Alertmanager, Options{LabelFields: []string{"x y"}}, "format_options.label_fields"},
		{"too many tags", Datadog, Options{Tags: make([]string, 51)}, "format_options.tags"},
		{"an empty tag", Datadog, Options{Tags: []string{""}}, "format_options.tags"},
		{"template without a program", Template, Options{}, "format_options.template"},
		{"template that does not compile", Template, Options{Template: "{text: .data.message"}, "format_options.template"},
		{"template calling an unknown function", Template, Options{Template: "nosuchfn(1)"}, "format_options.template"},
		{"template too long", Template, Options{Template: strings.Repeat(" ", templateMaxSource+1) + "."}, "format_options.template"},
	} {
		_, err := Compile(c.fmt, &c.opts)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%s: %v, want an error on %s", c.name, err, c.field)
		}
	}
	_, err := Compile(Template, &Options{Template: "{text: .data.message"})
	if err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("a syntax error does not say where: %v", err)
	}
}

// A Datadog site must be one of Datadog's, and the webhook's url on it.
func TestDatadogSite(t *testing.T) {
	if _, err := Compile(Datadog, &Options{Site: "datadoghq.example"}); err == nil {
		t.Error("an unknown site was accepted")
	}
	eu := &Options{Site: "datadoghq.eu"}
	for url, ok := range map[string]bool{
		"https://api.datadoghq.eu/api/v1/events":  true,
		"https://api.datadoghq.com/api/v1/events": false,
		"http://api.datadoghq.eu/api/v1/events":   false,
		"https://evil.example/api.datadoghq.eu":   false,
		"":                                        true, // nothing to check yet
	} {
		if err := CheckURL(Datadog, eu, url); (err == nil) != ok {
			t.Errorf("%q: %v", url, err)
		}
	}
	if err := CheckURL(Slack, eu, "https://hooks.slack.com/x"); err != nil {
		t.Errorf("the site of another format checked: %v", err)
	}
}

// Standard sends the envelope as it is.
func TestStandardIsTheEnvelope(t *testing.T) {
	body := envelope(t, "deployment.applied", map[string]any{"deployment_id": "d-1"})
	for _, r := range []*Renderer{nil, mustCompile(t, Standard, nil), mustCompile(t, "", nil)} {
		out, err := r.Render(context.Background(), body, now)
		if err != nil || string(out) != string(body) {
			t.Errorf("standard rendered %s (%v)", out, err)
		}
	}
}

func mustCompile(t *testing.T, n Name, o *Options) *Renderer {
	t.Helper()
	r, err := Compile(n, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The one-line summary says what happened, to what, and why; the other
// fields and the link are shown apart.
func TestSummary(t *testing.T) {
	ev, err := parseEvent(envelope(t, "alert.triggered", map[string]any{"alert_id": "a-1", "name": "HighCPU",
		"status": "firing", "message": "cpu above 90%", "url": "https://grafana.example/d/1", "value": 93.5,
		"tags": []any{"cpu", "node-7"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ev.summary(), "An alert fired: alert a-1 (HighCPU), firing: cpu above 90%"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if ev.link() != "https://grafana.example/d/1" {
		t.Errorf("link %q", ev.link())
	}
	fs := ev.fields()
	if len(fs) != 2 || fs[0] != (field{"tags", `["cpu","node-7"]`}) || fs[1] != (field{"value", "93.5"}) {
		t.Errorf("fields %v", fs)
	}
	if ev, _ := parseEvent(envelope(t, "cluster.degraded", map[string]any{"url": "javascript:alert(1)"})); ev.link() != "" {
		t.Error("a non-http link was kept")
	}
}

// Every built-in format renders every catalogue event type into what its
// receiver requires (required fields present, within the vendor's limits).
func TestEveryFormatRendersEveryEventType(t *testing.T) {
	long := strings.Repeat("long message ", 400)
	for _, et := range catalog.Default {
		tev := testEvent(et.Type)
		body := envelope(t, et.Type, map[string]any{tev.idField(): "x-1", "name": "n", "message": long, "count": 3})
		t.Run(et.Type, func(t *testing.T) {
			s := render(t, Slack, nil, body)
			if txt, _ := s["text"].(string); txt == "" || len(txt) > 3000 || len(s["blocks"].([]any)) > 50 {
				t.Errorf("slack: %v", s)
			}
			pd := render(t, PagerDuty, &Options{RoutingKey: routingKey}, body)
			if pd["routing_key"] != routingKey || (pd["event_action"] != "trigger" && pd["event_action"] != "resolve") ||
				len(pd["dedup_key"].(string)) > 255 {
				t.Errorf("pagerduty: %v", pd)
			}
			if pd["event_action"] == "trigger" {
				p := pd["payload"].(map[string]any)
				if sum, _ := p["summary"].(string); sum == "" || len(sum) > 1024 || p["source"] != "hermod" ||
					!strings.Contains("critical error warning info", p["severity"].(string)) {
					t.Errorf("pagerduty payload: %v", p)
				}
			}
			dd := render(t, Datadog, nil, body)
			if title, _ := dd["title"].(string); title == "" || len(title) > 100 || len(dd["text"].(string)) > 4000 ||
				!strings.Contains("error warning info success", dd["alert_type"].(string)) {
				t.Errorf("datadog: %v", dd)
			}
			am := render(t, Alertmanager, nil, body)["list"].([]any)
			a := am[0].(map[string]any)
			if len(am) != 1 || a["labels"].(map[string]any)["alertname"] != "hermod_"+tev.subject() || (a["startsAt"] == nil) == (a["endsAt"] == nil) {
				t.Errorf("alertmanager: %v", am)
			}
			tm := render(t, Teams, nil, body)
			att := tm["attachments"].([]any)[0].(map[string]any)
			card := att["content"].(map[string]any)
			if tm["type"] != "message" || att["contentType"] != "application/vnd.microsoft.card.adaptive" ||
				card["type"] != "AdaptiveCard" || card["version"] != "1.4" {
				t.Errorf("teams: %v", tm)
			}
		})
	}
}

// alert.resolved resolves what alert.triggered opened: PagerDuty's resolve
// with the same dedup key, Alertmanager's same labels with endsAt.
func TestPairsResolve(t *testing.T) {
	fire := envelope(t, "alert.triggered", map[string]any{"alert_id": "a-1", "name": "HighCPU", "message": "cpu"})
	clear := envelope(t, "alert.resolved", map[string]any{"alert_id": "a-1"})
	o := &Options{RoutingKey: routingKey, Severity: map[string]string{"alert.*": "critical"}}
	pt, pr := render(t, PagerDuty, o, fire), render(t, PagerDuty, o, clear)
	if pt["event_action"] != "trigger" || pr["event_action"] != "resolve" || pt["dedup_key"] != pr["dedup_key"] || pt["dedup_key"] != "alert:a-1" {
		t.Errorf("pagerduty pair: %v / %v", pt, pr)
	}
	if pt["payload"].(map[string]any)["severity"] != "critical" {
		t.Errorf("severity option ignored: %v", pt["payload"])
	}
	team := &Options{Labels: map[string]string{"team": "sre"}}
	at := render(t, Alertmanager, team, fire)["list"].([]any)[0].(map[string]any)
	ar := render(t, Alertmanager, team, clear)["list"].([]any)[0].(map[string]any)
	lt, _ := json.Marshal(at["labels"])
	lr, _ := json.Marshal(ar["labels"])
	if string(lt) != string(lr) || at["startsAt"] == nil || ar["endsAt"] == nil || !strings.Contains(string(lt), `"team":"sre"`) {
		t.Errorf("alertmanager pair labels %s / %s (%v / %v)", lt, lr, at, ar)
	}
	// A resolve that could not match its opener is refused, not sent,
	// naming the missing data field and the option that asked for it.
	noID := envelope(t, "alert.resolved", map[string]any{"cluster": "c-1", "fingerprint": "f9"})
	for _, c := range []struct {
		n             Name
		o             *Options
		body          []byte
		field, option string
	}{
		{PagerDuty, &Options{RoutingKey: routingKey, DedupField: "fingerprint"}, clear, "fingerprint", "format_options.dedup_field"},
		{PagerDuty, &Options{RoutingKey: routingKey}, noID, "alert_id", ""},
		{Alertmanager, &Options{LabelFields: []string{"cluster"}}, clear, "cluster", "format_options.label_fields"},
		{Alertmanager, &Options{LabelFields: []string{"cluster"}}, noID, "alert_id", ""},
	} {
		r := mustCompile(t, c.n, c.o)
		_, err := r.Render(context.Background(), c.body, now)
		var mf *MissingFieldError
		if !errors.As(err, &mf) || mf.Field != c.field || mf.Option != c.option || !strings.Contains(err.Error(), "cannot resolve") {
			t.Errorf("%s resolve without %s: %v (%+v), want field %q option %q", c.n, c.field, err, mf, c.field, c.option)
		}
	}
	if _, err := Compile(Alertmanager, &Options{Labels: map[string]string{"severity": "page"}}); err == nil {
		t.Error("a fixed severity label was accepted (Hermod sets it)")
	}
	// Slack: data can never ping a channel or disguise a link.
	s := render(t, Slack, nil, envelope(t, "alert.triggered", map[string]any{"alert_id": "a", "message": "<!channel> see <https://evil|here> & more"}))
	if txt := s["text"].(string); strings.Contains(txt, "<!channel>") || !strings.Contains(txt, "&lt;!channel&gt;") || !strings.Contains(txt, "&amp;") {
		t.Errorf("slack text not escaped: %q", txt)
	}
	// Without a pair, each event is its own incident, keyed by its id field.
	dep := render(t, PagerDuty, o, envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"}))
	if dep["event_action"] != "trigger" || dep["dedup_key"] != "deployment:d-1" {
		t.Errorf("deployment: %v", dep)
	}
	custom := render(t, PagerDuty, &Options{RoutingKey: routingKey, DedupField: "fingerprint"},
		envelope(t, "alert.triggered", map[string]any{"alert_id": "a-1", "fingerprint": "f9"}))
	if custom["dedup_key"] != "alert:f9" {
		t.Errorf("dedup_field ignored: %v", custom["dedup_key"])
	}
}

// A template shapes any receiver's body; render-time failures are
// ErrTemplate (the delivery dies with that error, never retried).
func TestTemplate(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1", "message": "image pull"})
	r := mustCompile(t, Template, &Options{Template: `{msg: "\(.event_type): \(.data.message)", env: .labels.env}`})
	out, err := r.Render(context.Background(), body, now)
	if err != nil || string(out) != `{"env":"prod","msg":"deployment.failed: image pull"}` {
		t.Errorf("template rendered %s (%v)", out, err)
	}
	for _, c := range []struct{ name, src, want string }{
		{"a runtime error", `.data.message | tonumber`, "tonumber cannot be applied"},
		{"no output", `empty`, "no output"},
		{"several values", `.id, .event_type`, "more than one value"},
		{"over the CPU budget", `[range(1e9)] | length`, "longer than 100ms of CPU time"},
		{"over the size budget", `"0123456789" * 30000`, "exceeds"},
		{"env is empty", `$ENV.PATH | ascii_downcase`, "cannot"},
	} {
		r := mustCompile(t, Template, &Options{Template: c.src})
		_, err := r.Render(context.Background(), body, now)
		if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrTemplate mentioning %q", c.name, err, c.want)
		}
	}
}

// A template that would take gigabytes kills only its runner, a child
// process: the render fails, and the next one works in a new runner.
func TestTemplateMemoryBomb(t *testing.T) {
	body := envelope(t, "deployment.failed", map[string]any{"deployment_id": "d-1"})
	for _, src := range []string{`"x" * 2147483646`, `null | .[536870911] = 0`} {
		_, err := mustCompile(t, Template, &Options{Template: src}).Render(context.Background(), body, now)
		if !errors.Is(err, ErrTemplate) {
			t.Errorf("%s: %v, want ErrTemplate", src, err)
		}
	}
	out, err := mustCompile(t, Template, &Options{Template: `{id}`}).Render(context.Background(), body, now)
	if err != nil || string(out) != `{"id":"ev-1"}` {
		t.Errorf("after a runner died: %s (%v)", out, err)
	}
}

// The routing key is a secret: Redacted drops it.
func TestRedacted(t *testing.T) {
	o := Options{RoutingKey: routingKey, Source: "prod"}
	if r := o.Redacted(); r.RoutingKey != "" || r.Source != "prod" {
		t.Errorf("redacted %+v", r)
	}
}

// testEvent is an event of type typ without data.
func testEvent(typ string) *event {
	ev := &event{Type: typ, Data: map[string]any{}}
	ev.Family, _, _ = strings.Cut(typ, ".")
	return ev
}

// Operational events render sensibly: a Slack text naming the webhook and
// what happened, a PagerDuty incident per webhook (its degradation and its
// deliveries' deaths) that its recovery resolves, per agent likewise.
func TestOperationalEvents(t *testing.T) {
	degraded := envelope(t, "hermod.webhook.degraded", map[string]any{"webhook_id": "w-1", "name": "orders",
		"url_redacted": "https://receiver.example", "reason": "dead_streak", "message": "its last 3 finished deliveries died"})
	s := render(t, Slack, nil, degraded)
	if txt := s["text"].(string); txt != "Hermod: a webhook turned degraded (its last 3 deliveries died, or its breaker opened): webhook w-1 (orders): its last 3 finished deliveries died" {
		t.Errorf("slack text %q", txt)
	}
	o := &Options{RoutingKey: routingKey}
	pd := render(t, PagerDuty, o, degraded)
	dead := render(t, PagerDuty, o, envelope(t, "hermod.delivery.dead", map[string]any{"webhook_id": "w-1", "delivery_id": "d-1"}))
	rec := render(t, PagerDuty, o, envelope(t, "hermod.webhook.recovered", map[string]any{"webhook_id": "w-1"}))
	other := render(t, PagerDuty, o, envelope(t, "hermod.webhook.degraded", map[string]any{"webhook_id": "w-2"}))
	if pd["dedup_key"] != "hermod.webhook:w-1" || dead["dedup_key"] != pd["dedup_key"] || rec["dedup_key"] != pd["dedup_key"] ||
		other["dedup_key"] == pd["dedup_key"] {
		t.Errorf("dedup keys %v %v %v %v", pd["dedup_key"], dead["dedup_key"], rec["dedup_key"], other["dedup_key"])
	}
	if pd["event_action"] != "trigger" || dead["event_action"] != "trigger" || rec["event_action"] != "resolve" {
		t.Errorf("actions %v %v %v", pd["event_action"], dead["event_action"], rec["event_action"])
	}
	if sev := dead["payload"].(map[string]any)["severity"]; sev != "error" {
		t.Errorf("delivery.dead severity %v", sev)
	}
	if sev := pd["payload"].(map[string]any)["severity"]; sev != "warning" {
		t.Errorf("degraded severity %v", sev)
	}
	in := render(t, PagerDuty, o, envelope(t, "hermod.agent.inactive", map[string]any{"agent_id": "eu-1"}))
	back := render(t, PagerDuty, o, envelope(t, "hermod.agent.active", map[string]any{"agent_id": "eu-1"}))
	if in["dedup_key"] != "hermod.agent:eu-1" || back["dedup_key"] != in["dedup_key"] || back["event_action"] != "resolve" {
		t.Errorf("agent pair %v / %v", in, back)
	}
}
