// Package envconfig reads HERMOD_* environment variables into typed values,
// collecting every problem so a service can refuse to start with a message
// that names each bad variable.
package envconfig

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables from a lookup function (os.LookupEnv by default).
type Reader struct {
	Lookup func(string) (string, bool)
	errs   []error
	seen   map[string]string
	secret map[string]bool
}

// New returns a reader over the process environment.
func New() *Reader { return NewFrom(os.LookupEnv) }

// NewFrom returns a reader over lookup.
func NewFrom(lookup func(string) (string, bool)) *Reader {
	return &Reader{Lookup: lookup, seen: map[string]string{}, secret: map[string]bool{}}
}

func (r *Reader) get(name string) (string, bool) {
	v, ok := r.Lookup(name)
	v = strings.TrimSpace(v)
	if ok && v == "" {
		ok = false
	}
	return v, ok
}

func (r *Reader) fail(name, format string, a ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
}

// String reads a string with a default.
func (r *Reader) String(name, def string) string {
	v, ok := r.get(name)
	if !ok {
		v = def
	}
	r.seen[name] = v
	return v
}

// Secret reads a string that is masked when printed.
func (r *Reader) Secret(name, def string) string {
	r.secret[name] = true
	return r.String(name, def)
}

// URL reads a URL (or comma-separated URLs) whose credentials are masked
// when printed (MaskURL).
func (r *Reader) URL(name, def string) string {
	v := r.String(name, def)
	r.seen[name] = MaskURL(v)
	return v
}

// Required reads a string that must be set.
func (r *Reader) Required(name string) string {
	v, ok := r.get(name)
	if !ok {
		r.fail(name, "is required")
	}
	r.seen[name] = v
	return v
}

// Int reads an integer in [lo, hi].
func (r *Reader) Int(name string, def, lo, hi int) int {
	v, ok := r.get(name)
	if !ok {
		r.seen[name] = strconv.Itoa(def)
		return def
	}
	r.seen[name] = v
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(name, "%q is not an integer", v)
		return def
	}
	if n < lo || n > hi {
		r.fail(name, "%d is out of range %d..%d", n, lo, hi)
		return def
	}
	return n
}

// Duration reads a Go duration ("30s", "72h") in [lo, hi].
func (r *Reader) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := r.get(name)
	if !ok {
		r.seen[name] = def.String()
		return def
	}
	r.seen[name] = v
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(name, "%q is not a duration such as 30s or 72h", v)
		return def
	}
	if d < lo || d > hi {
		r.fail(name, "%s is out of range %s..%s", d, lo, hi)
		return def
	}
	return d
}

// Check adds an error for name when ok is false.
func (r *Reader) Check(ok bool, name, format string, a ...any) {
	if !ok {
		r.fail(name, format, a...)
	}
}

// Err returns every problem found, joined.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Effective returns "NAME=value" lines of every variable read, secrets masked.
func (r *Reader) Effective() map[string]string {
	out := make(map[string]string, len(r.seen))
	for k, v := range r.seen {
		if r.secret[k] {
			v = Mask(v)
		}
		out[k] = v
	}
	return out
}

// Names lists the variables read, sorted.
func (r *Reader) Names() []string {
	out := make([]string, 0, len(r.seen))
	for k := range r.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Mask hides a secret, keeping only whether it is set.
func Mask(v string) string {
	if v == "" {
		return ""
	}
	return "****"
}

// MaskURL hides the credentials of a URL (or a comma-separated list of
// URLs, or a URL listing hosts comma-separated such as a redis-sentinel://
// one): the password of user:password, or a token given alone, and the
// value of any query parameter whose name holds "password".
func MaskURL(v string) string {
	var out, cur []string // cur: the parts of the URL being read
	flush := func() {
		if len(cur) > 0 {
			out = append(out, maskOne(strings.Join(cur, ",")))
			cur = nil
		}
	}
	for _, p := range strings.Split(v, ",") {
		switch {
		case strings.Contains(p, "://"):
			flush()
			cur = []string{p}
		case len(cur) > 0: // a host (or part of a password) of the URL before
			cur = append(cur, p)
		default:
			out = append(out, p)
		}
	}
	flush()
	return strings.Join(out, ",")
}

// maskOne masks one URL for MaskURL.
func maskOne(u string) string {
	scheme := strings.Index(u, "://")
	rest := u[scheme+3:]
	// The credentials end at the last @ before the query (a password may
	// hold a / that was not percent-encoded); the hosts at the path.
	beforeQuery, _, _ := strings.Cut(rest, "?")
	at := strings.LastIndex(beforeQuery, "@")
	end := at + 1 + strings.IndexAny(rest[at+1:]+"/", "/?")
	authority, tail := rest[:end], rest[end:]
	if at >= 0 {
		masked := "****"
		if user, _, ok := strings.Cut(authority[:at], ":"); ok {
			masked = user + ":****"
		}
		authority = masked + authority[at:]
	}
	if path, query, ok := strings.Cut(tail, "?"); ok {
		params := strings.Split(query, "&")
		for i, kv := range params {
			if k, _, ok := strings.Cut(kv, "="); ok && strings.Contains(strings.ToLower(k), "password") {
				params[i] = k + "=****"
			}
		}
		tail = path + "?" + strings.Join(params, "&")
	}
	return u[:scheme+3] + authority + tail
}

// Unknown lists, sorted, the HERMOD_* variables of environ ("NAME=value"
// lines, as os.Environ gives them) that the reader did not read: a typo,
// or a variable meant for another Hermod program. They are reported, not
// refused, so one environment may serve several programs.
func (r *Reader) Unknown(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, read := r.seen[name]; strings.HasPrefix(name, "HERMOD_") && !read {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
