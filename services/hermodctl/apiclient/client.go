// Package apiclient is a typed client of Hermod's REST API v1, as hermodctl
// uses it. Every call returns the decoded answer and the answer's bytes as
// the server sent them (for output in JSON), or an *Error carrying the API's
// JSON error envelope.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxResponseBytes bounds an answer's body (the largest API answer is a
// delivery with its payload and attempt history).
const MaxResponseBytes = 32 << 20

// Client calls one Hermod API with one admin key.
type Client struct {
	base      *url.URL
	key       string
	hc        *http.Client
	userAgent string
}

// New returns a client of the API at server (an http or https URL) using
// the admin key key. hc nil means a client with a 60 s timeout.
func New(server, key, userAgent string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want an http:// or https:// URL with a host", server)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: u, key: key, hc: hc, userAgent: userAgent}, nil
}

// Server is the API's base URL.
func (c *Client) Server() string { return c.base.String() }

// Error is a failed request: the API's error envelope when it sent one.
type Error struct {
	Status    int            `json:"-"`
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	RequestID string         `json:"request_id"`
	// Body is the answer as it came (the envelope, or whatever else the
	// server or a proxy answered).
	Body []byte `json:"-"`
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	s := e.Message
	if f, ok := e.Details["field"].(string); ok && !strings.Contains(s, f) {
		s += " (field " + f + ")"
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", s, e.Code, e.Status)
}

// Raw is an answer's body as the server sent it.
type Raw = json.RawMessage

// do sends a request and returns the answer's body; a status of 300 or more
// is an *Error. body, when not nil, is sent as JSON (a []byte as is).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (Raw, error) {
	// path holds escaped segments (seg): the URL keeps them escaped, so an
	// id with a slash stays one segment.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	u.Path = p
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("encoding the request: %w", err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s at %s: %w", method, path, c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(b) > MaxResponseBytes {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d bytes", method, path, MaxResponseBytes)
	}
	if resp.StatusCode >= 300 {
		return nil, errorFrom(resp.StatusCode, b)
	}
	return b, nil
}

// errorFrom reads the error envelope of an answer; anything else becomes
// an Error with the status text and the start of the body.
func errorFrom(status int, body []byte) *Error {
	e := &Error{Status: status, Body: body}
	if json.Unmarshal(body, e) == nil && e.Code != "" && e.Message != "" {
		return e
	}
	e.Code, e.Message, e.Details, e.RequestID = "", http.StatusText(status), nil, ""
	if t := strings.TrimSpace(string(body)); t != "" {
		if len(t) > 200 {
			t = t[:200] + "…"
		}
		e.Message += ": " + t
	}
	return e
}

// call is do with the answer decoded into a T.
func call[T any](ctx context.Context, c *Client, method, path string, query url.Values, body any) (T, Raw, error) {
	var v T
	raw, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return v, nil, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, raw, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return v, raw, nil
}

// IsStatus reports whether err is an API error with that HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

func seg(id string) string { return url.PathEscape(id) }

// PageOptions select one page of a list.
type PageOptions struct {
	Limit  int    // 0: the server's default
	Cursor string // "": the first page
}

func (o PageOptions) query() url.Values {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}
