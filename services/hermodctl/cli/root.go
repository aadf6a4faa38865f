// Package cli holds hermodctl's commands: the operator's command line for
// Hermod's REST API, and `listen`, a local receiver that verifies
// signatures.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
	"github.com/hermodhq/hermod/shared/version"
)

// Env is what a run of hermodctl works with: its arguments, streams and
// environment (the process's in main, fakes in tests).
type Env struct {
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// StderrTerminal says stderr is a terminal (progress bars go there).
	StderrTerminal bool
	// HTTPClient calls the API (nil: a client with a 60 s timeout).
	HTTPClient *http.Client
}

// app is one run's state: the global flags and the streams.
type app struct {
	env    Env
	server string
	apiKey string
	config string
	output string
	client *apiclient.Client
}

// Execute runs hermodctl with env until ctx ends and returns the exit code;
// errors are printed to env.Stderr.
func Execute(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(env.Args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	if code == ExitInterrupted {
		fmt.Fprintln(env.Stderr, "interrupted")
		return code
	}
	fmt.Fprintf(env.Stderr, "Error: %s\n", message(err))
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "hermodctl",
		Short: "The operator's command line for Hermod",
		Long: `hermodctl drives a Hermod API: webhooks, deliveries, events, agents and
replays, and runs a local receiver that verifies signatures (listen).

The server and the admin key come from --server and --api-key, else
HERMODCTL_SERVER and HERMODCTL_API_KEY, else the configuration file
($XDG_CONFIG_HOME/hermod/hermodctl.json, {"server": "...", "api_key": "..."}),
else the server is ` + DefaultServer + `.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != formatTable && a.output != formatJSON {
				return usagef("-o %q: want table or json", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "the API's base URL (env "+EnvServer+"; default "+DefaultServer+")")
	pf.StringVar(&a.apiKey, "api-key", "", "an admin key (env "+EnvAPIKey+")")
	pf.StringVar(&a.config, "config", "", "the configuration file (env "+EnvConfig+"; default $XDG_CONFIG_HOME/hermod/hermodctl.json)")
	pf.StringVarP(&a.output, "output", "o", formatTable, "output format: table or json (the API's JSON as it came)")
	root.AddCommand(a.webhooksCommand(), a.deliveriesCommand(), a.eventsCommand(), a.eventTypesCommand(),
		a.agentsCommand(), a.replaysCommand(), a.listenCommand())
	return root
}

// run wraps a command's work so its errors are told apart from cobra's
// (usage) errors.
func run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return runError{err}
	}
}

// api returns the API client, resolving the settings on first use.
func (a *app) api() (*apiclient.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	s, err := resolve(a.server, a.apiKey, a.config, a.env.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(a.env.Stderr, "warning: %s\n", w)
	}
	if s.APIKey == "" {
		return nil, usagef("no API key: give --api-key, set %s, or put \"api_key\" in the configuration file", EnvAPIKey)
	}
	c, err := apiclient.New(s.Server, s.APIKey, "hermodctl/"+version.Version, a.env.HTTPClient)
	if err != nil {
		return nil, usageError{fmt.Errorf("%w (from %s)", err, s.ServerFrom)}
	}
	a.client = c
	return c, nil
}

func (a *app) out() printer { return printer{out: a.env.Stdout, format: a.output} }

// group is a command that only holds others.
func group(use, short string, aliases []string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Aliases: aliases, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	c.AddCommand(subs...)
	return c
}
