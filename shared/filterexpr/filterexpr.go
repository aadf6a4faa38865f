// Package filterexpr compiles and evaluates a webhook's filter expression:
// a CEL expression over the event envelope (event_type, id, timestamp, data,
// labels) that decides whether the event reaches the webhook. Compiling is
// bounded (length, parse depth, estimated cost) and so is evaluating (a
// cost limit), so no expression can stall routing. A compiled Program is
// safe for concurrent use.
package filterexpr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Limits of an expression (docs/api.md).
const (
	// MaxLength is the longest expression accepted, in bytes.
	MaxLength = 4096
	// MaxDepth is how deeply the parser lets expressions nest.
	MaxDepth = 32
	// CostLimit bounds one evaluation: past it the evaluation stops and
	// the event does not match. One unit is roughly one operation (a
	// comparison, a field access, one element of a list macro).
	CostLimit = 100_000
	// MaxEstimatedCost is the largest worst-case cost the checker may
	// estimate for an expression, every list, map and string of the event
	// taken as AssumedSize elements long; a costlier expression (nested
	// macros over the event's lists, typically) is refused when saved.
	MaxEstimatedCost = 100_000
	// AssumedSize is the size the cost estimate gives every list, map
	// and string of the event, whose sizes it cannot know.
	AssumedSize = 32
)

// Evaluation failures, the reason label of hermod_filter_errors_total.
const (
	ReasonMissingField = "missing_field" // a field or label the event lacks
	ReasonCostLimit    = "cost_limit"    // CostLimit reached
	ReasonNotBool      = "not_bool"      // the result is not a bool
	ReasonEval         = "eval"          // any other evaluation error (a type mismatch, a division by zero)
	ReasonCompile      = "compile"       // a stored expression that no longer compiles
)

// Error is an expression that does not compile: the first problems found,
// each with its line and column (both 1-based).
type Error struct {
	Problems []Problem
}

// Problem is one compile error at a position of the expression (Line and
// Column 1-based; 0 when the problem is the whole expression).
type Problem struct {
	Line, Column int
	Message      string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.Message
	}
	return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message)
}

// maxProblems is how many problems an Error names at most.
const maxProblems = 3

func (e *Error) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, "; ")
}

// First is the first problem (the one an editor points at).
func (e *Error) First() Problem {
	if len(e.Problems) == 0 {
		return Problem{Message: "does not compile"}
	}
	return e.Problems[0]
}

func whole(format string, a ...any) *Error {
	return &Error{Problems: []Problem{{Message: fmt.Sprintf(format, a...)}}}
}

// EvalError is an evaluation that gave no answer; Reason is one of the
// Reason constants.
type EvalError struct {
	Reason string
	Err    error
}

func (e *EvalError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *EvalError) Unwrap() error { return e.Err }

// Program is a compiled expression.
type Program struct {
	src     string
	prg     cel.Program
	bounded bool
}

// Bounded reports whether the program's cost is bounded whatever the
// event (so not tracked while it runs): its worst case, at most
// MaxEstimatedCost, does not grow with the sizes of the event's lists,
// maps and strings. Any other program stops at CostLimit.
func (p *Program) Bounded() bool { return p.bounded }

// Source is the expression the program was compiled from.
func (p *Program) Source() string { return p.src }

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

// environment is the one CEL environment every expression compiles in:
// the standard definitions, optional values (data.?field.orValue(x)) and
// the envelope's variables.
func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Variable("event_type", cel.StringType),
			cel.Variable("id", cel.StringType),
			cel.Variable("timestamp", cel.StringType),
			cel.Variable("data", cel.DynType),
			cel.Variable("labels", cel.MapType(cel.StringType, cel.StringType)),
			cel.OptionalTypes(),
			cel.CrossTypeNumericComparisons(true),
			cel.ParserRecursionLimit(MaxDepth),
			cel.ParserExpressionSizeLimit(MaxLength),
		)
	})
	return env, envErr
}

