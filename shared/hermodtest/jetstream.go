package hermodtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Small fakes of the JetStream interfaces the engine and the router use,
// for unit tests of their logic (integration tests use a real server).
// Every call that stores or settles something is written to one Journal,
// so a test reads what happened and in which order.

// Journal records what happened, in order.
type Journal struct {
	mu      sync.Mutex
	entries []string
}

// Add records one entry.
func (j *Journal) Add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

// All is every entry so far.
func (j *Journal) All() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// FakePub is a publisher (PublishMsgAsync): it keeps what was published,
// acknowledges at once unless Hold is set (then AckAll does), and fails the
// subjects in Fail. Journal: "publish <subject>", "publish failed
// <subject>", "puback <subject>".
type FakePub struct {
	J    *Journal
	mu   sync.Mutex
	msgs []*nats.Msg
	Fail map[string]bool
	// FailN fails the first N publishes on a subject, then lets them through.
	FailN map[string]int
	Hold  bool
	held  []*FakeFuture
}

// PublishMsgAsync implements the publisher.
func (p *FakePub) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Fail[m.Subject] || p.FailN[m.Subject] > 0 {
		if p.FailN[m.Subject] > 0 {
			p.FailN[m.Subject]--
		}
		p.J.Add("publish failed %s", m.Subject)
		return nil, errors.New("no responders")
	}
	p.J.Add("publish %s", m.Subject)
	p.msgs = append(p.msgs, m)
	f := &FakeFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1), j: p.J}
	if p.Hold {
		p.held = append(p.held, f)
	} else {
		f.resolve()
	}
	return f, nil
}

// AckAll acknowledges the publishes held so far.
func (p *FakePub) AckAll() {
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, f := range held {
		f.resolve()
	}
}

// AckSubject acknowledges the publishes on subject held so far, and no
// other.
func (p *FakePub) AckSubject(subject string) {
	p.mu.Lock()
	var mine []*FakeFuture
	rest := p.held[:0]
	for _, f := range p.held {
		if f.msg.Subject == subject {
			mine = append(mine, f)
		} else {
			rest = append(rest, f)
		}
	}
	p.held = rest
	p.mu.Unlock()
	for _, f := range mine {
		f.resolve()
	}
}

// Published is every message published so far.
func (p *FakePub) Published() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*nats.Msg(nil), p.msgs...)
}

// On is the first message published on subject (the test fails without one).
func (p *FakePub) On(t testing.TB, subject string) *nats.Msg {
	t.Helper()
	for _, m := range p.Published() {
		if m.Subject == subject {
			return m
		}
	}
	t.Fatalf("nothing published on %s; journal %v", subject, p.J.All())
	return nil
}

// FakeFuture is a PubAckFuture.
type FakeFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
	j   *Journal
}

func (f *FakeFuture) resolve() {
	f.j.Add("puback %s", f.msg.Subject)
	f.ok <- &jetstream.PubAck{}
}

// Ok implements jetstream.PubAckFuture.
func (f *FakeFuture) Ok() <-chan *jetstream.PubAck { return f.ok }

// Err implements jetstream.PubAckFuture.
func (f *FakeFuture) Err() <-chan error { return f.err }

// Msg implements jetstream.PubAckFuture.
func (f *FakeFuture) Msg() *nats.Msg { return f.msg }

// FakeMsg is a jetstream.Msg that writes its settlement to the Journal:
// "ack", "nak", "nak <delay>", "in progress", "term".
type FakeMsg struct {
	J         *Journal
	Subj      string
	Header    nats.Header
	Body      []byte
	Seq       uint64    // stream sequence
	Delivered uint64    // delivery count
	Stored    time.Time // when the stream stored it
	NoMeta    bool      // Metadata fails
}

// Metadata implements jetstream.Msg.
func (m *FakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.NoMeta {
		return nil, errors.New("not a JetStream message")
	}
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.Seq}, NumDelivered: m.Delivered, Timestamp: m.Stored}, nil
}

// Data implements jetstream.Msg.
func (m *FakeMsg) Data() []byte { return m.Body }

// Headers implements jetstream.Msg.
func (m *FakeMsg) Headers() nats.Header { return m.Header }

// Subject implements jetstream.Msg.
func (m *FakeMsg) Subject() string { return m.Subj }

// Reply implements jetstream.Msg.
func (m *FakeMsg) Reply() string { return "" }

// Ack implements jetstream.Msg.
func (m *FakeMsg) Ack() error { m.J.Add("ack"); return nil }

// DoubleAck implements jetstream.Msg.
func (m *FakeMsg) DoubleAck(context.Context) error { m.J.Add("ack"); return nil }

// Nak implements jetstream.Msg.
func (m *FakeMsg) Nak() error { m.J.Add("nak"); return nil }

// NakWithDelay implements jetstream.Msg.
func (m *FakeMsg) NakWithDelay(d time.Duration) error { m.J.Add("nak %s", d); return nil }

// InProgress implements jetstream.Msg.
func (m *FakeMsg) InProgress() error { m.J.Add("in progress"); return nil }

// Term implements jetstream.Msg.
func (m *FakeMsg) Term() error { m.J.Add("term"); return nil }

// TermWithReason implements jetstream.Msg.
func (m *FakeMsg) TermWithReason(string) error { m.J.Add("term"); return nil }

// JetStream connects to the server at url for t and returns the connection
// and its JetStream context, closed when t ends.
func JetStream(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
