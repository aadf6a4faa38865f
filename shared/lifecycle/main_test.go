package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/version"
)

type testConfig struct{ addr string }

func testProgram() Program[testConfig] {
	return Program[testConfig]{
		Name: "hermod-test", Summary: "tests",
		Load:  func(*envconfig.Reader) (testConfig, error) { return testConfig{addr: ":1"}, nil },
		Level: func(testConfig) string { return "info" },
		Addr:  func(c testConfig) string { return c.addr },
		Run:   func(context.Context, testConfig, zerolog.Logger, io.Writer) error { return nil },
		Commands: map[string]Command{
			"key":  {Summary: "print a key", Run: func(w io.Writer) error { _, err := io.WriteString(w, "K\n"); return err }},
			"fail": {Summary: "fails", Run: func(io.Writer) error { return errors.New("no entropy") }},
		},
	}
}

// Arguments select a command, never a start; only no arguments runs the
// program.
func TestCommands(t *testing.T) {
	for _, c := range []struct {
		args      []string
		code      int
		done      bool
		out, errs string
	}{
		{args: nil, done: false},
		{args: []string{"--version"}, done: true, out: "hermod-test " + version.Version + "\n"},
		{args: []string{"version"}, done: true, out: "hermod-test " + version.Version + "\n"},
		{args: []string{"--help"}, done: true, out: "hermod-test key"},
		{args: []string{"-h"}, done: true, out: "hermod-test healthcheck"},
		{args: []string{"key"}, done: true, out: "K\n"},
		{args: []string{"fail"}, code: 1, done: true, errs: "hermod-test fail: no entropy"},
		{args: []string{"serve"}, code: 2, done: true, errs: `unknown command "serve"`},
		{args: []string{"--version", "key"}, code: 2, done: true, errs: "one command at most"},
	} {
		var out, errs bytes.Buffer
		code, done := testProgram().command(c.args, &out, &errs)
		if code != c.code || done != c.done || !strings.Contains(out.String(), c.out) || !strings.Contains(errs.String(), c.errs) {
			t.Errorf("%q: %d %v out %q err %q, want %d %v out ~%q err ~%q", c.args, code, done, out.String(), errs.String(), c.code, c.done, c.out, c.errs)
		}
	}
}

// The healthcheck dials a listen address as this host reaches it.
func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:8081": "127.0.0.1:8081", "[::]:8082": "[::1]:8082",
		"127.0.0.2:8083": "127.0.0.2:8083", "localhost:8084": "localhost:8084", "nonsense": "nonsense",
	} {
		if got := localAddr(in); got != want {
			t.Errorf("localAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