// Compile checks src and prepares it for evaluation. A refusal is an
// *Error naming the position of each problem.
func Compile(src string) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, whole("must not be empty")
	}
	if len(src) > MaxLength {
		return nil, whole("must be at most %d bytes", MaxLength)
	}
	if !utf8.ValidString(src) {
		return nil, whole("must be valid UTF-8")
	}
	e, err := environment()
	if err != nil {
		return nil, fmt.Errorf("filter expression environment: %w", err)
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fromIssues(iss)
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, whole("must evaluate to a bool, not %s", t)
	}
	est, err := e.EstimateCost(ast, sizes(AssumedSize))
	if err != nil {
		return nil, whole("cost cannot be estimated: %v", err)
	}
	if est.Max > MaxEstimatedCost {
		return nil, whole("is too costly: its worst case is estimated at %d (at most %d, lists, maps and strings of the event taken as %d long); avoid nested macros over the event's lists",
			est.Max, MaxEstimatedCost, AssumedSize)
	}
	// An expression whose worst case does not grow with the event's sizes
	// (no macro over the event's lists, no scan of its strings) is bounded
	// by the estimate just checked; tracking its cost at every evaluation
	// would more than double the time it takes. Any other is stopped at
	// CostLimit.
	huge, err := e.EstimateCost(ast, sizes(1<<40))
	if err != nil {
		return nil, whole("cost cannot be estimated: %v", err)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	bounded := huge.Max == est.Max
	if !bounded {
		opts = append(opts, cel.CostLimit(CostLimit))
	}
	prg, err := e.Program(ast, opts...)
	if err != nil {
		return nil, whole("%v", err)
	}
	return &Program{src: src, prg: prg, bounded: bounded}, nil
}

// fromIssues turns CEL's issues into an *Error with positions.
func fromIssues(iss *cel.Issues) *Error {
	out := &Error{}
	for _, ce := range iss.Errors() {
		if len(out.Problems) == maxProblems {
			break
		}
		p := Problem{Message: ce.Message}
		if ce.Location != nil && ce.Location.Line() > 0 {
			p.Line, p.Column = ce.Location.Line(), ce.Location.Column()+1
		}
		out.Problems = append(out.Problems, p)
	}
	if len(out.Problems) == 0 {
		out.Problems = []Problem{{Message: iss.Err().Error()}}
	}
	return out
}

// sizes gives the cost estimator a size for what it cannot know: the
// event's lists, maps and strings.
type sizes uint64

func (s sizes) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: uint64(s)}
}

func (sizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Vars is one event as expressions see it. Build it with NewVars; the
// event's data is decoded on the first evaluation only, so an event no
// expression looks at costs nothing. One Vars serves any number of
// evaluations, but from one goroutine.
type Vars struct {
	id, eventType, timestamp string
	rawData                  json.RawMessage
	labels                   map[string]string

	decoded bool
	data    ref.Val
	labelsV ref.Val
}

// NewVars holds an event's fields for evaluation. rawData is the
// envelope's data (JSON; absent or null is an empty object); labels may be
// nil (no labels).
func NewVars(id, eventType, timestamp string, rawData json.RawMessage, labels map[string]string) *Vars {
	return &Vars{id: id, eventType: eventType, timestamp: timestamp, rawData: rawData, labels: labels}
}

func (v *Vars) decode() {
	if v.decoded {
		return
	}
	v.decoded = true
	var d any
	if len(v.rawData) > 0 {
		if err := json.Unmarshal(v.rawData, &d); err != nil {
			d = nil
		}
	}
	if d == nil {
		d = map[string]any{}
	}
	v.data = types.DefaultTypeAdapter.NativeToValue(d)
	l := v.labels
	if l == nil {
		l = map[string]string{}
	}
	v.labelsV = types.DefaultTypeAdapter.NativeToValue(l)
}

// ResolveName implements interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	switch name {
	case "event_type":
		return v.eventType, true
	case "id":
		return v.id, true
	case "timestamp":
		return v.timestamp, true
	case "data":
		v.decode()
		return v.data, true
	case "labels":
		v.decode()
		return v.labelsV, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (v *Vars) Parent() interpreter.Activation { return nil }

// Eval evaluates the program on vars: true or false, or an *EvalError
// (the event then does not match).
func (p *Program) Eval(vars *Vars) (bool, error) {
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return false, classify(err)
	}
	b, ok := out.Value().(bool)
	if !ok || out.Type() != types.BoolType {
		return false, &EvalError{Reason: ReasonNotBool, Err: fmt.Errorf("result is %s, not bool", out.Type().TypeName())}
	}
	return b, nil
}

func classify(err error) *EvalError {
	var cancelled interpreter.EvalCancelledError
	if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
		return &EvalError{Reason: ReasonCostLimit, Err: err}
	}
	if strings.HasPrefix(err.Error(), "no such key") || strings.HasPrefix(err.Error(), "no such attribute") {
		return &EvalError{Reason: ReasonMissingField, Err: err}
	}
	return &EvalError{Reason: ReasonEval, Err: err}
}
