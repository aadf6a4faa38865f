// Package receiver is the local webhook receiver of `hermodctl listen`: an
// HTTP handler that checks each request's Standard Webhooks signature
// (webhook-id, webhook-timestamp, webhook-signature) and hands what arrived
// to a printer.
package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermodhq/hermod/shared/signing"
)

// Defaults of Options.
const (
	DefaultMaxBody   = 1 << 20
	DefaultTolerance = 5 * time.Minute
)

// Options configure a Handler.
type Options struct {
	// Secrets are the signing secrets (whsec_...) a signature may be made
	// with; none means nothing can be verified.
	Secrets []string
	// Tolerance is how far webhook-timestamp may be from now (default 5 min).
	Tolerance time.Duration
	// MaxBody bounds a body (default 1 MiB); a larger one is answered 413.
	MaxBody int64
	// Status answers every POST (default 200).
	Status int
	// WebhookID names the webhook the deliveries are for, when known.
	WebhookID string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Delivery is one request as it arrived and what its check found.
type Delivery struct {
	Time       time.Time       `json:"time"`
	Method     string          `json:"method"`
	Path       string          `json:"path"`
	DeliveryID string          `json:"delivery_id"`
	WebhookID  string          `json:"webhook_id,omitempty"`
	EventType  string          `json:"event_type"`
	EventID    string          `json:"event_id,omitempty"`
	Verified   bool            `json:"verified"`
	Reason     string          `json:"reason,omitempty"` // why not verified
	Status     int             `json:"status"`           // what was answered
	Size       int             `json:"size"`
	Body       json.RawMessage `json:"body,omitempty"` // when it is JSON
	Text       string          `json:"text,omitempty"` // when it is not
}

// Handler answers webhook deliveries and reports each to Sink.
type Handler struct {
	opts Options
	keys [][]byte
	sink func(Delivery)
}

// New returns a handler; sink is called once per request (never
// concurrently). A secret that is not whsec_ + base64 is an error.
func New(opts Options, sink func(Delivery)) (*Handler, error) {
	if opts.Tolerance <= 0 {
		opts.Tolerance = DefaultTolerance
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Status == 0 {
		opts.Status = http.StatusOK
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts}
	for _, s := range opts.Secrets {
		k, err := signing.Key(s)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		h.keys = append(h.keys, k)
	}
	var mu sync.Mutex
	h.sink = func(d Delivery) {
		mu.Lock()
		defer mu.Unlock()
		sink(d)
	}
	return h, nil
}

// ServeHTTP answers opts.Status to a POST whose body fits, 413 to one that
// does not, 405 to other methods; each request is reported.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := Delivery{Time: h.opts.Now().UTC(), Method: r.Method, Path: r.URL.RequestURI(),
		DeliveryID: r.Header.Get("webhook-id"), WebhookID: h.opts.WebhookID,
		EventType: r.Header.Get("X-Hermod-Event-Type")}
	if r.Method != http.MethodPost {
		d.Status, d.Reason = http.StatusMethodNotAllowed, "not a POST"
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", d.Status)
		h.sink(d)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			d.Status, d.Reason = http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody)
		} else {
			d.Status, d.Reason = http.StatusBadRequest, "could not read the body: "+err.Error()
		}
		http.Error(w, d.Reason, d.Status)
		h.sink(d)
		return
	}
	d.Size = len(body)
	d.Verified, d.Reason = h.verify(r.Header, body)
	var env struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
	}
	if json.Valid(body) {
		d.Body = body
		if json.Unmarshal(body, &env) == nil {
			d.EventID = env.ID
			if d.EventType == "" {
				d.EventType = env.EventType
			}
		}
	} else {
		d.Text = string(body)
	}
	d.Status = h.opts.Status
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(d.Status)
	_, _ = fmt.Fprintf(w, "{\"received\":true,\"verified\":%t}\n", d.Verified)
	h.sink(d)
}

// verify checks the Standard Webhooks headers of a body; the reason says
// why a request is not verified.
func (h *Handler) verify(hdr http.Header, body []byte) (bool, string) {
	id, tsv, sig := hdr.Get("webhook-id"), hdr.Get("webhook-timestamp"), hdr.Get("webhook-signature")
	var missing []string
	for _, p := range [][2]string{{"webhook-id", id}, {"webhook-timestamp", tsv}, {"webhook-signature", sig}} {
		if p[1] == "" {
			missing = append(missing, p[0])
		}
	}
	if len(missing) > 0 {
		return false, "missing headers: " + strings.Join(missing, ", ")
	}
	ts, err := strconv.ParseInt(tsv, 10, 64)
	if err != nil {
		return false, "malformed webhook-timestamp " + strconv.Quote(tsv)
	}
	if len(h.keys) == 0 {
		return false, "no secret to check the signature with (--secret, --webhook or --create)"
	}
	age := h.opts.Now().Sub(time.Unix(ts, 0))
	if age > h.opts.Tolerance {
		return false, fmt.Sprintf("stale timestamp: %s old (tolerance %s)", age.Round(time.Second), h.opts.Tolerance)
	}
	if -age > h.opts.Tolerance {
		return false, fmt.Sprintf("timestamp %s in the future (tolerance %s)", (-age).Round(time.Second), h.opts.Tolerance)
	}
	for _, k := range h.keys {
		if signing.Verify(k, id, ts, body, sig) {
			return true, ""
		}
	}
	return false, "bad signature"
}
