package filterexpr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/filterexpr"
)

const event = `{"severity":"critical","count":3,"ratio":0.5,"ok":true,"tags":["a","b"],"nested":{"team":"infra"},"nothing":null}`

func vars() *filterexpr.Vars {
	return filterexpr.NewVars("ev-1", "alert.fired", "2026-01-02T03:04:05Z", []byte(event), map[string]string{"env": "prod"})
}

func TestEvalTable(t *testing.T) {
	cases := []struct {
		expr   string
		want   bool
		reason string // an evaluation error of this reason, want false
	}{
		{`data.severity in ["critical","high"] && labels.env == "prod"`, true, ""},
		{`data.severity == "low"`, false, ""},
		{`event_type.startsWith("alert.")`, true, ""},
		{`id == "ev-1" && timestamp.startsWith("2026-")`, true, ""},
		{`data.count == 3`, true, ""}, // JSON numbers are doubles; equality crosses numeric types
		{`data.count > 2 && data.count < 4u`, true, ""},
		{`data.ratio == 0.5`, true, ""},
		{`data.ok`, true, ""},
		{`"b" in data.tags && size(data.tags) == 2`, true, ""},
		{`data.tags.exists(t, t == "a")`, true, ""},
		{`data.nested.team == "infra"`, true, ""},
		{`data.nothing == null`, true, ""},
		{`has(data.severity) && !has(data.missing)`, true, ""},
		{`"missing" in data`, false, ""},
		{`data.?missing.orValue("none") == "none"`, true, ""},
		{`labels.?team.orValue("") == ""`, true, ""},
		{`"team" in labels`, false, ""},
		{`data.missing == "x"`, false, filterexpr.ReasonMissingField},
		{`labels.team == "x"`, false, filterexpr.ReasonMissingField},
		{`data.nested.missing == 1`, false, filterexpr.ReasonMissingField},
		{`data.severity`, false, filterexpr.ReasonNotBool},
		{`data.count`, false, filterexpr.ReasonNotBool},
		{`data.severity > 2`, false, filterexpr.ReasonEval},
		{`1 / int(data.count - 3.0) > 0`, false, filterexpr.ReasonEval},
		// An error on one side of || is forgiven when the other side is true.
		{`data.missing == "x" || data.severity == "critical"`, true, ""},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			p, err := filterexpr.Compile(c.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := p.Eval(vars())
			if c.reason != "" {
				var ee *filterexpr.EvalError
				if !errors.As(err, &ee) || ee.Reason != c.reason {
					t.Fatalf("Eval = %v, %v; want an evaluation error of reason %s", got, err, c.reason)
				}
			} else if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got != c.want {
				t.Errorf("Eval = %v, want %v", got, c.want)
			}
		})
	}
}

// Events without labels or data: labels is an empty map, data an empty object.
func TestEvalAbsentLabelsAndData(t *testing.T) {
	for _, raw := range []string{"", "null"} {
		v := filterexpr.NewVars("", "deployment.applied", "", []byte(raw), nil)
		for expr, want := range map[string]bool{
			`size(labels) == 0`:                  true,
			`!("env" in labels)`:                 true,
			`size(data) == 0`:                    true,
			`!has(data.agent_id)`:                true,
			`labels.?env.orValue("x") == "x"`:    true,
			`event_type == "deployment.applied"`: true,
		} {
			p, err := filterexpr.Compile(expr)
			if err != nil {
				t.Fatalf("Compile(%q): %v", expr, err)
			}
			if got, err := p.Eval(v); err != nil || got != want {
				t.Errorf("data %q: Eval(%q) = %v, %v; want %v", raw, expr, got, err, want)
			}
		}
	}
}

