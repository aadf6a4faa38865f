package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

// deliveryStatuses are the statuses a delivery can be in.
var deliveryStatuses = []string{"pending", "acquired", "success", "failed", "dead"}

// replayStatuses are the statuses a replay takes.
var replayStatuses = []string{"dead", "failed"}

func validStatus(s string) bool {
	for _, v := range deliveryStatuses {
		if s == v {
			return true
		}
	}
	return false
}

func (a *app) deliveriesCommand() *cobra.Command {
	return group("deliveries", "List, inspect and retry deliveries", []string{"delivery", "dl"},
		a.deliveriesList(), a.deliveriesGet(), a.deliveriesRetry())
}

func (a *app) deliveriesList() *cobra.Command {
	var pf pageFlags
	var status string
	cmd := &cobra.Command{
		Use:     "list WEBHOOK_ID",
		Aliases: []string{"ls"},
		Short:   "List a webhook's deliveries, newest first",
		Example: "  hermodctl deliveries list 0b6f...\n  hermodctl deliveries list 0b6f... --status dead --all",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if status != "" && !validStatus(status) {
				return usagef("--status %q: want one of %s", status, join(deliveryStatuses))
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			items, raw, next, err := collect(cmd.Context(), pf,
				func(ctx context.Context, o apiclient.PageOptions) (apiclient.Page[apiclient.Delivery], apiclient.Raw, error) {
					return c.ListDeliveries(ctx, args[0], status, o)
				})
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, d := range items {
				errText := str(d.LastError)
				if d.DeadReason != nil {
					errText = *d.DeadReason + ": " + errText
				}
				rows = append(rows, []string{d.ID, d.EventType, d.Status, strconv.Itoa(d.Attempts),
					intStr(d.LastStatusCode), when(d.CreatedAt), whenPtr(d.NextRetryAt), errText})
			}
			return a.listed(raw, next, []string{"ID", "EVENT TYPE", "STATUS", "ATTEMPTS", "LAST CODE", "CREATED", "NEXT RETRY", "LAST ERROR"}, rows)
		}),
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only deliveries in this status: "+join(deliveryStatuses))
	return cmd
}

func (a *app) deliveriesGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get DELIVERY_ID",
		Short:   "Show a delivery, its attempts and its payload",
		Example: "  hermodctl deliveries get 7d1e...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			d, raw, err := c.GetDelivery(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(raw)
			}
			if err := p.fields([][2]string{{"id", d.ID}, {"webhook", d.WebhookID}, {"event", d.EventID},
				{"event type", d.EventType}, {"status", d.Status}, {"dead reason", str(d.DeadReason)},
				{"attempts", strconv.Itoa(d.Attempts)}, {"last status code", intStr(d.LastStatusCode)},
				{"last error", str(d.LastError)}, {"next retry", whenPtr(d.NextRetryAt)},
				{"target labels", join(d.TargetLabels)}, {"delivered by", str(d.DeliveredBy)},
				{"created", when(d.CreatedAt)}, {"updated", when(d.UpdatedAt)}, {"completed", whenPtr(d.CompletedAt)},
				{"payload size", strconv.Itoa(d.PayloadSize)}}); err != nil {
				return err
			}
			if len(d.AttemptHistory) > 0 {
				fmt.Fprintln(a.env.Stdout, "\nattempts:")
				rows := make([][]string, 0, len(d.AttemptHistory))
				for _, at := range d.AttemptHistory {
					rows = append(rows, []string{strconv.Itoa(at.Epoch) + "." + strconv.Itoa(at.Attempt), when(at.StartedAt),
						at.Status, strconv.Itoa(at.StatusCode), strconv.FormatInt(at.DurationMS, 10), at.By, at.Error})
				}
				if err := p.table([]string{"EPOCH.N", "STARTED", "STATUS", "CODE", "MS", "BY", "ERROR"}, rows); err != nil {
					return err
				}
			}
			if pl := indented(d.Payload); pl != "" {
				fmt.Fprintf(a.env.Stdout, "\npayload:\n%s\n", pl)
			}
			return nil
		}),
	}
}

func (a *app) deliveriesRetry() *cobra.Command {
	return &cobra.Command{
		Use:     "retry DELIVERY_ID",
		Short:   "Send a dead delivery again",
		Example: "  hermodctl deliveries retry 7d1e...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, raw, err := c.RetryDelivery(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(raw)
			}
			return p.fields([][2]string{{"id", r.ID}, {"status", r.Status}})
		}),
	}
}
