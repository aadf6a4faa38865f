package dispatch

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// fakeHeld is a HeldStream in memory.
type fakeHeld struct {
	j    *hermodtest.Journal
	mu   sync.Mutex
	msgs map[uint64]*jetstream.RawStreamMsg
	next uint64
}

func (h *fakeHeld) put(subject string, meta streams.Meta) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	m := streams.NewMsg(subject, "", meta, []byte(`{"id":"e1"}`))
	h.msgs[h.next] = &jetstream.RawStreamMsg{Subject: subject, Sequence: h.next, Header: m.Header, Data: m.Data}
}

func (h *fakeHeld) Info(context.Context, ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	subjects := map[string]uint64{}
	for _, m := range h.msgs {
		subjects[m.Subject]++
	}
	return &jetstream.StreamInfo{State: jetstream.StreamState{Subjects: subjects}}, nil
}

func (h *fakeHeld) Purge(_ context.Context, opts ...jetstream.StreamPurgeOpt) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.j.Add("purge")
	h.msgs = map[uint64]*jetstream.RawStreamMsg{}
	return nil
}

func (h *fakeHeld) GetMsg(_ context.Context, seq uint64, _ ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seqs := make([]uint64, 0, len(h.msgs))
	for s := range h.msgs {
		if s >= seq {
			seqs = append(seqs, s)
		}
	}
	if len(seqs) == 0 {
		return nil, jetstream.ErrMsgNotFound
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return h.msgs[seqs[0]], nil
}

func (h *fakeHeld) DeleteMsg(_ context.Context, seq uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.j.Add("delete %d", seq)
	delete(h.msgs, seq)
	return nil
}

func newHeld(b *bundle) *fakeHeld {
	return &fakeHeld{j: b.j, msgs: map[uint64]*jetstream.RawStreamMsg{}}
}

// Resumed: each held delivery is republished where its webhook's
// deliveries go, without its held time, then deleted.
func TestReleaserReleasesAResumedWebhook(t *testing.T) {
	b := newBundle(t)
	held := newHeld(b)
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d1", WebhookID: "w1", HeldSince: t0.UnixMilli(), Attempts: 1})
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d2", WebhookID: "w1", HeldSince: t0.UnixMilli()})
	if err := NewReleaser(b.deps, 0).Pass(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	wantJournal(t, b, "publish hermod.dlv.w1", "puback hermod.dlv.w1", "delete 1",
		"publish hermod.dlv.w1", "puback hermod.dlv.w1", "delete 2")
	m := b.pub.Published()[0]
	meta, _ := streams.ParseMeta(m.Header)
	if meta.HeldSince != 0 || meta.Attempts != 1 || m.Header.Get(streams.HdrMsgID) != "d1:held:1" {
		t.Errorf("released %+v id %q", meta, m.Header.Get(streams.HdrMsgID))
	}
}

// Still paused: nothing moves until the oldest expires; an expired one
// dies (outcome and dead letter stored before it is deleted).
func TestReleaserKeepsThenExpires(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].Enabled = false
	b.deps.Rules.MaxHold = time.Hour
	held := newHeld(b)
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d1", WebhookID: "w1", HeldSince: t0.Add(-2 * time.Hour).UnixMilli()})
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d2", WebhookID: "w1", HeldSince: t0.Add(-time.Minute).UnixMilli()})
	if err := NewReleaser(b.deps, 0).Pass(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	wantJournal(t, b, "publish hermod.results.out", "puback hermod.results.out",
		"publish hermod.dead.w1", "puback hermod.dead.w1", "delete 1")
	var o streams.Outcome
	if err := json.Unmarshal(b.pub.On(t, streams.OutcomeSubject).Data, &o); err != nil {
		t.Fatal(err)
	}
	if o.DeliveryID != "d1" || o.Status != streams.StatusDead || o.Reason != streams.ReasonExpired || o.Error == "" {
		t.Errorf("outcome %+v", o)
	}
}

// A dead letter that cannot be stored keeps the held delivery.
func TestReleaserExpiredNotStoredIsKept(t *testing.T) {
	b := newBundle(t)
	b.hooks.hooks["w1"].Enabled = false
	b.deps.Rules.MaxHold = time.Hour
	b.pub.Fail = map[string]bool{streams.DeadSubject("w1"): true}
	held := newHeld(b)
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d1", WebhookID: "w1", HeldSince: t0.Add(-2 * time.Hour).UnixMilli()})
	if err := NewReleaser(b.deps, 0).Pass(context.Background(), held); err == nil {
		t.Error("no error for an expired delivery whose dead letter was not stored")
	}
	if len(held.msgs) != 1 {
		t.Errorf("held delivery deleted: %v", b.j.All())
	}
}

func TestReleaserPurgesADeletedWebhook(t *testing.T) {
	b := newBundle(t)
	delete(b.hooks.hooks, "w1")
	held := newHeld(b)
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d1", WebhookID: "w1"})
	if err := NewReleaser(b.deps, 0).Pass(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	wantJournal(t, b, "purge")
}

// A forged held message (its header names another webhook) is deleted,
// never released.
func TestReleaserDeletesForged(t *testing.T) {
	b := newBundle(t)
	held := newHeld(b)
	held.put(streams.HeldSubject("w1"), streams.Meta{DeliveryID: "d1", WebhookID: "w2"})
	if err := NewReleaser(b.deps, 0).Pass(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	wantJournal(t, b, "delete 1")
}

// A resume (or a delete) wakes the releaser; a pause does not.
func TestReleaserWakesOnResume(t *testing.T) {
	b := newBundle(t)
	r := NewReleaser(b.deps, 0)
	r.WebhookChanged("w1", b.hooks.hooks["w1"])
	r.WebhookChanged("w1", nil) // a second wake while one is pending is dropped
	select {
	case <-r.wake:
	default:
		t.Fatal("no wake after a resume")
	}
	paused := *b.hooks.hooks["w1"]
	paused.Enabled = false
	r.WebhookChanged("w1", &paused)
	select {
	case <-r.wake:
		t.Fatal("woken by a pause")
	default:
	}
}
