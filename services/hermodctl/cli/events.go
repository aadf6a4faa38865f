package cli

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

func (a *app) eventsCommand() *cobra.Command {
	return group("events", "Send events", []string{"event"}, a.eventsSend())
}

func (a *app) eventsSend() *cobra.Command {
	var data, id string
	var labels []string
	cmd := &cobra.Command{
		Use:   "send EVENT_TYPE",
		Short: "Publish an event (as POST /api/v1/events)",
		Example: `  hermodctl events send deployment.applied --data '{"deployment_id":"d-1"}'
  hermodctl events send alert.triggered --data @alert.json --label env=prod
  echo '{"stack_id":"s-1"}' | hermodctl events send stack.created --data -`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			raw, err := a.readJSONArg(data, "--data")
			if err != nil {
				return err
			}
			l, err := keyValues(labels, "--label")
			if err != nil {
				return err
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			acc, rawAns, err := c.SendEvent(cmd.Context(), apiclient.Event{EventType: args[0], Data: raw, ID: id, Labels: l})
			if err != nil {
				return err
			}
			p := a.out()
			if p.json() {
				return p.raw(rawAns)
			}
			return p.fields([][2]string{{"id", acc.ID}, {"duplicate", strconv.FormatBool(acc.Duplicate)}})
		}),
	}
	cmd.Flags().StringVarP(&data, "data", "d", "{}", "the event's data as JSON: text, @FILE, or - for stdin")
	cmd.Flags().StringVar(&id, "id", "", "the event id (default: generated); the same id again is a duplicate")
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "a label KEY=VALUE (repeat)")
	return cmd
}

func (a *app) eventTypesCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "event-types",
		Short:   "List the catalogue of event types",
		Example: "  hermodctl event-types",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			list, raw, err := c.EventTypes(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(list.Data))
			for _, t := range list.Data {
				rows = append(rows, []string{t.Type, t.Description})
			}
			return a.listed(raw, nil, []string{"TYPE", "DESCRIPTION"}, rows)
		}),
	}
}
