package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/hermodhq/hermod/services/hermodctl/apiclient"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitError       = 1   // the API refused, or the work failed
	ExitUsage       = 2   // bad command line or local input
	ExitUnreachable = 3   // the server could not be reached
	ExitInterrupted = 130 // SIGINT or SIGTERM
)

// usageError is a mistake on the command line or in local input.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// runError is an error returned by a command's work (not by cobra's
// parsing of the command line).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// exitCode maps an error of Execute to the process's exit code. Errors
// that are not a command's own come from cobra's parsing: usage.
func exitCode(err error) int {
	var ue usageError
	var re runError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case !errors.As(err, &re):
		return ExitUsage
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ExitError
	}
	var ne net.Error
	var ue2 *url.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.As(err, &ue2) {
		return ExitUnreachable
	}
	return ExitError
}

// message is what hermodctl prints for an error; an API error's message
// is the envelope's, with its request id.
func message(err error) string {
	s := err.Error()
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.RequestID != "" {
		s += " [request " + ae.RequestID + "]"
	}
	return s
}
