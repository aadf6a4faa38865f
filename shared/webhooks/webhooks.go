// Package webhooks defines a webhook subscription, the rules its fields
// follow, and how a create or partial-update body is applied to it.
package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/filterexpr"
	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/signing"
)

// Defaults and limits of a webhook's fields (docs/api.md).
const (
	DefaultMaxRetries     = 5
	DefaultTimeoutSeconds = 30
	MaxURLLength          = 2048
	MaxAuthHeaderLength   = 8192
	MaxLabels             = 16
	MaxEventTypes         = 64
	MaxDescription        = 2048
	MaxHeaders            = 32
	MaxHeadersBytes       = 8192 // names and values together
)

// Filters restrict which events reach a webhook. Every given key must equal
// the event's data.agent_id, data.stack_id and labels.
type Filters struct {
	AgentID *string           `json:"agent_id,omitempty"`
	StackID *string           `json:"stack_id,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Empty reports whether no filter is set.
func (f *Filters) Empty() bool {
	return f == nil || (f.AgentID == nil && f.StackID == nil && len(f.Labels) == 0)
}

// Webhook is a subscription, with its secrets in plaintext (in memory only).
type Webhook struct {
	ID          string
	Name        string
	Description string
	URL         string
	AuthHeader  string
	// Headers are sent with every delivery, by canonical name; as secret
	// as AuthHeader (sealed at rest, never returned, never logged).
	Headers             map[string]string
	Secret              string
	PrevSecret          string
	PrevSecretExpiresAt time.Time
	EventTypes          []string
	TargetLabels        []string
	Filters             *Filters
	// Filter is a CEL expression over the event envelope ("" when none);
	// an event reaches the webhook only when it is true (shared/filterexpr).
	Filter         string
	MaxRetries     int
	TimeoutSeconds int
	// Format is the body's format ("" and "standard": the envelope) and
	// FormatOptions its options (the PagerDuty routing key among them: a
	// secret, sealed at rest).
	Format        formats.Name
	FormatOptions *formats.Options
	Enabled       bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// MaxAttempts is the number of failed attempts after which a delivery is dead.
func (w *Webhook) MaxAttempts() int { return max(w.MaxRetries, 1) }

// Secrets returns the secrets that sign a delivery at time now: the current
// InOverlap says whether the previous secret still signs at now (a
// rotation's overlap).
func (w *Webhook) InOverlap(now time.Time) bool {
	return w.PrevSecret != "" && now.Before(w.PrevSecretExpiresAt)
}

// one, then the previous one while its overlap lasts.
func (w *Webhook) Secrets(now time.Time) []string {
	out := []string{w.Secret}
	if w.InOverlap(now) {
		out = append(out, w.PrevSecret)
	}
	return out
}

// FormatSecrets are the secret values of w's format options (the PagerDuty
// routing key), which must never be recorded.
func (w *Webhook) FormatSecrets() []string {
	if w.FormatOptions == nil || w.FormatOptions.RoutingKey == "" {
		return nil
	}
	return []string{w.FormatOptions.RoutingKey}
}

// CompileFormat compiles w's format and checks it against w's url; a
// refusal is a *FieldError naming the option. Saving a webhook checks its
// format with it; one-off sends (the test endpoint, a preview) render with
// what it returns; the delivery engine keeps compiled renderers.
func CompileFormat(w *Webhook) (*formats.Renderer, error) {
	r, err := formats.Compile(w.Format, w.FormatOptions)
	if err == nil {
		err = formats.CheckURL(w.Format, w.FormatOptions, w.URL)
	}
	var oe *formats.OptionError
	if errors.As(err, &oe) {
		return nil, fieldErr(oe.Field, "%s", oe.Message)
	}
	return r, err
}

// RenderOnce renders an envelope in w's format for a one-off send (the
// test event).
func RenderOnce(ctx context.Context, w *Webhook, body []byte) ([]byte, error) {
	r, err := CompileFormat(w)
	if err != nil {
		return nil, err
	}
	return r.Render(ctx, body, time.Now())
}

// RedactURL returns scheme://host[:port] of raw, without user info, path or query.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// FieldError is a rule broken by one field; the API answers it with 422.
// Line and Column (1-based) place the problem inside the field's value
// when it has positions (a filter expression); 0 otherwise.
type FieldError struct {
	Field        string
	Message      string
	Line, Column int
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

var (
	labelKeyRe   = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,63}$`)
	labelValueRe = regexp.MustCompile(`^[A-Za-z0-9._-]{0,63}$`)
)

