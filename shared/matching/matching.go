// Package matching decides which webhooks an event goes to: event type
// patterns (exact, "family.*", "*"), the agent_id, stack_id and labels
// filters, and the filter expression. A Set answers without any I/O; it
// holds every filter expression compiled.
package matching

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/filterexpr"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Event is what matching needs to know about an event.
type Event struct {
	ID        string
	Type      string
	Timestamp string
	AgentID   *string
	StackID   *string
	Labels    map[string]string
	// Data is the envelope's data, decoded only when a filter expression
	// of a candidate webhook looks at it.
	Data json.RawMessage
	// OnFilterError, when set, hears of every filter expression that gave
	// no answer for this event (the webhook then does not match): reason
	// is one of filterexpr's Reason constants.
	OnFilterError func(w *webhooks.Webhook, reason string, err error)

	vars *filterexpr.Vars
}

// exprVars is the event as filter expressions see it, made once per event.
func (e *Event) exprVars() *filterexpr.Vars {
	if e.vars == nil {
		e.vars = filterexpr.NewVars(e.ID, e.Type, e.Timestamp, e.Data, e.Labels)
	}
	return e.vars
}

// Envelope is the event envelope as published.
type Envelope struct {
	ID        string            `json:"id"`
	EventType string            `json:"event_type"`
	Timestamp string            `json:"timestamp"`
	Data      json.RawMessage   `json:"data"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// ParseEnvelope decodes an envelope and extracts the matching fields.
func ParseEnvelope(body []byte) (*Envelope, *Event, error) {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, nil, fmt.Errorf("event envelope: %w", err)
	}
	if env.EventType == "" {
		return nil, nil, fmt.Errorf("event envelope: event_type is missing")
	}
	ev := &Event{ID: env.ID, Type: env.EventType, Timestamp: env.Timestamp, Labels: env.Labels, Data: env.Data}
	if len(env.Labels) > 0 {
		// A null label value is a missing label, not "": it never matches.
		var nullable struct {
			Labels map[string]*string `json:"labels"`
		}
		if err := json.Unmarshal(body, &nullable); err == nil {
			ev.Labels = make(map[string]string, len(nullable.Labels))
			for k, v := range nullable.Labels {
				if v != nil {
					ev.Labels[k] = *v
				}
			}
		}
	}
	if len(env.Data) > 0 && env.Data[0] == '{' {
		var d struct {
			AgentID *json.RawMessage `json:"agent_id"`
			StackID *json.RawMessage `json:"stack_id"`
		}
		if err := json.Unmarshal(env.Data, &d); err == nil {
			ev.AgentID = scalar(d.AgentID)
			ev.StackID = scalar(d.StackID)
		}
	}
	return &env, ev, nil
}

// scalar turns a JSON string or number into its text; null and others are nil.
func scalar(r *json.RawMessage) *string {
	if r == nil {
		return nil
	}
	var s string
	if json.Unmarshal(*r, &s) == nil {
		return &s
	}
	var n json.Number
	if json.Unmarshal(*r, &n) == nil {
		v := n.String()
		return &v
	}
	return nil
}

// TypeMatches reports whether pattern (type, "family.*" or "*") matches t.
// "*" is every platform type: Hermod's own operational family (catalog.
// OpsFamily) is matched only by its name ("hermod.*" or a hermod type), so
// a webhook subscribed to everything does not start receiving them.
func TypeMatches(pattern, t string) bool {
	if pattern == t || pattern == "*" && !catalog.IsOperational(t) {
		return true
	}
	if fam, ok := strings.CutSuffix(pattern, ".*"); ok {
		return strings.HasPrefix(t, fam+".")
	}
	return false
}

// FiltersMatch reports whether every given filter equals the event's value.
// A missing or null event field never matches a filter on it.
func FiltersMatch(f *webhooks.Filters, e *Event) bool {
	if f == nil {
		return true
	}
	if f.AgentID != nil && (e.AgentID == nil || *e.AgentID != *f.AgentID) {
		return false
	}
	if f.StackID != nil && (e.StackID == nil || *e.StackID != *f.StackID) {
		return false
	}
	for k, v := range f.Labels {
		ev, ok := e.Labels[k]
		if !ok || ev != v {
			return false
		}
	}
	return true
}

// Set is an immutable index of webhooks by event type pattern, with the
// compiled filter expressions.
type Set struct {
	exact  map[string][]*webhooks.Webhook
	family map[string][]*webhooks.Webhook
	all    []*webhooks.Webhook
	byID   map[string]*webhooks.Webhook
	// progs holds the compiled filter expression of each webhook that has
	// one, by webhook id; broken the compile error of a stored expression
	// that does not compile (saved by another version): such a webhook
	// matches nothing.
	progs  map[string]*filterexpr.Program
	broken map[string]error
}

// Build indexes ws, compiling every filter expression.
func Build(ws []*webhooks.Webhook) *Set { return Rebuild(nil, ws) }

// LookupOnly indexes ws for Get and Len alone, compiling nothing (the
// deliverer looks webhooks up but never matches). Matching against it
// treats every webhook with a filter expression as not matching.
func LookupOnly(ws []*webhooks.Webhook) *Set {
	s := &Set{byID: make(map[string]*webhooks.Webhook, len(ws))}
	for _, w := range ws {
		s.byID[w.ID] = w
	}
	return s
}

// Rebuild indexes ws, taking from prev (nil: none) the compiled filter
// expression of each webhook whose expression did not change, so an
// expression is compiled once per change of its webhook, never per event.
// Each webhook is placed so that it matches a type at most once: "*" wins
// over a family, a family over its exact types. "*" does not cover the
// operational family (see TypeMatches).
func Rebuild(prev *Set, ws []*webhooks.Webhook) *Set {
	s := &Set{exact: map[string][]*webhooks.Webhook{}, family: map[string][]*webhooks.Webhook{},
		byID: make(map[string]*webhooks.Webhook, len(ws)), progs: map[string]*filterexpr.Program{}}
	for _, w := range ws {
		s.byID[w.ID] = w
		s.compile(prev, w)
		star := false
		fams := map[string]bool{}
		for _, p := range w.EventTypes {
			if p == "*" {
				star = true
			} else if fam, ok := strings.CutSuffix(p, ".*"); ok {
				fams[fam] = true
			}
		}
		// "*" covers every platform type; the operational family is
		// indexed apart, when named, beside it.
		if star {
			s.all = append(s.all, w)
		}
		for f := range fams {
			if !star || f == catalog.OpsFamily {
				s.family[f] = append(s.family[f], w)
			}
		}
		seen := map[string]bool{}
		for _, p := range w.EventTypes {
			if strings.HasSuffix(p, ".*") || seen[p] || p == "*" || star && !catalog.IsOperational(p) {
				continue
			}
			seen[p] = true
			if fam, _, _ := strings.Cut(p, "."); fams[fam] {
				continue
			}
			s.exact[p] = append(s.exact[p], w)
		}
	}
	return s
}

// compile keeps w's compiled filter expression, prev's when unchanged.
func (s *Set) compile(prev *Set, w *webhooks.Webhook) {
	if w.Filter == "" {
		return
	}
	if prev != nil {
		if p := prev.progs[w.ID]; p != nil && p.Source() == w.Filter {
			s.progs[w.ID] = p
			return
		}
	}
	p, err := filterexpr.Compile(w.Filter)
	if err != nil {
		if s.broken == nil {
			s.broken = map[string]error{}
		}
		s.broken[w.ID] = err
		return
	}
	s.progs[w.ID] = p
}

// FilterMatches reports whether w's filter expression (if any) is true for
// e. An expression that gives no answer (an error, a result that is not a
// bool, the cost limit) is false, and told to e.OnFilterError.
func (s *Set) FilterMatches(w *webhooks.Webhook, e *Event) bool {
	if w.Filter == "" {
		return true
	}
	p := s.progs[w.ID]
	if p == nil || p.Source() != w.Filter {
		err := s.broken[w.ID]
		if err == nil {
			err = fmt.Errorf("webhook %s is not in this set", w.ID)
		}
		s.report(e, w, filterexpr.ReasonCompile, err)
		return false
	}
	ok, err := p.Eval(e.exprVars())
	if err != nil {
		reason := filterexpr.ReasonEval
		if ee, isEval := err.(*filterexpr.EvalError); isEval {
			reason = ee.Reason
		}
		s.report(e, w, reason, err)
		return false
	}
	return ok
}

func (s *Set) report(e *Event, w *webhooks.Webhook, reason string, err error) {
	if e.OnFilterError != nil {
		e.OnFilterError(w, reason, err)
	}
}

// Get returns the webhook with id, if indexed.
func (s *Set) Get(id string) (*webhooks.Webhook, bool) {
	w, ok := s.byID[id]
	return w, ok
}

// Len is the number of webhooks indexed.
func (s *Set) Len() int { return len(s.byID) }

// Match appends to out the webhooks e goes to and returns it.
func (s *Set) Match(e *Event, out []*webhooks.Webhook) []*webhooks.Webhook {
	add := func(ws []*webhooks.Webhook) {
		for _, w := range ws {
			if FiltersMatch(w.Filters, e) && s.FilterMatches(w, e) {
				out = append(out, w)
			}
		}
	}
	add(s.exact[e.Type])
	if fam, _, ok := strings.Cut(e.Type, "."); ok {
		add(s.family[fam])
	}
	if !catalog.IsOperational(e.Type) {
		add(s.all)
	}
	return out
}
