package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// maxInput bounds JSON read from a file or stdin (the API's largest event
// is 8 MiB).
const maxInput = 8 << 20

// readJSONArg reads a JSON value given as text, @FILE or - (stdin) and
// checks that it is JSON. what names it in errors.
func (a *app) readJSONArg(v, what string) (json.RawMessage, error) {
	var b []byte
	switch {
	case v == "-":
		var err error
		if b, err = readAtMost(a.env.Stdin, "stdin"); err != nil {
			return nil, err
		}
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return nil, usagef("%s: %w", what, err)
		}
		defer f.Close()
		if b, err = readAtMost(f, v[1:]); err != nil {
			return nil, err
		}
	default:
		b = []byte(v)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if !json.Valid(b) {
		return nil, usagef("%s is not valid JSON", what)
	}
	return b, nil
}

func readAtMost(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxInput {
		return nil, usagef("%s is larger than %d bytes", name, maxInput)
	}
	return b, nil
}

// keyValues parses k=v pairs (labels, headers).
func keyValues(pairs []string, what string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: want KEY=VALUE", what, p)
		}
		m[k] = v
	}
	return m, nil
}

// timeArg reads a time as RFC 3339, or as a Go duration meaning that long
// before now ("24h"); the result is RFC 3339 UTC.
func timeArg(v, what string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	return "", usagef("%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration before now (24h)", what, v)
}
