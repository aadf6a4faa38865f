package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// fakeHooks is a Webhooks with a fixed set; err makes a miss fail.
type fakeHooks struct {
	mu    sync.Mutex
	hooks map[string]*webhooks.Webhook
	err   error
}

func (h *fakeHooks) Get(id string) (*webhooks.Webhook, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.hooks[id]
	return w, ok
}

func (h *fakeHooks) Refresh(_ context.Context, id string) (*webhooks.Webhook, error) {
	if h.err != nil {
		return nil, h.err
	}
	w, _ := h.Get(id)
	return w, nil
}

// fakeSender answers every attempt with answer (and counts them); block,
// when set, holds each attempt until it is closed.
type fakeSender struct {
	j      *hermodtest.Journal
	mu     sync.Mutex
	answer delivery.Result
	block  chan struct{}
	calls  []delivery.Request
}

func (s *fakeSender) Send(_ context.Context, r delivery.Request) delivery.Result {
	s.j.Add("send %s", r.DeliveryID)
	s.mu.Lock()
	s.calls = append(s.calls, r)
	res, block := s.answer, s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	return res
}

func (s *fakeSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// bundle is one test's engine with its fakes and a stubbed clock.
type bundle struct {
	j      *hermodtest.Journal
	pub    *hermodtest.FakePub
	hooks  *fakeHooks
	sender *fakeSender
	now    time.Time
	deps   Deps
}

func newBundle(t *testing.T) *bundle {
	t.Helper()
	j := &hermodtest.Journal{}
	b := &bundle{j: j, pub: &hermodtest.FakePub{J: j}, sender: &fakeSender{j: j, answer: delivery.Result{StatusCode: 200, Class: delivery.Success,
		Duration: 12 * time.Millisecond}}, now: t0,
		hooks: &fakeHooks{hooks: map[string]*webhooks.Webhook{
			"w1": {ID: "w1", URL: "http://127.0.0.1:9/hook", Secret: "whsec_x", Enabled: true, MaxRetries: 5, TimeoutSeconds: 10},
		}}}
	b.deps = Deps{Pub: b.pub, Webhooks: b.hooks, Log: zerolog.Nop(), Now: func() time.Time { return b.now },
		PublishRetry: 50 * time.Millisecond}
	return b
}

// msg is a delivery message of webhook w1 on subject.
func (b *bundle) msg(subject string, meta streams.Meta) *hermodtest.FakeMsg {
	if meta.DeliveryID == "" {
		meta.DeliveryID = "d1"
	}
	if meta.WebhookID == "" {
		meta.WebhookID = "w1"
	}
	if meta.EventID == "" {
		meta.EventID, meta.EventType, meta.CreatedAt = "e1", "deployment.applied", t0.Add(-time.Second).UnixMilli()
	}
	m := streams.NewMsg(subject, meta.DeliveryID, meta, []byte(`{"id":"e1"}`))
	return &hermodtest.FakeMsg{J: b.j, Subj: subject, Header: m.Header, Body: m.Data, Seq: 42, Delivered: 1}
}

func (b *bundle) worker(opts WorkerOptions) *Worker { return NewWorker(b.deps, b.sender, opts) }

var errTest = errors.New("store unreachable")

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
