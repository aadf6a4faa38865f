package formats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/itchyny/gojq"
)

// Budgets of a template: one render may use at most templateCPU of CPU
// time (the runner's watchdog enforces it: runner_child.go) and produce at
// most templateMaxBytes of body; the program is at most templateMaxSource
// bytes.
const (
	templateCPU       = 100 * time.Millisecond
	templateMaxBytes  = 256 << 10
	templateMaxSource = 16 << 10
)

// program is a compiled jq template. jq through gojq has no I/O: no
// input, env, or module loading is compiled in.
type program struct{ code *gojq.Code }

// compileTemplate parses and compiles src once (per webhook change). A
// syntax error names its byte offset.
func compileTemplate(src string) (*program, error) {
	if len(src) > templateMaxSource {
		return nil, optErr("format_options.template", "must be at most %d bytes", templateMaxSource)
	}
	q, err := gojq.Parse(src)
	if err != nil {
		var pe *gojq.ParseError
		if errors.As(err, &pe) {
			return nil, optErr("format_options.template", "does not compile at offset %d: %v", pe.Offset, err)
		}
		return nil, optErr("format_options.template", "does not compile: %v", err)
	}
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
	if err != nil {
		return nil, optErr("format_options.template", "does not compile: %v", err)
	}
	return &program{code: code}, nil
}

// templateKey identifies a template in the runners, which are sent its
// source once and then only this.
func templateKey(src string) string {
	sum := sha256.Sum256([]byte(src))
	return hex.EncodeToString(sum[:16])
}

// ErrTemplate wraps every render-time failure of a template: the delivery
// is dead (its template will fail again), never retried.
var ErrTemplate = errors.New("template")

// run renders body (the envelope) through the template: exactly one JSON
// value within the output budget; it stops when ctx ends (the watchdog).
func (p *program) run(ctx context.Context, body []byte) ([]byte, error) {
	var in any
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("%w: event envelope: %v", ErrTemplate, err)
	}
	iter := p.code.RunWithContext(ctx, in)
	v, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("%w: produced no output", ErrTemplate)
	}
	if err, isErr := v.(error); isErr {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	if extra, more := iter.Next(); more {
		if _, isErr := extra.(error); !isErr {
			return nil, fmt.Errorf("%w: produced more than one value (wrap them in [...])", ErrTemplate)
		}
	}
	out, err := gojq.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: output is not JSON: %v", ErrTemplate, err)
	}
	if len(out) > templateMaxBytes {
		return nil, fmt.Errorf("%w: output of %d bytes exceeds %d", ErrTemplate, len(out), templateMaxBytes)
	}
	return out, nil
}
