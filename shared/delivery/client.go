package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"code.dny.dev/ssrf"

	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// MaxResponseRead is how much of a response body is read (then discarded,
// except an excerpt), so connections are reused without unbounded reads.
const MaxResponseRead = 64 << 10

// ExcerptLen bounds the excerpt of a receiver's answer kept with every
// attempt (and shown by the test endpoint), so an operator sees why a
// receiver said no.
const ExcerptLen = 1024

// errorLineLen bounds the first line of an answer that an attempt's error
// carries ("HTTP 400: <first line>").
const errorLineLen = 200

// ParseCIDRs parses a comma-separated allow-list; "" and "none" are empty.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ErrRefusedDestination marks an attempt the SSRF guard stopped.
var ErrRefusedDestination = errors.New("destination address is not allowed")

// ClientOptions configure a Client.
type ClientOptions struct {
	// Guard turns the SSRF guard on (broker deliverers); agents turn it off.
	Guard bool
	// Allow lists CIDRs the guard lets through.
	Allow []netip.Prefix
	// MaxIdlePerHost sizes the keep-alive pool per host.
	MaxIdlePerHost int
	UserAgent      string
}

// Client sends webhook requests with one shared, tuned transport.
type Client struct {
	hc        *http.Client
	transport *http.Transport
	userAgent string
}

// NewClient builds a client. Redirects are never followed; the SSRF guard
// checks the address actually dialled (after DNS), so no proxy is used.
func NewClient(o ClientOptions) *Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if o.Guard {
		guard := DialGuard(o.Allow)
		dialer.Control = func(network, address string, _ syscall.RawConn) error { return guard(network, address) }
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 128
	}
	if o.UserAgent == "" {
		o.UserAgent = "Hermod/dev"
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   o.MaxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		ResponseHeaderTimeout: 0, // the per-request context carries timeout_seconds
	}
	return &Client{
		transport: t,
		userAgent: o.UserAgent,
		hc: &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

// DialGuard is the SSRF guard: it says whether the client may connect to
// address ("ip:port", as dialled after DNS) on network, refusing every
// non-public range (loopback, private, link-local, shared, documentation,
// benchmarking, multicast, reserved, IPv4-mapped and NAT64 forms of them)
// except those in allow. It runs as the dialler's Control, so a refused
// address is never contacted.
func DialGuard(allow []netip.Prefix) func(network, address string) error {
	var v4, v6 []netip.Prefix
	for _, p := range allow {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	g := ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))
	return func(network, address string) error {
		if err := g.Safe(network, address, nil); err != nil {
			return fmt.Errorf("%w: %s", ErrRefusedDestination, err.Error())
		}
		return nil
	}
}

// Close drops idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Request is one attempt to send.
type Request struct {
	URL        string
	AuthHeader string
	// Headers are the webhook's custom headers. They are set before
	// Hermod's own, and a name Hermod or the HTTP client owns is never sent
	// from here, so none replaces the signature, the user agent or
	// Authorization (that is AuthHeader).
	Headers map[string]string
	// Signer signs the request; when nil, one is made from Secrets
	// (current first, then previous during an overlap). The delivery
	// engine prepares signers once per secret change.
	Signer     *signing.Signer
	Secrets    []string
	DeliveryID string // webhook-id
	EventType  string
	Body       []byte
	Timeout    time.Duration
	// Redact are further secret values (a format's routing key) that must
	// not be recorded if the receiver echoes them in its answer; the auth
	// header and the custom header values always are.
	Redact []string
}

// Result is what one attempt produced.
type Result struct {
	StatusCode int
	Class      Class
	Duration   time.Duration
	RetryAfter time.Duration
	Err        error
	// Excerpt is the first ExcerptLen bytes of the answer's body, as valid
	// UTF-8 (invalid bytes replaced), and ContentType its media type. No
	// other part of the answer, and no response header, is kept.
	Excerpt     string
	ContentType string
}

