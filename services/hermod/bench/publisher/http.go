package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpSender posts events to Hermod's ingest endpoint, keeping up to conns
// connections open.
type httpSender struct {
	url, key, eventType string
	hc                  *http.Client
}

func newHTTPSender(o Options, conns int) *httpSender {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: time.Minute}
	return &httpSender{url: o.APIURL + "/api/v1/events", key: o.AdminKey, eventType: o.EventType,
		hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (s *httpSender) send(ctx context.Context, id string, sentNS int64) error {
	body, err := json.Marshal(map[string]any{"id": id, "event_type": s.eventType, "data": json.RawMessage(eventData(sentNS))})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingest: %d %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

func (s *httpSender) finish(context.Context) []error { return nil }

func (s *httpSender) close() { s.hc.CloseIdleConnections() }
