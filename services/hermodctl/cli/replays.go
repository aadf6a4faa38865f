package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

func (a *app) replaysCommand() *cobra.Command {
	return group("replays", "Send a webhook's past deliveries again", []string{"replay"},
		a.replaysStart(), a.replaysGet(), a.replaysList(), a.replaysCancel())
}

var replayHeader = []string{"ID", "WEBHOOK", "STATE", "STATUSES", "MATCHED", "REQUEUED", "SKIPPED", "CREATED", "FINISHED"}

func replayRow(r apiclient.Replay) []string {
	return []string{r.ID, r.WebhookID, r.State, join(r.Statuses), strconv.FormatInt(r.Matched, 10),
		strconv.FormatInt(r.Requeued, 10), strconv.FormatInt(r.Skipped, 10), when(r.CreatedAt), whenPtr(r.FinishedAt)}
}

func (a *app) replay(r apiclient.Replay, raw []byte) error {
	p := a.out()
	if p.json() {
		return p.raw(raw)
	}
	return p.fields([][2]string{{"id", r.ID}, {"webhook", r.WebhookID}, {"state", r.State},
		{"statuses", join(r.Statuses)}, {"since", whenPtr(r.Since)}, {"until", whenPtr(r.Until)},
		{"matched", strconv.FormatInt(r.Matched, 10)}, {"requeued", strconv.FormatInt(r.Requeued, 10)},
		{"skipped", strconv.FormatInt(r.Skipped, 10)}, {"error", str(r.Error)},
		{"created", when(r.CreatedAt)}, {"finished", whenPtr(r.FinishedAt)}})
}

// replayAPIErr explains the 404 of a server without the replay routes.
func replayAPIErr(err error) error {
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Message == "route not found" {
		return fmt.Errorf("%w: this server has no replay API (it is older than this hermodctl)", err)
	}
	return err
}

// replayOutcome is the error of a replay that ended other than done.
func replayOutcome(r apiclient.Replay) error {
	switch r.State {
	case apiclient.ReplayFailed:
		return fmt.Errorf("replay %s failed: %s", r.ID, str(r.Error))
	case apiclient.ReplayCancelled:
		return fmt.Errorf("replay %s was cancelled", r.ID)
	}
	return nil
}

func (a *app) replaysStart() *cobra.Command {
	var statuses []string
	var since, until string
	var detach, wait bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "start WEBHOOK_ID",
		Short: "Replay a webhook's deliveries in some statuses over a time range, showing progress",
		Long: `Replays the webhook's past deliveries in the given statuses, created between
--since and --until, and follows the replay until it ends: a progress bar on
stderr when stderr is a terminal, a line per change otherwise. --detach (or
-o json without --wait) prints the replay as started and returns; Ctrl-C
stops following, not the replay (see replays cancel).`,
		Example: `  hermodctl replays start 0b6f... --status dead,failed --since 24h
  hermodctl replays start 0b6f... --status dead --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z --detach`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			for _, s := range statuses {
				if !slices.Contains(replayStatuses, s) {
					return usagef("--status %q: want one of %s", s, join(replayStatuses))
				}
			}
			now := time.Now()
			req := apiclient.ReplayRequest{Statuses: statuses}
			var err error
			if req.Since, err = timeArg(since, "--since", now); err != nil {
				return err
			}
			if req.Until, err = timeArg(until, "--until", now); err != nil {
				return err
			}
			if req.Since != "" && req.Until != "" {
				s, _ := time.Parse(time.RFC3339Nano, req.Since)
				u, _ := time.Parse(time.RFC3339Nano, req.Until)
				if !s.Before(u) {
					return usagef("--since must be before --until")
				}
			}
			if interval < 100*time.Millisecond {
				return usagef("--interval must be at least 100ms")
			}
			c, err := a.api()
			if err != nil {
				return err
			}
			r, raw, err := c.StartReplay(cmd.Context(), args[0], req)
			if err != nil {
				return replayAPIErr(err)
			}
			if detach || (a.out().json() && !wait) {
				return a.replay(r, raw)
			}
			if !a.out().json() {
				fmt.Fprintf(a.env.Stderr, "replay %s started\n", r.ID)
			}
			r, raw, err = a.follow(cmd.Context(), c, r, raw, interval)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					fmt.Fprintf(a.env.Stderr, "\nstopped following; replay %s goes on (hermodctl replays cancel %s stops it)\n", r.ID, r.ID)
				}
				return err
			}
			if err := a.replay(r, raw); err != nil {
				return err
			}
			return replayOutcome(r)
		}),
	}
	cmd.Flags().StringSliceVar(&statuses, "status", []string{"dead"}, "the statuses to replay: "+join(replayStatuses)+" (a failed delivery still has its next attempt waiting: it is counted, not sent again)")
	cmd.Flags().StringVar(&since, "since", "", "only deliveries created at or after this: RFC 3339, or a duration before now (24h)")
	cmd.Flags().StringVar(&until, "until", "", "only deliveries created before this: RFC 3339, or a duration before now")
	cmd.Flags().BoolVar(&detach, "detach", false, "print the replay as started and return")
	cmd.Flags().BoolVar(&wait, "wait", false, "with -o json: follow the replay and print it as it ended")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to ask the server for progress")
	return cmd
}

