package lifecycle

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/logging"
	"github.com/hermodhq/hermod/shared/version"
)

// Program is one binary: what it is, how it is configured and run, and
// where it answers /readyz.
type Program[C any] struct {
	Name    string
	Summary string // one line: what it does
	Load    func(*envconfig.Reader) (C, error)
	Level   func(C) string // the log level
	// Addr is the address it serves /readyz on (its API or ops address):
	// the healthcheck command asks it.
	Addr func(C) string
	Run  func(ctx context.Context, cfg C, log zerolog.Logger, out io.Writer) error
	// Commands are its other commands, by name.
	Commands map[string]Command
}

// Command is a command of a program besides running it.
type Command struct {
	Summary string
	Run     func(out io.Writer) error
}

// healthcheckTimeout bounds the healthcheck command's request.
const healthcheckTimeout = 3 * time.Second

// Main is the whole of a binary's main. Without arguments: read and check
// the configuration (exit 2 naming every bad variable), build the logger,
// print the effective configuration with secrets masked, and run until
// SIGINT or SIGTERM (exit 1 on an error). With one: --version, --help,
// healthcheck (exit 0 when the running program's /readyz answers 200: for
// images without a shell or HTTP client) or one of p.Commands; anything
// else is a usage error (exit 2), never a start.
func Main[C any](p Program[C]) {
	if code, done := p.command(os.Args[1:], os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	r := envconfig.New()
	cfg, err := p.Load(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n%v\n", p.Name, err)
		os.Exit(2)
	}
	log, err := logging.New(p.Name, p.Level(cfg), os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		os.Exit(2)
	}
	logging.Config(log, r.Effective())
	if unknown := r.Unknown(os.Environ()); len(unknown) > 0 {
		log.Warn().Strs("variables", unknown).Msg("these HERMOD_* variables are not read by " + p.Name +
			" (a typo, or meant for another Hermod program?); see docs/configuration.md")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = p.Run(ctx, cfg, log, os.Stdout)
	stop()
	if err != nil {
		log.Error().Err(err).Msg(p.Name + " stopped with an error")
		os.Exit(1)
	}
}

// command carries out the command args name, if any: done is false when
// there is none (the program runs).
func (p Program[C]) command(args []string, out, errOut io.Writer) (code int, done bool) {
	if len(args) == 0 {
		return 0, false
	}
	if len(args) > 1 {
		fmt.Fprintf(errOut, "%s: one command at most, got %q\n\n", p.Name, args)
		p.usage(errOut)
		return 2, true
	}
	switch arg := args[0]; arg {
	case "--version", "-version", "version":
		fmt.Fprintf(out, "%s %s\n", p.Name, version.Version)
		return 0, true
	case "--help", "-help", "-h", "help":
		p.usage(out)
		return 0, true
	case "healthcheck":
		if err := p.healthcheck(); err != nil {
			fmt.Fprintf(errOut, "%s healthcheck: %v\n", p.Name, err)
			return 1, true
		}
		return 0, true
	default:
		c, ok := p.Commands[arg]
		if !ok {
			fmt.Fprintf(errOut, "%s: unknown command %q\n\n", p.Name, arg)
			p.usage(errOut)
			return 2, true
		}
		if err := c.Run(out); err != nil {
			fmt.Fprintf(errOut, "%s %s: %v\n", p.Name, arg, err)
			return 1, true
		}
		return 0, true
	}
}

func (p Program[C]) usage(w io.Writer) {
	fmt.Fprintf(w, "%s %s: %s\n\n", p.Name, version.Version, p.Summary)
	fmt.Fprintf(w, "Usage:\n  %s              run it, configured by HERMOD_* environment variables\n", p.Name)
	lines := [][2]string{
		{"healthcheck", "exit 0 if the running " + p.Name + " is ready (asks its /readyz)"},
		{"--version", "print the version"},
		{"--help", "print this help"},
	}
	names := make([]string, 0, len(p.Commands))
	for n := range p.Commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		lines = append(lines, [2]string{n, p.Commands[n].Summary})
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %s %-12s %s\n", p.Name, l[0], l[1])
	}
	fmt.Fprintf(w, "\nEvery variable, its default and which binary reads it: docs/configuration.md.\n")
}

// healthcheck asks the running program's /readyz, on the address its
// configuration (the same environment) gives.
func (p Program[C]) healthcheck() error {
	cfg, err := p.Load(envconfig.New())
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	url := "http://" + localAddr(p.Addr(cfg)) + "/readyz"
	c := &http.Client{Timeout: healthcheckTimeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return nil
}

// localAddr is a listen address as this host dials it: a missing or
// unspecified host is the loopback address.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
