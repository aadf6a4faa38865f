package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

func (a *app) webhooksCommand() *cobra.Command {
	return group("webhooks", "Create, change, pause, test and inspect webhooks", []string{"webhook", "wh"},
		a.webhooksList(), a.webhooksGet(), a.webhooksCreate(), a.webhooksUpdate(),
		a.webhookAction("pause", "Pause a webhook (its deliveries are held until resume)"),
		a.webhookAction("resume", "Resume a paused webhook"),
		a.webhooksDelete(), a.webhooksTest(), a.webhooksPreview(), a.webhooksSecret(), a.webhooksStats())
}

var webhookHeader = []string{"ID", "NAME", "STATUS", "FORMAT", "EVENT TYPES", "DELIVERED", "FAILED", "SUCCESS", "URL"}

func webhookRow(w apiclient.Webhook) []string {
	rate := ""
	if w.SuccessRate != nil {
		rate = strconv.FormatFloat(*w.SuccessRate, 'f', -1, 64) + "%"
	}
	return []string{w.ID, w.Name, w.Status, w.Format, join(w.EventTypes),
		strconv.FormatInt(w.TotalDelivered, 10), strconv.FormatInt(w.TotalFailed, 10), rate, w.URLRedacted}
}

// webhook prints one webhook: its JSON, or its fields.
func (a *app) webhook(w apiclient.Webhook, raw []byte) error {
	p := a.out()
	if p.json() {
		return p.raw(raw)
	}
	filters := ""
	if len(w.Filters) > 0 && string(w.Filters) != "null" {
		filters = string(w.Filters)
	}
	rate := ""
	if w.SuccessRate != nil {
		rate = strconv.FormatFloat(*w.SuccessRate, 'f', -1, 64) + "%"
	}
	return p.fields([][2]string{
		{"id", w.ID}, {"name", w.Name}, {"description", w.Description}, {"url", w.URLRedacted},
		{"status", w.Status}, {"enabled", yesNo(w.Enabled)}, {"event types", join(w.EventTypes)},
		{"target labels", join(w.TargetLabels)}, {"filters", filters}, {"format", w.Format},
		{"max retries", strconv.Itoa(w.MaxRetries)}, {"timeout", strconv.Itoa(w.TimeoutSeconds) + "s"},
		{"auth header", yesNo(w.HasAuthHeader)}, {"headers", join(w.HeaderNames)},
		{"delivered", strconv.FormatInt(w.TotalDelivered, 10)}, {"failed", strconv.FormatInt(w.TotalFailed, 10)},
		{"success rate", rate}, {"last delivery", whenPtr(w.LastDeliveryAt)},
		{"created", when(w.CreatedAt)}, {"updated", when(w.UpdatedAt)},
	})
}

func (a *app) webhooksList() *cobra.Command {
	var pf pageFlags
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List webhooks",
		Example: "  hermodctl webhooks list\n  hermodctl webhooks list --all -o json",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			items, raw, next, err := collect(cmd.Context(), pf, c.ListWebhooks)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, w := range items {
				rows = append(rows, webhookRow(w))
			}
			return a.listed(raw, next, webhookHeader, rows)
		}),
	}
	pf.add(cmd)
	return cmd
}

func (a *app) webhooksGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get WEBHOOK_ID",
		Short:   "Show a webhook",
		Example: "  hermodctl webhooks get 0b6f...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			w, raw, err := c.GetWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.webhook(w, raw)
		}),
	}
}

// webhookFlags are the fields of a webhook body as flags.
type webhookFlags struct {
	file          string
	name          string
	description   string
	url           string
	events        []string
	authHeader    string
	headers       []string
	secret        string
	targetLabels  []string
	filterLabels  []string
	agentID       string
	stackID       string
	maxRetries    int
	timeout       int
	format        string
	formatOptions string
	enabled       bool
}

