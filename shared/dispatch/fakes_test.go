package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Small fakes of the JetStream interfaces the engine uses. Every call that
// stores or settles something is written to one journal, so a test reads
// what happened and in which order.

type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// fakePub is a Publisher: it keeps what was published, acknowledges at once
// unless hold is set (then ack() does), and fails subjects in fail.
type fakePub struct {
	j    *journal
	mu   sync.Mutex
	msgs []*nats.Msg
	fail map[string]bool
	hold bool
	held []*fakeFuture
}

func (p *fakePub) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[m.Subject] {
		p.j.add("publish failed %s", m.Subject)
		return nil, errors.New("no responders")
	}
	p.j.add("publish %s", m.Subject)
	p.msgs = append(p.msgs, m)
	f := &fakeFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), j: p.j}
	if p.hold {
		p.held = append(p.held, f)
	} else {
		f.resolve()
	}
	return f, nil
}

// ackAll acknowledges the publishes held so far.
func (p *fakePub) ackAll() {
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, f := range held {
		f.resolve()
	}
}

func (p *fakePub) published() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*nats.Msg(nil), p.msgs...)
}

func (p *fakePub) on(t *testing.T, subject string) *nats.Msg {
	t.Helper()
	for _, m := range p.published() {
		if m.Subject == subject {
			return m
		}
	}
	t.Fatalf("nothing published on %s; journal %v", subject, p.j.all())
	return nil
}

type fakeFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
	j   *journal
}

func (f *fakeFuture) resolve() {
	f.j.add("puback %s", f.msg.Subject)
	f.ok <- &jetstream.PubAck{}
}
func (f *fakeFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *fakeFuture) Err() <-chan error            { return f.err }
func (f *fakeFuture) Msg() *nats.Msg               { return f.msg }

// fakeMsg is a jetstream.Msg that writes its settlement to the journal.
type fakeMsg struct {
	j         *journal
	subject   string
	header    nats.Header
	data      []byte
	seq       uint64
	delivered uint64
	noMeta    bool
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.noMeta {
		return nil, errors.New("not a JetStream message")
	}
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: m.delivered}, nil
}
func (m *fakeMsg) Data() []byte                    { return m.data }
func (m *fakeMsg) Headers() nats.Header            { return m.header }
func (m *fakeMsg) Subject() string                 { return m.subject }
func (m *fakeMsg) Reply() string                   { return "" }
func (m *fakeMsg) Ack() error                      { m.j.add("ack"); return nil }
func (m *fakeMsg) DoubleAck(context.Context) error { m.j.add("ack"); return nil }
func (m *fakeMsg) Nak() error                      { m.j.add("nak"); return nil }
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.j.add("nak %s", d)
	return nil
}
func (m *fakeMsg) InProgress() error           { m.j.add("in progress"); return nil }
func (m *fakeMsg) Term() error                 { m.j.add("term"); return nil }
func (m *fakeMsg) TermWithReason(string) error { m.j.add("term"); return nil }

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
	j      *journal
	mu     sync.Mutex
	answer delivery.Result
	block  chan struct{}
	calls  []delivery.Request
}

func (s *fakeSender) Send(_ context.Context, r delivery.Request) delivery.Result {
	s.j.add("send %s", r.DeliveryID)
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
	j      *journal
	pub    *fakePub
	hooks  *fakeHooks
	sender *fakeSender
	now    time.Time
	deps   Deps
}

func newBundle(t *testing.T) *bundle {
	t.Helper()
	j := &journal{}
	b := &bundle{j: j, pub: &fakePub{j: j}, sender: &fakeSender{j: j, answer: delivery.Result{StatusCode: 200, Class: delivery.Success,
		Duration: 12 * time.Millisecond}}, now: t0,
		hooks: &fakeHooks{hooks: map[string]*webhooks.Webhook{
			"w1": {ID: "w1", URL: "http://127.0.0.1:9/hook", Secret: "whsec_x", Enabled: true, MaxRetries: 5, TimeoutSeconds: 10},
		}}}
	b.deps = Deps{Pub: b.pub, Webhooks: b.hooks, Log: zerolog.Nop(), Now: func() time.Time { return b.now },
		PublishRetry: 50 * time.Millisecond}
	return b
}

// msg is a delivery message of webhook w1 on subject.
func (b *bundle) msg(subject string, meta streams.Meta) *fakeMsg {
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
	return &fakeMsg{j: b.j, subject: subject, header: m.Header, data: m.Data, seq: 42, delivered: 1}
}

func (b *bundle) worker(opts WorkerOptions) *Worker { return NewWorker(b.deps, b.sender, opts) }

var errTest = errors.New("store unreachable")

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// checkFor polls f until it returns nil, failing with its last error at
// the deadline.
func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