// A data that is not an object is the JSON value it is.
func TestEvalDataNotAnObject(t *testing.T) {
	p, err := filterexpr.Compile(`data == "text"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.Eval(filterexpr.NewVars("", "t.x", "", []byte(`"text"`), nil)); err != nil || !got {
		t.Errorf("Eval = %v, %v; want true", got, err)
	}
}

func TestCompileRefusals(t *testing.T) {
	cases := []struct {
		expr     string
		position string // prefix of the error: line:column, or "" for the whole expression
		contains string
	}{
		{``, "", "must not be empty"},
		{`   `, "", "must not be empty"},
		{`data.severity ==`, "1:17: ", "Syntax error"},
		{"event_type == \"a\" &&\n  nosuch == 1", "2:3: ", "undeclared reference to 'nosuch'"},
		{`event_type == 1`, "1:12: ", "no matching overload"},
		{`labels.env + 1 == 2`, "1:12: ", "no matching overload"},
		{`event_type`, "", "must evaluate to a bool, not string"},
		{`1 + 2`, "", "must evaluate to a bool, not int"},
		{strings.Repeat("x", filterexpr.MaxLength+1), "", "at most 4096 bytes"},
		{"data.a == \"\xff\"", "", "valid UTF-8"},
		{strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200), "", ""},
		{`data.a.all(x, data.b.all(y, data.c.all(z, x == y && y == z)))`, "", "too costly"},
	}
	for _, c := range cases {
		name := c.expr
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			p, err := filterexpr.Compile(c.expr)
			var fe *filterexpr.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Compile = %v, %v; want an *Error", p, err)
			}
			msg := err.Error()
			if c.position != "" && !strings.HasPrefix(msg, c.position) {
				t.Errorf("error %q does not start with position %q", msg, c.position)
			}
			if c.position != "" {
				first := fe.First()
				if first.Line == 0 || first.Column == 0 {
					t.Errorf("first problem %+v has no position", first)
				}
			}
			if !strings.Contains(msg, c.contains) {
				t.Errorf("error %q does not contain %q", msg, c.contains)
			}
		})
	}
}

// An expression within the estimate can still hit the evaluation's cost
// limit on a large event: it stops, and the event does not match.
func TestEvalCostLimitExceeded(t *testing.T) {
	p, err := filterexpr.Compile(`data.xs.all(x, data.xs.all(y, x == y || x != y))`)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	var b strings.Builder
	b.WriteString(`{"xs":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("1")
	}
	b.WriteString(`]}`)
	got, err := p.Eval(filterexpr.NewVars("", "t.x", "", []byte(b.String()), nil))
	var ee *filterexpr.EvalError
	if got || !errors.As(err, &ee) || ee.Reason != filterexpr.ReasonCostLimit {
		t.Fatalf("Eval = %v, %v; want the cost limit", got, err)
	}
	// The same expression on a small event answers.
	if got, err := p.Eval(filterexpr.NewVars("", "t.x", "", []byte(`{"xs":[1,2]}`), nil)); err != nil || !got {
		t.Errorf("small event: Eval = %v, %v; want true", got, err)
	}
}

// One compiled program evaluates concurrently (the router's workers share it).
func TestProgramConcurrent(t *testing.T) {
	p, err := filterexpr.Compile(`data.severity == "critical" && labels.env == "prod"`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for range 8 {
		go func() {
			for range 200 {
				if ok, err := p.Eval(vars()); err != nil || !ok {
					done <- errors.Join(err, errors.New("no match"))
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// FuzzCompile: no input panics or stalls the compiler; an accepted
// expression evaluates without panicking to a bool or an *EvalError.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`data.severity in ["critical","high"] && labels.env == "prod"`,
		`has(data.x) && data.x.y.exists(z, z > 1)`,
		`data.?a.orValue(1) == 1`,
		`event_type.matches("^deploy")`,
		`((((true))))`,
		`data.a.all(x, data.b.all(y, data.c.all(z, x == y)))`,
		`"\u00ff" + 'x' == b"x"`,
		`[1,2,3].map(x, x * 2).filter(y, y > 2).size() > 0`,
		`{"a": 1}.a == 1 ? true : false`,
		`data.`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := filterexpr.Compile(src)
		if err != nil {
			var fe *filterexpr.Error
			if !errors.As(err, &fe) || len(fe.Problems) == 0 || fe.Error() == "" {
				t.Fatalf("Compile(%q) = %v: not an *Error with problems", src, err)
			}
			return
		}
		if p.Source() != src {
			t.Fatalf("Source() = %q, want %q", p.Source(), src)
		}
		_, err = p.Eval(vars())
		var ee *filterexpr.EvalError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("Eval(%q): %v is not an *EvalError", src, err)
		}
	})
}

// An expression whose worst case does not depend on the event's sizes is
// bounded when compiled; one that loops over the event's lists or scans
// its strings is tracked at evaluation.
func TestBounded(t *testing.T) {
	for expr, want := range map[string]bool{
		`data.severity in ["critical","high"] && labels.env == "prod"`: true,
		`has(data.count) && data.count > 5`:                            true,
		`data.?service.orValue("") == "svc-1"`:                         true,
		`size(data.tags) > 2`:                                          true,
		`data.tags.exists(t, t == "a")`:                                false,
		`"x" in data.tags`:                                             false,
		`data.message.contains("disk")`:                                false,
		`labels.env == labels.team`:                                    false,
	} {
		p, err := filterexpr.Compile(expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		if p.Bounded() != want {
			t.Errorf("Bounded(%q) = %v, want %v", expr, p.Bounded(), want)
		}
	}
}
