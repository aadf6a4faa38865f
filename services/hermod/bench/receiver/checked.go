package receiver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/hermodhq/hermod/shared/signing"
)

// Checked wraps a receiver's handler for tests that run Hermod in
// containers: it checks each delivery's Standard Webhooks signature with
// one secret, counts deliveries by webhook-id and notes the address that
// sent each, by path, and serves what it saw at GET /checks.
type Checked struct {
	Next http.Handler
	key  []byte

	mu     sync.Mutex
	checks map[string]*Check
	ids    map[string]map[string]bool // by path
}

// Check is what Checked saw of one path's deliveries.
type Check struct {
	Requests   int            `json:"requests"`
	Distinct   int            `json:"distinct"` // different webhook-ids
	Verified   int            `json:"verified"`
	Unverified int            `json:"unverified"`
	Sources    map[string]int `json:"sources"` // requests by sender IP
}

// NewChecked checks signatures with secret (whsec_...).
func NewChecked(next http.Handler, secret string) (*Checked, error) {
	key, err := signing.Key(secret)
	if err != nil {
		return nil, err
	}
	return &Checked{Next: next, key: key, checks: map[string]*Check{}, ids: map[string]map[string]bool{}}, nil
}

func (c *Checked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/checks" {
		c.mu.Lock()
		defer c.mu.Unlock()
		writeJSON(w, c.checks)
		return
	}
	if r.Method != http.MethodPost {
		c.Next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	ok := signing.Verify(c.key, r.Header.Get("webhook-id"), ts, body, r.Header.Get("webhook-signature"))
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	path, id := r.URL.Path, r.Header.Get("webhook-id")
	c.mu.Lock()
	ch := c.checks[path]
	if ch == nil {
		ch = &Check{Sources: map[string]int{}}
		c.checks[path], c.ids[path] = ch, map[string]bool{}
	}
	ch.Requests++
	if !c.ids[path][id] {
		c.ids[path][id] = true
		ch.Distinct++
	}
	if ok {
		ch.Verified++
	} else {
		ch.Unverified++
	}
	ch.Sources[ip]++
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.Next.ServeHTTP(w, r)
}
