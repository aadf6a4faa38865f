// Command hermodctl is the operator's command line for Hermod (see
// docs/cli.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/hermodhq/hermod/services/hermodctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, cli.Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, StderrTerminal: term.IsTerminal(int(os.Stderr.Fd()))})
	stop()
	os.Exit(code)
}