func (f *webhookFlags) add(fs *pflag.FlagSet, create bool) {
	fs.StringVarP(&f.file, "file", "f", "", "the body as JSON: a file, or - for stdin (flags override its fields)")
	fs.StringVar(&f.name, "name", "", "name")
	fs.StringVar(&f.description, "description", "", "description (\"\" clears it)")
	fs.StringVar(&f.url, "url", "", "the receiver's http or https URL")
	fs.StringSliceVar(&f.events, "events", nil, "event types: catalogue types, family.* or * (comma-separated or repeated)")
	fs.StringVar(&f.authHeader, "auth-header", "", "sent as the Authorization header (\"\" clears it)")
	fs.StringArrayVar(&f.headers, "header", nil, "a custom header NAME=VALUE (repeat; replaces them all)")
	if create {
		fs.StringVar(&f.secret, "secret", "", "the signing secret, whsec_... (default: generated)")
	}
	fs.StringSliceVar(&f.targetLabels, "target-label", nil, "deliver through an agent holding these labels (repeat)")
	fs.StringArrayVar(&f.filterLabels, "filter-label", nil, "only events with this label KEY=VALUE (repeat)")
	fs.StringVar(&f.agentID, "filter-agent-id", "", "only events whose data.agent_id is this")
	fs.StringVar(&f.stackID, "filter-stack-id", "", "only events whose data.stack_id is this")
	fs.IntVar(&f.maxRetries, "max-retries", 0, "attempts before a delivery is dead")
	fs.IntVar(&f.timeout, "timeout", 0, "seconds an attempt may take")
	fs.StringVar(&f.format, "format", "", "body format: standard, slack, pagerduty, datadog, alertmanager, teams, jq")
	fs.StringVar(&f.formatOptions, "format-options", "", "the format's options as JSON (text, @FILE or -)")
	fs.BoolVar(&f.enabled, "enabled", true, "deliver (false: created paused)")
}

// body builds the JSON body: the file's fields, then every flag given.
func (a *app) webhookBody(cmd *cobra.Command, f *webhookFlags) (map[string]any, error) {
	body := map[string]any{}
	if f.file != "" {
		src := f.file
		if src != "-" {
			src = "@" + src
		}
		raw, err := a.readJSONArg(src, "--file")
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, usagef("--file: want a JSON object: %w", err)
		}
	}
	ch := cmd.Flags().Changed
	orNull := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	if ch("name") {
		body["name"] = f.name
	}
	if ch("description") {
		body["description"] = orNull(f.description)
	}
	if ch("url") {
		body["url"] = f.url
	}
	if ch("events") {
		body["event_types"] = f.events
	}
	if ch("auth-header") {
		body["auth_header"] = orNull(f.authHeader)
	}
	if ch("header") {
		h, err := keyValues(f.headers, "--header")
		if err != nil {
			return nil, err
		}
		body["headers"] = h
	}
	if ch("secret") {
		body["secret"] = f.secret
	}
	if ch("target-label") {
		body["target_labels"] = f.targetLabels
	}
	if ch("filter-label") || ch("filter-agent-id") || ch("filter-stack-id") {
		filters := map[string]any{}
		if ch("filter-label") {
			l, err := keyValues(f.filterLabels, "--filter-label")
			if err != nil {
				return nil, err
			}
			filters["labels"] = l
		}
		if ch("filter-agent-id") {
			filters["agent_id"] = orNull(f.agentID)
		}
		if ch("filter-stack-id") {
			filters["stack_id"] = orNull(f.stackID)
		}
		body["filters"] = filters
	}
	if ch("max-retries") {
		body["max_retries"] = f.maxRetries
	}
	if ch("timeout") {
		body["timeout_seconds"] = f.timeout
	}
	if ch("format") {
		body["format"] = f.format
	}
	if ch("format-options") {
		raw, err := a.readJSONArg(f.formatOptions, "--format-options")
		if err != nil {
			return nil, err
		}
		body["format_options"] = raw
	}
	if ch("enabled") {
		body["enabled"] = f.enabled
	}
	return body, nil
}