// CanonicalLabels validates "key:value" labels and returns them sorted and
// without duplicates.
func CanonicalLabels(field string, labels []string) ([]string, error) {
	if len(labels) > MaxLabels {
		return nil, fieldErr(field, "at most %d labels", MaxLabels)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(labels))
	for _, l := range labels {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !labelKeyRe.MatchString(k) || !labelValueRe.MatchString(v) {
			return nil, fieldErr(field, "label %q must be key:value with key [A-Za-z0-9._/-]{1,63} and value [A-Za-z0-9._-]{0,63}", l)
		}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ValidHeaderValue reports whether s can be sent as an HTTP header value:
// visible characters, spaces, tabs and non-ASCII bytes, no control characters.
func ValidHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// reservedHeaders are the names a webhook's headers may not set: hop-by-hop
// headers, those the HTTP client writes itself, and Hermod's own (the
// signature, the user agent; the Authorization header is auth_header).
var reservedHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Upgrade": true, "Host": true, "Content-Length": true, "Content-Type": true,
	"Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true,
	"User-Agent": true, "Authorization": true,
}

// reservedHeaderPrefixes are name prefixes refused the same way.
var reservedHeaderPrefixes = []string{"Proxy-", "X-Hermod-"}

// ReservedHeader reports whether a webhook's headers may not set the
// canonical name.
func ReservedHeader(canonical string) bool {
	if reservedHeaders[canonical] {
		return true
	}
	for _, p := range reservedHeaderPrefixes {
		if strings.HasPrefix(canonical, p) {
			return true
		}
	}
	return false
}

// ValidHeaderName reports whether s is an HTTP field name: a non-empty
// token of letters, digits and !#$%&'*+-.^_`|~.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CanonicalHeaders validates a webhook's custom headers and returns them by
// canonical name (nil when there are none). Names are case-insensitive, so
// two spellings of one name are refused. Errors name field for the whole
// object and field.<name> for one header; they never quote a value.
func CanonicalHeaders(field string, m map[string]string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > MaxHeaders {
		return nil, fieldErr(field, "at most %d headers", MaxHeaders)
	}
	size := 0
	names := make([]string, 0, len(m))
	for k, v := range m {
		size += len(k) + len(v)
		names = append(names, k)
	}
	if size > MaxHeadersBytes {
		return nil, fieldErr(field, "names and values must total at most %d bytes", MaxHeadersBytes)
	}
	sort.Strings(names)
	out := make(map[string]string, len(m))
	for _, k := range names {
		sub := field + "." + k
		if !ValidHeaderName(k) {
			return nil, fieldErr(sub, "is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)")
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ReservedHeader(ck) {
			return nil, fieldErr(sub, "cannot be set: hop-by-hop, set by the HTTP client or by Hermod (use auth_header for Authorization)")
		}
		if _, dup := out[ck]; dup {
			return nil, fieldErr(sub, "is given twice (header names are case-insensitive)")
		}
		if !ValidHeaderValue(m[k]) {
			return nil, fieldErr(sub, "value must not contain CR, LF, NUL or other control characters")
		}
		out[ck] = m[k]
	}
	return out, nil
}

// HeaderNames returns the canonical names of headers, sorted.
func HeaderNames(headers map[string]string) []string {
	out := make([]string, 0, len(headers))
	for k := range headers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateURL checks an absolute http or https URL of at most 2048 bytes.
func ValidateURL(field, raw string) error {
	if raw == "" {
		return fieldErr(field, "must not be empty")
	}
	if len(raw) > MaxURLLength {
		return fieldErr(field, "must be at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fieldErr(field, "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fieldErr(field, "must be an absolute http or https URL")
	}
	if u.Hostname() == "" {
		return fieldErr(field, "must have a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fieldErr(field, "port must be between 1 and 65535")
		}
	}
	if strings.ContainsAny(raw, " \r\n\t") {
		return fieldErr(field, "must not contain whitespace")
	}
	return nil
}

var allowedFields = map[string]bool{
	"name": true, "description": true, "url": true, "event_types": true,
	"auth_header": true, "headers": true, "secret": true, "target_labels": true, "filters": true,
	"filter": true, "max_retries": true, "timeout_seconds": true, "enabled": true,
	"format": true, "format_options": true,
}

// DecodeObject decodes one JSON object and nothing after it (only
// whitespace may follow).
func DecodeObject(body []byte) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	rd := bytes.NewReader(body)
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), rd))
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("malformed JSON: trailing data after the object")
	}
	if raw == nil {
		return nil, fmt.Errorf("malformed JSON: body must be an object")
	}
	return raw, nil
}