// progress shows a replay's progress.
type progress interface {
	update(r apiclient.Replay)
	finish()
}

// follow polls a replay (r, answered as raw) until it ends (or ctx does),
// showing progress on stderr, and returns it as it ended.
func (a *app) follow(ctx context.Context, c *apiclient.Client, r apiclient.Replay, raw []byte, interval time.Duration) (apiclient.Replay, []byte, error) {
	var pr progress = &lineProgress{w: a.env.Stderr}
	if a.env.StderrTerminal {
		pr = newBarProgress(a.env.Stderr)
	}
	if a.out().json() {
		pr = nopProgress{}
	}
	defer pr.finish()
	pr.update(r)
	if r.Finished() { // it ended before the start was answered
		return r, raw, nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r, nil, ctx.Err()
		case <-t.C:
		}
		next, nextRaw, err := c.GetReplay(ctx, r.ID)
		if err != nil {
			return r, nil, err
		}
		r, raw = next, nextRaw
		pr.update(r)
		if r.Finished() {
			return r, raw, nil
		}
	}
}

type nopProgress struct{}

func (nopProgress) update(apiclient.Replay) {}
func (nopProgress) finish()                 {}

// lineProgress writes a line whenever the counts or the state change (for
// logs and pipes).
type lineProgress struct {
	w    io.Writer
	last string
}

func (p *lineProgress) update(r apiclient.Replay) {
	s := fmt.Sprintf("replay %s: %s, matched %d, requeued %d, skipped %d", r.ID, r.State, r.Matched, r.Requeued, r.Skipped)
	if s != p.last {
		fmt.Fprintln(p.w, s)
		p.last = s
	}
}

func (p *lineProgress) finish() {}

// barProgress is a progress bar of the matched deliveries handled
// (requeued or skipped); a spinner while none is matched yet.
type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
	max int64
}

func newBarProgress(w io.Writer) *barProgress { return &barProgress{w: w} }

func (p *barProgress) update(r apiclient.Replay) {
	max := r.Matched
	if max <= 0 {
		max = -1
	}
	if p.bar == nil || max != p.max {
		if p.bar == nil {
			p.bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription("replay"),
				progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		} else {
			p.bar.ChangeMax64(max)
		}
		p.max = max
	}
	p.bar.Describe(fmt.Sprintf("replay %s (requeued %d, skipped %d)", r.State, r.Requeued, r.Skipped))
	_ = p.bar.Set64(r.Requeued + r.Skipped)
}

func (p *barProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

func (a *app) replaysGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get REPLAY_ID",
		Short:   "Show a replay",
		Example: "  hermodctl replays get 5c2a...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, raw, err := c.GetReplay(cmd.Context(), args[0])
			if err != nil {
				return replayAPIErr(err)
			}
			return a.replay(r, raw)
		}),
	}
}

func (a *app) replaysList() *cobra.Command {
	var pf pageFlags
	var webhookID string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List replays",
		Example: "  hermodctl replays list --webhook 0b6f...",
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			items, raw, next, err := collect(cmd.Context(), pf,
				func(ctx context.Context, o apiclient.PageOptions) (apiclient.Page[apiclient.Replay], apiclient.Raw, error) {
					return c.ListReplays(ctx, webhookID, o)
				})
			if err != nil {
				return replayAPIErr(err)
			}
			rows := make([][]string, 0, len(items))
			for _, r := range items {
				rows = append(rows, replayRow(r))
			}
			return a.listed(raw, next, replayHeader, rows)
		}),
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&webhookID, "webhook", "", "only the replays of this webhook")
	return cmd
}

func (a *app) replaysCancel() *cobra.Command {
	return &cobra.Command{
		Use:     "cancel REPLAY_ID",
		Short:   "Stop a running replay",
		Example: "  hermodctl replays cancel 5c2a...",
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			c, err := a.api()
			if err != nil {
				return err
			}
			r, raw, err := c.CancelReplay(cmd.Context(), args[0])
			if err != nil {
				return replayAPIErr(err)
			}
			return a.replay(r, raw)
		}),
	}
}