func (a *app) webhooksCreate() *cobra.Command {
	var f webhookFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a webhook",
		Example: `  hermodctl webhooks create --name billing --url https://example.com/hooks --events 'deployment.*,alert.triggered'
  hermodctl webhooks create -f webhook.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			body, err := a.webhookBody(cmd, &f)
			if err != nil {
				return err
			}
			for _, k := range []string{"name", "url", "event_types"} {
				if _, ok := body[k]; !ok {
					return usagef("%s is required (--name, --url, --events, or in --file)", k)
				}
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			w, raw, err := c.CreateWebhook(cmd.Context(), body)
			if err != nil {
				return err
			}
			return a.webhook(w, raw)
		}),
	}
	f.add(cmd.Flags(), true)
	return cmd
}

func (a *app) webhooksUpdate() *cobra.Command {
	var f webhookFlags
	cmd := &cobra.Command{
		Use:   "update WEBHOOK_ID",
		Short: "Change the fields of a webhook given as flags (the others stay)",
		Example: `  hermodctl webhooks update 0b6f... --events '*' --max-retries 5
  hermodctl webhooks update 0b6f... --description ''`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			body, err := a.webhookBody(cmd, &f)
			if err != nil {
				return err
			}
			if len(body) == 0 {
				return usagef("nothing to change: give at least one field flag or --file")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			w, raw, err := c.UpdateWebhook(cmd.Context(), args[0], body)
			if err != nil {
				return err
			}
			return a.webhook(w, raw)
		}),
	}
	f.add(cmd.Flags(), false)
	return cmd
}

func (a *app) webhookAction(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:     name + " WEBHOOK_ID",
		Short:   short,
		Example: "  hermodctl webhooks " + name + " 0b6f...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			do := c.PauseWebhook
			if name == "resume" {
				do = c.ResumeWebhook
			}
			w, raw, err := do(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.webhook(w, raw)
		}),
	}
}

func (a *app) webhooksDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete WEBHOOK_ID",
		Aliases: []string{"rm"},
		Short:   "Delete a webhook (its queued deliveries are never sent)",
		Example: "  hermodctl webhooks delete 0b6f...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			if err := c.DeleteWebhook(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.out().json() {
				fmt.Fprintf(a.env.Stdout, "deleted webhook %s\n", args[0])
			}
			return nil
		}),
	}
}

func (a *app) webhooksTest() *cobra.Command {
	return &cobra.Command{
		Use:     "test WEBHOOK_ID",
		Short:   "Send a signed webhook.test event to the webhook now and show the answer",
		Example: "  hermodctl webhooks test 0b6f...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, raw, err := c.TestWebhook(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(raw)
			}
			if err := p.fields([][2]string{{"success", yesNo(r.Success)}, {"status code", intStr(r.StatusCode)},
				{"duration", strconv.FormatInt(r.DurationMS, 10) + "ms"}, {"error", str(r.Error)},
				{"delivery id", r.DeliveryID}, {"by", r.By}, {"response", r.ResponseExcerpt}}); err != nil {
				return err
			}
			if !r.Success {
				return fmt.Errorf("the test delivery failed")
			}
			return nil
		}),
	}
}

func (a *app) webhooksPreview() *cobra.Command {
	var eventType, data, webhookFile string
	cmd := &cobra.Command{
		Use:   "preview [WEBHOOK_ID]",
		Short: "Show the body a webhook (or an unsaved webhook body) would send for an event",
		Example: `  hermodctl webhooks preview 0b6f... --event-type deployment.failed
  hermodctl webhooks preview 0b6f... --event-type alert.triggered --data '{"name":"disk full"}'
  hermodctl webhooks preview --webhook-file slack.json --event-type alert.triggered`,
		Args: cobra.MaximumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (webhookFile != "") {
				return usagef("give a WEBHOOK_ID or --webhook-file, not both nor neither")
			}
			body := map[string]any{}
			if data != "" {
				if eventType == "" {
					return usagef("--data needs --event-type")
				}
				raw, err := a.readJSONArg(data, "--data")
				if err != nil {
					return err
				}
				body["event"] = map[string]any{"event_type": eventType, "data": raw}
			} else if eventType != "" {
				body["event_type"] = eventType
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			var pv apiclient.Preview
			var raw []byte
			if len(args) == 1 {
				pv, raw, err = c.PreviewWebhook(cmd.Context(), args[0], body)
			} else {
				src := webhookFile
				if src != "-" {
					src = "@" + src
				}
				wb, err2 := a.readJSONArg(src, "--webhook-file")
				if err2 != nil {
					return err2
				}
				body["webhook"] = wb
				pv, raw, err = c.PreviewUnsaved(cmd.Context(), body)
			}
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(raw)
			}
			if err := p.fields([][2]string{{"format", pv.Format}, {"content type", pv.ContentType}}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.env.Stdout, "body:\n%s\n", indented(pv.Body))
			return err
		}),
	}
	cmd.Flags().StringVar(&eventType, "event-type", "", "the event type (default: the webhook's first subscribed type)")
	cmd.Flags().StringVar(&data, "data", "", "the event's data as JSON: text, @FILE or - for stdin (default: a sample)")
	cmd.Flags().StringVar(&webhookFile, "webhook-file", "", "preview this webhook body (JSON file or -) instead of a saved webhook")
	return cmd
}

func (a *app) webhooksSecret() *cobra.Command {
	get := &cobra.Command{
		Use:     "get WEBHOOK_ID",
		Short:   "Show a webhook's signing secret",
		Example: "  hermodctl webhooks secret get 0b6f...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			s, raw, err := c.GetSecret(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.secret(s, raw)
		}),
	}
	var newSecret string
	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate WEBHOOK_ID",
		Short: "Replace a webhook's signing secret (the previous one keeps signing during the overlap)",
		Example: `  hermodctl webhooks secret rotate 0b6f...
  hermodctl webhooks secret rotate 0b6f... --overlap 0`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			var r apiclient.RotateRequest
			r.Secret = newSecret
			if cmd.Flags().Changed("overlap") {
				if overlap < 0 || overlap%time.Second != 0 {
					return usagef("--overlap %s: want whole seconds, 0 or more", overlap)
				}
				s := int(overlap / time.Second)
				r.OverlapSeconds = &s
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			s, raw, err := c.RotateSecret(cmd.Context(), args[0], r)
			if err != nil {
				return err
			}
			return a.secret(s, raw)
		}),
	}
	rotate.Flags().StringVar(&newSecret, "secret", "", "the new secret, whsec_... (default: generated)")
	rotate.Flags().DurationVar(&overlap, "overlap", 24*time.Hour, "how long the previous secret still signs (0 drops it now)")
	return group("secret", "Show or rotate a webhook's signing secret", nil, get, rotate)
}

func (a *app) secret(s apiclient.Secret, raw []byte) error {
	p := a.out()
	if p.json() {
		return p.raw(raw)
	}
	return p.fields([][2]string{{"secret", s.Secret}, {"previous secret until", whenPtr(s.PreviousSecretExpiresAt)}})
}

func (a *app) webhooksStats() *cobra.Command {
	var window string
	cmd := &cobra.Command{
		Use:     "stats WEBHOOK_ID",
		Short:   "Show a webhook's deliveries per minute (minutes with none are left out of the table)",
		Example: "  hermodctl webhooks stats 0b6f... --window 30m",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			st, raw, err := c.WebhookStats(cmd.Context(), args[0], window)
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(raw)
			}
			var rows [][]string
			var ok, failed, dead int64
			for _, b := range st.Data {
				ok, failed, dead = ok+b.Success, failed+b.Failed, dead+b.Dead
				if b.Success+b.Failed+b.Dead == 0 {
					continue
				}
				rows = append(rows, []string{when(b.Minute), strconv.FormatInt(b.Success, 10), strconv.FormatInt(b.Failed, 10),
					strconv.FormatInt(b.Dead, 10), i64Str(b.P50MS), i64Str(b.P99MS)})
			}
			rows = append(rows, []string{"total (" + st.Window + ")", strconv.FormatInt(ok, 10), strconv.FormatInt(failed, 10),
				strconv.FormatInt(dead, 10), "", ""})
			return p.table([]string{"MINUTE", "SUCCESS", "FAILED", "DEAD", "P50 MS", "P99 MS"}, rows)
		}),
	}
	cmd.Flags().StringVar(&window, "window", "", "how far back, 1m to 24h (default: the server's, 1h)")
	return cmd
}
