package formats

import (
	"sort"
	"strings"
	"time"
)

// slackMessage is a Slack incoming-webhook message: text (the fallback and
// notification line) and blocks (the summary, up to 10 fields, the event's
// id and time, and a button when the event carries a link). Slack limits a
// section's text to 3,000 characters and a field to 2,000.
func slackMessage(ev *event) map[string]any {
	sum := slackEscape(ev.summary())
	blocks := []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": cut("*"+sum+"*", 3000)}}}
	if fs := ev.fields(); len(fs) > 0 {
		var fields []any
		for _, f := range fs[:min(len(fs), 10)] {
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": cut("*"+slackEscape(f.Name)+"*\n"+slackEscape(f.Value), 2000)})
		}
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	blocks = append(blocks, map[string]any{"type": "context", "elements": []any{
		map[string]any{"type": "mrkdwn", "text": cut(slackEscape("`"+ev.Type+"` · event "+ev.ID+" · "+ev.Timestamp), 3000)}}})
	if l := ev.link(); l != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{
			map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Open"}, "url": l}}})
	}
	return map[string]any{"text": cut(sum, 3000), "blocks": blocks}
}

// slackEscape escapes &, < and > in text from the event, as Slack asks:
// data can then never ping a channel (<!channel>) or disguise a link.
func slackEscape(s string) string { return slackEscaper.Replace(s) }

// slackEscaper is safe for concurrent use: one for every render.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// pagerDutyEvent is a PagerDuty Events API v2 event: trigger, or resolve
// for an event that resolves its pair's opener, with the same dedup key.
func pagerDutyEvent(ev *event, o Options) map[string]any {
	out := map[string]any{"routing_key": o.RoutingKey, "dedup_key": cut(ev.key(o.DedupField), 255)}
	if ev.resolves() {
		out["event_action"] = "resolve"
		return out
	}
	source := o.Source
	if source == "" {
		source = "hermod"
	}
	details := map[string]any{"event_id": ev.ID, "event_type": ev.Type}
	for _, f := range ev.fields() {
		details[f.Name] = f.Value
	}
	for k, v := range ev.Labels {
		details["label."+k] = v
	}
	payload := map[string]any{"summary": cut(ev.summary(), 1024), "source": source, "severity": ev.severity(o.Severity),
		"class": ev.Type, "group": ev.Family, "custom_details": details}
	if ev.Timestamp != "" {
		payload["timestamp"] = ev.Timestamp
	}
	out["event_action"] = "trigger"
	out["payload"] = payload
	if l := ev.link(); l != "" {
		out["links"] = []any{map[string]any{"href": l, "text": "Open"}}
	}
	return out
}

// datadogEvent is a Datadog Events API (v1) event: title, text (markdown),
// alert type, tags and an aggregation key grouping an event with its pair.
func datadogEvent(ev *event, o Options, now time.Time) map[string]any {
	alert := map[string]string{"critical": "error", "error": "error", "warning": "warning", "info": "info"}[ev.severity(o.Severity)]
	if ev.resolves() {
		alert = "success"
	}
	var text strings.Builder
	text.WriteString("%%% \n") // Datadog's markdown block: "%%% \n" … "\n %%%"
	for _, f := range ev.fields() {
		text.WriteString("**" + f.Name + "**: " + f.Value + "\n")
	}
	if l := ev.link(); l != "" {
		text.WriteString("[Open](" + l + ")\n")
	}
	text.WriteString("\nevent `" + ev.ID + "`\n %%%")
	tags := []string{"source:hermod", "event_type:" + ev.Type}
	for k, v := range ev.Labels {
		tags = append(tags, k+":"+v)
	}
	sort.Strings(tags[2:])
	tags = append(tags, o.Tags...)
	// Datadog refuses events older than 18 hours: an older event (retried
	// or held a long time) is dated now; its own time stays in the text.
	happened := ev.time(now)
	if now.Sub(happened) > 17*time.Hour {
		happened = now
	}
	return map[string]any{"title": cut(ev.summary(), 100), "text": cutMarkdown(text.String(), 4000), "alert_type": alert,
		"source_type_name": "hermod", "aggregation_key": cut(ev.key(""), 100), "tags": tags,
		"date_happened": happened.Unix()}
}

// cutMarkdown bounds a Datadog markdown block, keeping its closing marker.
func cutMarkdown(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const end = "\n %%%"
	return cut(s[:len(s)-len(end)], n-len(end)) + end
}

// alertmanagerAlerts is an Alertmanager API v2 alerts body (a list of one
// alert). Its identifying labels are alertname (hermod_<family>; for an
// operational event hermod_webhook or hermod_agent), the pair's
// id field, label_fields and the fixed labels, so a resolving event, which
// sends the same labels with endsAt now, resolves the alert.
func alertmanagerAlerts(ev *event, o Options, now time.Time) []any {
	labels := map[string]string{"alertname": "hermod_" + labelSafe(ev.subject())}
	idField := ev.idField()
	if v := ev.str(idField); v != "" {
		labels[labelSafe(idField)] = v
	}
	for _, f := range o.LabelFields {
		if v := ev.str(f); v != "" {
			labels[labelSafe(f)] = v
		}
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	annotations := map[string]string{"summary": ev.summary(), "event_id": ev.ID, "event_type": ev.Type}
	var desc []string
	for _, f := range ev.fields() {
		desc = append(desc, f.Name+": "+f.Value)
	}
	if len(desc) > 0 {
		annotations["description"] = strings.Join(desc, "\n")
	}
	alert := map[string]any{"labels": labels, "annotations": annotations}
	if l := ev.link(); l != "" {
		alert["generatorURL"] = l
	}
	// The severity label must be the same on the resolving event, so it
	// is the opener's.
	sev := ev
	if ev.resolves() {
		sev = &event{Type: opener(ev), Family: ev.Family}
	}
	labels["severity"] = sev.severity(o.Severity)
	at := ev.time(now).UTC().Format(time.RFC3339Nano)
	if ev.resolves() {
		alert["endsAt"] = at
	} else {
		alert["startsAt"] = at
	}
	return []any{alert}
}

// labelSafe turns a field name into a Prometheus label name.
func labelSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// teamsMessage is a Teams (Power Automate workflow) message carrying one
// Adaptive Card: the summary, the fields as a fact set, and a link.
func teamsMessage(ev *event) map[string]any {
	var facts []any
	for _, f := range ev.fields() {
		facts = append(facts, map[string]any{"title": f.Name, "value": f.Value})
	}
	facts = append(facts, map[string]any{"title": "event", "value": ev.Type + " · " + ev.ID})
	card := map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
		"version": "1.4", "body": []any{
			map[string]any{"type": "TextBlock", "text": ev.summary(), "weight": "Bolder", "wrap": true},
			map[string]any{"type": "FactSet", "facts": facts},
		}}
	if l := ev.link(); l != "" {
		card["actions"] = []any{map[string]any{"type": "Action.OpenUrl", "title": "Open", "url": l}}
	}
	return map[string]any{"type": "message", "attachments": []any{map[string]any{
		"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": nil, "content": card}}}
}