// DecodeBody decodes a JSON object into raw fields, rejecting unknown ones.
// A syntax error is returned as is (400); a field error as *FieldError (422).
func DecodeBody(body []byte) (map[string]json.RawMessage, error) {
	raw, err := DecodeObject(body)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowedFields[k] {
			return nil, fieldErr(k, "unknown field")
		}
	}
	return raw, nil
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

func decodeField(field string, r json.RawMessage, v any, what string) error {
	if err := json.Unmarshal(r, v); err != nil {
		return fieldErr(field, "must be %s", what)
	}
	return nil
}

// Apply applies a create (create=true) or partial update body to w. On create,
// w should hold the defaults; omitted fields stay unchanged; null clears an
// optional field and is refused for a required one.
func Apply(w *Webhook, raw map[string]json.RawMessage, create bool, cat *catalog.Catalog) error {
	if create {
		for _, f := range []string{"name", "url", "event_types"} {
			if _, ok := raw[f]; !ok {
				return fieldErr(f, "is required")
			}
		}
	} else if _, ok := raw["secret"]; ok {
		return fieldErr("secret", "cannot be changed here: use POST /api/v1/webhooks/{id}/secret/rotate")
	}
	// Fields in a fixed order so the first error is deterministic.
	order := []string{"name", "description", "url", "event_types", "auth_header", "headers", "secret",
		"target_labels", "filters", "filter", "max_retries", "timeout_seconds", "enabled", "format", "format_options"}
	before := w.Format
	for _, f := range order {
		r, ok := raw[f]
		if !ok {
			continue
		}
		if err := applyField(w, f, r, cat); err != nil {
			return err
		}
	}
	return applyFormat(w, raw, before, cat)
}

// applyFormat checks the format and its options together. A format change
// without options clears the old format's; options given without a
// routing key keep the stored one while the format stays PagerDuty (the
// key is never returned, so an edit cannot resend it).
func applyFormat(w *Webhook, raw map[string]json.RawMessage, before formats.Name, cat *catalog.Catalog) error {
	_, newFormat := raw["format"]
	_, newOptions := raw["format_options"]
	_, newURL := raw["url"]
	if !newFormat && !newOptions && !newURL {
		return nil
	}
	if newFormat && !newOptions && w.Format != before {
		w.FormatOptions = nil
	}
	if _, err := CompileFormat(w); err != nil {
		return err
	}
	return checkSeverityPatterns(w.FormatOptions, cat)
}