// Send makes one attempt.
func (c *Client) Send(ctx context.Context, r Request) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	if !webhooks.ValidHeaderValue(r.AuthHeader) {
		return Result{Class: Terminal, Err: errors.New("the auth header holds characters HTTP cannot send"), Duration: time.Since(start)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Result{Class: Terminal, Err: fmt.Errorf("build request: %w", err), Duration: time.Since(start)}
	}
	signer := r.Signer
	if signer == nil {
		keys := make([][]byte, 0, len(r.Secrets))
		for _, s := range r.Secrets {
			k, err := signing.Key(s)
			if err != nil {
				return Result{Class: Terminal, Err: fmt.Errorf("signing secret: %w", err), Duration: time.Since(start)}
			}
			keys = append(keys, k)
		}
		signer = signing.NewSigner(keys...)
	}
	ts := start.Unix()
	h := req.Header
	// Custom headers were checked and made canonical when saved; checked
	// again here (one pass) because what this client sends must never be
	// a name Hermod owns or bytes HTTP cannot carry, whoever built r.
	for k, v := range r.Headers {
		if !webhooks.ValidHeaderName(k) || !webhooks.ValidHeaderValue(v) || webhooks.ReservedHeader(http.CanonicalHeaderKey(k)) {
			return Result{Class: Terminal, Err: fmt.Errorf("the custom header %q cannot be sent", k), Duration: time.Since(start)}
		}
		h[http.CanonicalHeaderKey(k)] = []string{v}
	}
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{c.userAgent}
	h["X-Hermod-Event-Type"] = []string{r.EventType}
	h["X-Hermod-Delivery-Id"] = []string{r.DeliveryID}
	h["Webhook-Id"] = []string{r.DeliveryID}
	h["Webhook-Timestamp"] = []string{strconv.FormatInt(ts, 10)}
	h["Webhook-Signature"] = []string{signer.Sign(r.DeliveryID, ts, r.Body)}
	if r.AuthHeader != "" {
		h["Authorization"] = []string{r.AuthHeader}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		res := Result{Class: Retryable, Err: describe(err, r.Timeout), Duration: time.Since(start)}
		if errors.Is(err, ErrRefusedDestination) {
			res.Class = Terminal
		}
		return res
	}
	excerpt := readExcerpt(resp.Body, r)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseRead))
	_ = resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode, Class: Classify(resp.StatusCode), Duration: time.Since(start),
		Excerpt: excerpt, ContentType: mediaType(resp.Header.Get("Content-Type"))}
	if resp.StatusCode == 429 || resp.StatusCode == 503 {
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if res.Class != Success {
		res.Err = answerError(resp.StatusCode, res.Excerpt)
	}
	return res
}

// secrets calls f with each secret value of r that a receiver's answer may
// echo: the auth header and its credential after the scheme, the custom
// header values and r.Redact. Values under 4 bytes are skipped (hiding them
// would hide ordinary text and protect nothing).
func (r Request) secrets(f func(string)) {
	each := func(v string) {
		if len(v) >= 4 {
			f(v)
		}
	}
	each(r.AuthHeader)
	if _, cred, ok := strings.Cut(r.AuthHeader, " "); ok {
		each(strings.TrimSpace(cred))
	}
	for _, v := range r.Redact {
		each(v)
	}
	for _, v := range r.Headers {
		each(v)
	}
}

// excerptBufs are the buffers answers are read into: an empty answer (a
// 204) costs no allocation, any other one the string it becomes.
var excerptBufs = sync.Pool{New: func() any { return new([ExcerptLen]byte) }}

// readExcerpt reads the first ExcerptLen bytes of an answer, as valid
// UTF-8 (invalid bytes replaced), with r's secrets replaced by <redacted>
// (an echo service, a proxy's error page). It reads as much further as the
// longest secret, so a secret across the cut is hidden too.
func readExcerpt(body io.Reader, r Request) string {
	longest := 0
	r.secrets(func(v string) { longest = max(longest, len(v)) })
	var buf []byte
	if longest == 0 {
		b := excerptBufs.Get().(*[ExcerptLen]byte)
		defer excerptBufs.Put(b)
		buf = b[:]
	} else {
		buf = make([]byte, ExcerptLen+longest)
	}
	n, _ := io.ReadFull(body, buf)
	if n == 0 {
		return ""
	}
	s := string(buf[:n])
	r.secrets(func(v string) { s = strings.ReplaceAll(s, v, "<redacted>") })
	if len(s) > ExcerptLen {
		s = s[:ExcerptLen]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// answerError is an attempt's error for a non-2xx answer: the status and
// the first non-empty line of the answer, bounded.
func answerError(status int, excerpt string) error {
	line := ""
	for _, l := range strings.Split(excerpt, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	if line == "" {
		return fmt.Errorf("HTTP %d", status)
	}
	if len(line) > errorLineLen {
		line = strings.ToValidUTF8(line[:errorLineLen], "") + "…"
	}
	return fmt.Errorf("HTTP %d: %s", status, line)
}

// mediaType is a Content-Type without its parameters, bounded (it is
// recorded with the excerpt).
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	if len(mt) > 100 || !utf8.ValidString(mt) {
		return ""
	}
	return mt
}

func describe(err error, timeout time.Duration) error {
	if errors.Is(err, ErrRefusedDestination) {
		var b strings.Builder
		b.WriteString("refused by the SSRF guard: ")
		msg := err.Error()
		if i := strings.Index(msg, ErrRefusedDestination.Error()); i >= 0 {
			msg = msg[i:]
		}
		b.WriteString(msg)
		b.WriteString(" (allow it with HERMOD_DELIVERY_ALLOW_CIDRS)")
		return fmt.Errorf("%w: %s", ErrRefusedDestination, b.String())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timeout after %s", timeout)
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return fmt.Errorf("connection error: %s", inner.Error())
		}
	}
	return fmt.Errorf("connection error: %s", err.Error())
}
