package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/receiver"
)

// listenFlags configure `hermodctl listen`.
type listenFlags struct {
	addr         string
	secret       string
	webhookID    string
	create       bool
	events       []string
	name         string
	url          string
	deleteOnExit bool
	status       int
	maxBody      int64
	tolerance    time.Duration
	quiet        bool
	jsonLines    bool
}

func (a *app) listenCommand() *cobra.Command {
	var f listenFlags
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Receive deliveries locally, verify their signatures and print them",
		Long: `listen runs a webhook receiver on --addr. Every POST is answered --status
(200) and printed: time, event type, delivery id, whether its Standard
Webhooks signature verified (and why not), and the body.

The secret checked against: --secret; or the secret of the webhook --webhook
names, fetched from the API; or, with --create, the secret of a webhook
created now pointing at this receiver (for --events).`,
		Example: `  hermodctl listen --create --events 'deployment.*'
  hermodctl listen --webhook 0b6f... --addr 127.0.0.1:9001
  hermodctl listen --secret whsec_... --status 503   # see the retries`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return a.listen(cmd.Context(), cmd, &f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:9000", "the address to listen on")
	fl.StringVar(&f.secret, "secret", "", "the webhook's signing secret, whsec_...")
	fl.StringVar(&f.webhookID, "webhook", "", "verify with this webhook's secret (fetched from the API)")
	fl.BoolVar(&f.create, "create", false, "create a webhook pointing at this receiver and verify with its secret")
	fl.StringSliceVar(&f.events, "events", []string{"*"}, "with --create: the event types it subscribes to")
	fl.StringVar(&f.name, "name", "", "with --create: its name (default: hermodctl listen ADDR)")
	fl.StringVar(&f.url, "url", "", "with --create: the URL Hermod posts to (default: http://ADDR/)")
	fl.BoolVar(&f.deleteOnExit, "delete-on-exit", false, "with --create: delete the webhook when listen stops")
	fl.IntVar(&f.status, "status", http.StatusOK, "the HTTP status to answer (e.g. 500 to watch retries)")
	fl.Int64Var(&f.maxBody, "max-body", receiver.DefaultMaxBody, "the largest body accepted, in bytes (larger: 413)")
	fl.DurationVar(&f.tolerance, "tolerance", receiver.DefaultTolerance, "how far webhook-timestamp may be from now")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print one line per delivery, no body")
	fl.BoolVar(&f.jsonLines, "json", false, "print each delivery as one JSON object per line")
	return cmd
}

func (a *app) listen(ctx context.Context, cmd *cobra.Command, f *listenFlags) error {
	given := 0
	for _, b := range []bool{f.secret != "", f.webhookID != "", f.create} {
		if b {
			given++
		}
	}
	if given > 1 {
		return usagef("give one of --secret, --webhook and --create")
	}
	if f.status < 200 || f.status > 599 {
		return usagef("--status %d: want 200 to 599", f.status)
	}
	if f.maxBody <= 0 {
		return usagef("--max-body must be positive")
	}
	if f.tolerance <= 0 {
		return usagef("--tolerance must be positive")
	}
	for _, n := range []string{"events", "name", "url", "delete-on-exit"} {
		if cmd.Flags().Changed(n) && !f.create {
			return usagef("--%s needs --create", n)
		}
	}
	mode := receiver.Full
	switch {
	case f.jsonLines && f.quiet:
		return usagef("give --quiet or --json, not both")
	case f.jsonLines:
		mode = receiver.JSON
	case f.quiet:
		mode = receiver.Quiet
	}
	// The secret is fetched before anything listens, so a wrong key or id
	// fails at once.
	secret, webhookID := f.secret, f.webhookID
	if webhookID != "" {
		c, err := a.api()
		if err != nil {
			return err
		}
		s, _, err := c.GetSecret(ctx, webhookID)
		if err != nil {
			return fmt.Errorf("the secret of webhook %s: %w", webhookID, err)
		}
		secret = s.Secret
	}
	if secret != "" {
		if _, err := receiver.New(receiver.Options{Secrets: []string{secret}}, func(receiver.Delivery) {}); err != nil {
			return usageError{err}
		}
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	base := "http://" + reachable(l.Addr().String())
	if f.create {
		c, err := a.api()
		if err != nil {
			return err
		}
		u, name := f.url, f.name
		if u == "" {
			u = base + "/"
		}
		if name == "" {
			name = "hermodctl listen " + reachable(l.Addr().String())
		}
		w, _, err := c.CreateWebhook(ctx, map[string]any{"name": name, "url": u, "event_types": f.events})
		if err != nil {
			return fmt.Errorf("creating the webhook: %w", err)
		}
		webhookID = w.ID
		s, _, err := c.GetSecret(ctx, w.ID)
		if err != nil {
			return fmt.Errorf("the secret of the new webhook %s: %w", w.ID, err)
		}
		secret = s.Secret
		fmt.Fprintf(a.env.Stderr, "Created webhook %s (%s) for %s -> %s\n", w.ID, name, join(f.events), u)
		if f.deleteOnExit {
			defer func() {
				dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := c.DeleteWebhook(dctx, w.ID); err != nil {
					fmt.Fprintf(a.env.Stderr, "could not delete webhook %s: %s\n", w.ID, message(err))
					return
				}
				fmt.Fprintf(a.env.Stderr, "Deleted webhook %s\n", w.ID)
			}()
		} else {
			fmt.Fprintf(a.env.Stderr, "It stays after listen stops: hermodctl webhooks delete %s\n", w.ID)
		}
	}
	opts := receiver.Options{Tolerance: f.tolerance, MaxBody: f.maxBody, Status: f.status, WebhookID: webhookID}
	if secret != "" {
		opts.Secrets = []string{secret}
	}
	pr := receiver.Printer{W: a.env.Stdout, Mode: mode}
	h, err := receiver.New(opts, pr.Print)
	if err != nil {
		return usageError{err}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	how := "signatures checked with the webhook's secret"
	if secret == "" {
		how = "no secret: deliveries show NOT verified (use --secret, --webhook or --create)"
	} else if f.secret != "" {
		how = "signatures checked with --secret"
	}
	fmt.Fprintf(a.env.Stderr, "Ready: listening on %s, answering %d (%s). Ctrl-C stops.\n", base, f.status, how)
	select {
	case err := <-done:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	fmt.Fprintln(a.env.Stderr, "Stopped.")
	return nil
}

// reachable is a listening address as a client dials it: a wildcard host
// becomes 127.0.0.1.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
