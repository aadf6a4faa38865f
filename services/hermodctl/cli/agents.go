package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

func (a *app) agentsCommand() *cobra.Command {
	return group("agents", "Register agents and change their grants", []string{"agent"},
		a.agentsList(), a.agentsGet(), a.agentsCreate(), a.agentsUpdate(), a.agentsDelete())
}

func (a *app) agent(ag apiclient.Agent, raw []byte) error {
	p := a.out()
	if p.json() {
		return p.raw(raw)
	}
	kv := [][2]string{{"id", ag.ID}, {"labels", join(ag.Labels)}, {"status", ag.Status}, {"version", str(ag.Version)},
		{"in flight", strconv.Itoa(ag.InFlight)}, {"last seen", whenPtr(ag.LastSeenAt)},
		{"created", when(ag.CreatedAt)}, {"updated", when(ag.UpdatedAt)}}
	if ag.Credentials != nil {
		kv = append(kv, [2]string{"token", ag.Credentials.Token})
	}
	if err := p.fields(kv); err != nil {
		return err
	}
	if ag.Credentials != nil {
		fmt.Fprintln(a.env.Stderr, "The token is shown this once: give it to the agent (HERMOD_AGENT_TOKEN).")
	}
	return nil
}

func (a *app) agentsList() *cobra.Command {
	var pf pageFlags
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List agents",
		Example: "  hermodctl agents list",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			items, raw, next, err := collect(cmd.Context(), pf, c.ListAgents)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(items))
			for _, ag := range items {
				rows = append(rows, []string{ag.ID, ag.Status, join(ag.Labels), str(ag.Version), strconv.Itoa(ag.InFlight), whenPtr(ag.LastSeenAt)})
			}
			return a.listed(raw, next, []string{"ID", "STATUS", "LABELS", "VERSION", "IN FLIGHT", "LAST SEEN"}, rows)
		}),
	}
	pf.add(cmd)
	return cmd
}

func (a *app) agentsGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get AGENT_ID",
		Short:   "Show an agent",
		Example: "  hermodctl agents get edge-1",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			ag, raw, err := c.GetAgent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.agent(ag, raw)
		}),
	}
}

func (a *app) agentsCreate() *cobra.Command {
	return a.agentGrant("create AGENT_ID --label LABEL...", "Register an agent granted labels; prints its token once",
		"  hermodctl agents create edge-1 --label eu-west --label gpu", (*apiclient.Client).CreateAgent)
}

func (a *app) agentsUpdate() *cobra.Command {
	return a.agentGrant("update AGENT_ID --label LABEL...", "Replace an agent's grant (applies without restarting it)",
		"  hermodctl agents update edge-1 --label eu-west", (*apiclient.Client).UpdateAgent)
}

// agentGrant is a command that sends an agent's id and its granted labels
// (create and update) and prints the agent the API answers.
func (a *app) agentGrant(use, short, example string,
	call func(*apiclient.Client, context.Context, string, []string) (apiclient.Agent, apiclient.Raw, error)) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if len(labels) == 0 {
				return usagef("at least one --label is required")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			ag, raw, err := call(c, cmd.Context(), args[0], labels)
			if err != nil {
				return err
			}
			return a.agent(ag, raw)
		}),
	}
	cmd.Flags().StringSliceVarP(&labels, "label", "l", nil, "a label granted (comma-separated or repeated)")
	return cmd
}

func (a *app) agentsDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete AGENT_ID",
		Aliases: []string{"rm"},
		Short:   "Revoke an agent (its credentials stop working at once)",
		Example: "  hermodctl agents delete edge-1",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			if err := c.DeleteAgent(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.out().json() {
				fmt.Fprintf(a.env.Stdout, "deleted agent %s\n", args[0])
			}
			return nil
		}),
	}
}