// checkSeverityPatterns refuses a severity key that is not an event type
// pattern of the catalogue (a typo such as "alrt.*" would never match),
// naming the first such key in sorted order.
func checkSeverityPatterns(o *formats.Options, cat *catalog.Catalog) error {
	if o == nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(o.Severity)) {
		if !cat.ValidPattern(k) {
			return fieldErr("format_options.severity."+k, "is not a catalogue type, family.* or *")
		}
	}
	return nil
}

// applyField applies one field of a create or update body to w. It is one
// switch with a case per field, so every field's rule reads in one place;
// that is why it is long.
func applyField(w *Webhook, f string, r json.RawMessage, cat *catalog.Catalog) error {
	null := isNull(r)
	switch f {
	case "name":
		if null {
			return fieldErr(f, "is required and cannot be null")
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if n := utf8.RuneCountInString(s); n < 1 || n > 255 {
			return fieldErr(f, "must be 1 to 255 characters")
		}
		if strings.ContainsFunc(s, unicode.IsControl) {
			return fieldErr(f, "must be one line without control characters (such as NUL, CR or LF)")
		}
		w.Name = s
	case "description":
		if null {
			w.Description = ""
			return nil
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		if utf8.RuneCountInString(s) > MaxDescription {
			return fieldErr(f, "must be at most %d characters", MaxDescription)
		}
		w.Description = s
	case "url":
		if null {
			return fieldErr(f, "is required and cannot be null")
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		if err := ValidateURL(f, s); err != nil {
			return err
		}
		w.URL = s
	case "event_types":
		if null {
			return fieldErr(f, "is required and cannot be null")
		}
		var ts []string
		if err := decodeField(f, r, &ts, "an array of strings"); err != nil {
			return err
		}
		if len(ts) == 0 {
			return fieldErr(f, "must name at least one event type")
		}
		if len(ts) > MaxEventTypes {
			return fieldErr(f, "at most %d entries", MaxEventTypes)
		}
		seen := map[string]bool{}
		out := make([]string, 0, len(ts))
		for _, t := range ts {
			if !cat.ValidPattern(t) {
				return fieldErr(f, "%q is not a catalogue type, family.* or *", t)
			}
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
		w.EventTypes = out
	case "auth_header":
		if null {
			w.AuthHeader = ""
			return nil
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		if !ValidHeaderValue(s) {
			return fieldErr(f, "must not contain CR, LF or other control characters")
		}
		if len(s) > MaxAuthHeaderLength {
			return fieldErr(f, "must be at most %d bytes", MaxAuthHeaderLength)
		}
		w.AuthHeader = s
	case "format":
		if null {
			w.Format = formats.Standard
			return nil
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		w.Format = formats.Name(s) // checked with its options by applyFormat
	case "format_options":
		if null {
			w.FormatOptions = nil
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		var o formats.Options
		if err := dec.Decode(&o); err != nil {
			return fieldErr(f, "must be an object of the format's options (%v)", err)
		}
		if o.RoutingKey == "" && w.FormatOptions != nil && w.Format == formats.PagerDuty {
			o.RoutingKey = w.FormatOptions.RoutingKey
		}
		w.FormatOptions = &o
	case "headers":
		if null {
			w.Headers = nil
			return nil
		}
		var m map[string]string
		if err := decodeField(f, r, &m, "an object of header names to string values"); err != nil {
			return err
		}
		canon, err := CanonicalHeaders(f, m)
		if err != nil {
			return err
		}
		w.Headers = canon
	case "secret":
		if null {
			return nil // generated by the caller when empty
		}
		var s string
		if err := decodeField(f, r, &s, "a string"); err != nil {
			return err
		}
		if _, err := signing.Key(s); err != nil {
			return fieldErr(f, "%s", err.Error())
		}
		w.Secret = s
	case "target_labels":
		if null {
			w.TargetLabels = nil
			return nil
		}
		var ls []string
		if err := decodeField(f, r, &ls, "an array of \"key:value\" strings"); err != nil {
			return err
		}
		canon, err := CanonicalLabels(f, ls)
		if err != nil {
			return err
		}
		if len(canon) == 0 {
			canon = nil
		}
		w.TargetLabels = canon
	case "filters":
		if null {
			w.Filters = nil
			return nil
		}
		return applyFilters(w, r)
	case "filter":
		if null {
			w.Filter = ""
			return nil
		}
		var s string
		if err := decodeField(f, r, &s, "a string (a CEL expression)"); err != nil {
			return err
		}
		return applyFilter(w, s)
	case "max_retries":
		var n int
		if null {
			w.MaxRetries = DefaultMaxRetries
			return nil
		}
		if err := decodeField(f, r, &n, "an integer"); err != nil {
			return err
		}
		if n < 0 || n > 10 {
			return fieldErr(f, "must be between 0 and 10")
		}
		w.MaxRetries = n
	case "timeout_seconds":
		var n int
		if null {
			w.TimeoutSeconds = DefaultTimeoutSeconds
			return nil
		}
		if err := decodeField(f, r, &n, "an integer"); err != nil {
			return err
		}
		if n < 1 || n > 300 {
			return fieldErr(f, "must be between 1 and 300")
		}
		w.TimeoutSeconds = n
	case "enabled":
		if null {
			return fieldErr(f, "cannot be null")
		}
		var b bool
		if err := decodeField(f, r, &b, "a boolean"); err != nil {
			return err
		}
		w.Enabled = b
	}
	return nil
}

// applyFilter sets w's filter expression after compiling it: "" (or only
// spaces) clears it; an expression that does not compile is refused with
// the position of its first problem.
func applyFilter(w *Webhook, s string) error {
	if strings.TrimSpace(s) == "" {
		w.Filter = ""
		return nil
	}
	if _, err := filterexpr.Compile(s); err != nil {
		var ce *filterexpr.Error
		if !errors.As(err, &ce) {
			return fmt.Errorf("filter: %w", err)
		}
		first := ce.First()
		return &FieldError{Field: "filter", Message: "does not compile: " + ce.Error(), Line: first.Line, Column: first.Column}
	}
	w.Filter = s
	return nil
}

func applyFilters(w *Webhook, r json.RawMessage) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r, &raw); err != nil || raw == nil {
		return fieldErr("filters", "must be an object")
	}
	f := &Filters{}
	for k, v := range raw {
		switch k {
		case "agent_id", "stack_id":
			if isNull(v) {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return fieldErr("filters."+k, "must be a string")
			}
			if len(s) > 255 {
				return fieldErr("filters."+k, "must be at most 255 characters")
			}
			if k == "agent_id" {
				f.AgentID = &s
			} else {
				f.StackID = &s
			}
		case "labels":
			if isNull(v) {
				continue
			}
			var m map[string]string
			if err := json.Unmarshal(v, &m); err != nil {
				return fieldErr("filters.labels", "must be an object of strings")
			}
			if len(m) > MaxLabels {
				return fieldErr("filters.labels", "at most %d labels", MaxLabels)
			}
			for lk, lv := range m {
				if !labelKeyRe.MatchString(lk) || !labelValueRe.MatchString(lv) {
					return fieldErr("filters.labels", "label %q=%q breaks the label rules", lk, lv)
				}
			}
			if len(m) > 0 {
				f.Labels = m
			}
		default:
			return fieldErr("filters."+k, "unknown field")
		}
	}
	if f.Empty() {
		w.Filters = nil
	} else {
		w.Filters = f
	}
	return nil
}

// Covers reports whether every label of set is among granted: an agent
// granted "env:production,region:eu" takes ["env:production"] and
// ["env:production","region:eu"], not ["env:staging"] nor
// ["env:production","role:monitoring"]. An empty set is broker delivery,
// never an agent's.
func Covers(granted, set []string) bool {
	if len(set) == 0 {
		return false
	}
	have := make(map[string]bool, len(granted))
	for _, g := range granted {
		have[g] = true
	}
	for _, l := range set {
		if !have[l] {
			return false
		}
	}
	return true
}
