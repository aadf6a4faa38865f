package dispatch

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// deliverN has w attempt n deliveries (d1..dn) successfully; their
// settlements wait in w's queue.
func deliverN(b *bundle, w *Worker, n int) {
	for i := 1; i <= n; i++ {
		w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d" + strconv.Itoa(i)}), t0))
	}
}

// batchIDs are the delivery ids of the outcomes a results message carries
// (the test fails on an unreadable one).
func batchIDs(t *testing.T, m *nats.Msg) []string {
	t.Helper()
	entries, err := streams.Entries(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if streams.EntryCount(m.Header) != len(entries) {
		t.Errorf("header says %d outcomes, the body holds %d", streams.EntryCount(m.Header), len(entries))
	}
	var ids []string
	for _, e := range entries {
		var o streams.Outcome
		if err := json.Unmarshal(e, &o); err != nil {
			t.Fatal(err)
		}
		if o.Status != streams.StatusSuccess || o.AttemptStatus != streams.StatusSuccess || o.StatusCode != 200 {
			t.Errorf("outcome %+v", o)
		}
		ids = append(ids, o.DeliveryID)
	}
	return ids
}

// entries counts the journal's entries equal to e.
func entries(b *bundle, e string) int {
	n := 0
	for _, got := range b.j.All() {
		if got == e {
			n++
		}
	}
	return n
}

// repeat is n times s.
func repeat(s string, n int) []string { return slices.Repeat([]string{s}, n) }

// The success outcomes queued together travel as one results message, and
// no delivery message of the batch is acked before that message's PubAck.
func TestWorkerBatchIsOnePublishAckedAfterItsPubAck(t *testing.T) {
	b := newBundle(t)
	b.pub.Hold = true
	w := b.worker(WorkerOptions{})
	deliverN(b, w, 5)
	sends := []string{"send d1", "send d2", "send d3", "send d4", "send d5"}
	done := make(chan struct{})
	go func() { defer close(done); settle(w) }()
	waitJournal(t, b, append(sends, "publish hermod.results.out")...)
	b.pub.AckAll()
	<-done
	wantJournal(t, b, slices.Concat(sends, []string{"publish hermod.results.out", "puback hermod.results.out"}, repeat("ack", 5))...)
	msgs := b.pub.Published()
	if len(msgs) != 1 || msgs[0].Header.Get(streams.HdrBatch) != "5" {
		t.Fatalf("published %d messages, want one batch of 5: %v", len(msgs), msgs)
	}
	if ids := batchIDs(t, msgs[0]); !slices.Equal(ids, []string{"d1", "d2", "d3", "d4", "d5"}) {
		t.Errorf("batch of %v", ids)
	}
}

// A batch whose publish fails is published again (the whole batch, one
// message) before any ack; when that keeps failing, none of its messages is
// acked (their leases expire and they are redelivered), and each delivery
// logs that its outcome was not recorded.
func TestWorkerBatchNotStoredLeavesEveryMessage(t *testing.T) {
	b := newBundle(t)
	b.pub.FailN = map[string]int{streams.OutcomeSubject: 1}
	w := b.worker(WorkerOptions{})
	deliverN(b, w, 3)
	settle(w)
	wantJournal(t, b, slices.Concat([]string{"send d1", "send d2", "send d3", "publish failed hermod.results.out",
		"publish hermod.results.out", "puback hermod.results.out"}, repeat("ack", 3))...)
	if msgs := b.pub.Published(); len(msgs) != 1 || len(batchIDs(t, msgs[0])) != 3 {
		t.Errorf("published %d messages, want one batch of 3", len(msgs))
	}

	b2 := newBundle(t)
	b2.pub.Fail = map[string]bool{streams.OutcomeSubject: true}
	var logs hermodtest.LogBuffer
	b2.deps.Log = zerolog.New(&logs)
	w2 := b2.worker(WorkerOptions{})
	deliverN(b2, w2, 3)
	settle(w2)
	// The first publish, then publishAll's tries until PublishRetry (50 ms
	// here) has passed; never an ack.
	for _, e := range b2.j.All() {
		if e != "publish failed hermod.results.out" && !strings.HasPrefix(e, "send ") {
			t.Errorf("journal %q: want only sends and failed publishes", b2.j.All())
			break
		}
	}
	if n := strings.Count(logs.String(), "outcome not recorded; the lease will expire"); n != 3 {
		t.Errorf("%d deliveries logged as not recorded, want 3: %s", n, logs.String())
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		if !strings.Contains(logs.String(), `"delivery_id":"`+id+`"`) {
			t.Errorf("no log line for %s", id)
		}
	}
}

// A batch holds at most its limit of outcomes and of bytes; a batch of one
// is an ordinary outcome message.
func TestWorkerBatchLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  func(outcome int) batchLimits
	}{
		{"outcomes", func(int) batchLimits { return batchLimits{max: 2, bytes: outcomeBatchBytes} }},
		{"bytes", func(outcome int) batchLimits { return batchLimits{max: outcomeBatchMax, bytes: 2*outcome + 1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBundle(t)
			w := b.worker(WorkerOptions{})
			deliverN(b, w, 5)
			first := <-w.settle // every outcome has the same size here
			w.batch = tc.lim(len(first.outcome))
			w.settleBatch([]settlement{first})
			settle(w)
			msgs := b.pub.Published()
			var sizes []int
			for _, m := range msgs {
				sizes = append(sizes, len(batchIDs(t, m)))
			}
			if !slices.Equal(sizes, []int{1, 2, 2}) {
				t.Errorf("batches of %v, want [1 2 2]", sizes)
			}
			if msgs[0].Header != nil {
				t.Errorf("a batch of one has headers %v", msgs[0].Header)
			}
			if n := entries(b, "ack"); n != 5 {
				t.Errorf("%d acks, want 5", n)
			}
		})
	}
}

// A lone delivery is published at once by the running settlers: nothing
// holds it back waiting for more (there is no linger).
func TestWorkerBatchDoesNotWaitForMore(t *testing.T) {
	b := newBundle(t)
	b.pub.Hold = true
	w := b.worker(WorkerOptions{Concurrency: 4})
	work := make(chan streams.Pulled)
	wait := w.start(work)
	work <- pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d1"}), t0)
	waitJournal(t, b, "send d1", "publish hermod.results.out")
	b.pub.AckAll()
	waitJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out", "ack")
	// The next one, alone too, is its own message.
	work <- pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d2"}), t0)
	waitJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out", "ack",
		"send d2", "publish hermod.results.out")
	b.pub.AckAll()
	close(work)
	wait()
	wantJournal(t, b, "send d1", "publish hermod.results.out", "puback hermod.results.out", "ack",
		"send d2", "publish hermod.results.out", "puback hermod.results.out", "ack")
	for i, m := range b.pub.Published() {
		if ids := batchIDs(t, m); !slices.Equal(ids, []string{"d" + strconv.Itoa(i+1)}) || m.Header != nil {
			t.Errorf("message %d: %v %v, want a single outcome", i, ids, m.Header)
		}
	}
}

// Settlements queued while the settlers wait for acknowledgements go out
// together once the settlers are free (each free settler takes what is
// queued: one or two messages for the six); every one is settled when the
// work ends.
func TestWorkerBatchGrowsWhileSettlersWait(t *testing.T) {
	b := newBundle(t)
	b.pub.Hold = true
	w := b.worker(WorkerOptions{Concurrency: 8})
	work := make(chan streams.Pulled)
	wait := w.start(work)
	published := func() (ids []string) {
		for _, m := range b.pub.Published() {
			ids = append(ids, batchIDs(t, m)...)
		}
		return ids
	}
	// Two lone deliveries keep both settlers waiting for their PubAcks.
	for i := 1; i <= 2; i++ {
		work <- pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d" + strconv.Itoa(i)}), t0)
		hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
			if n := len(b.pub.Published()); n != i {
				return errorf("%d published, want %d", n, i)
			}
			return nil
		})
	}
	for i := 3; i <= 8; i++ {
		work <- pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{DeliveryID: "d" + strconv.Itoa(i)}), t0)
	}
	hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := len(w.settle); n != 6 {
			return errorf("%d settlements queued, want 6", n)
		}
		return nil
	})
	if n := entries(b, "ack"); n != 0 {
		t.Fatalf("acked before any PubAck: %q", b.j.All())
	}
	b.pub.AckAll() // frees the settlers: they take the six queued
	hermodtest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if ids := published(); len(ids) != 8 {
			return errorf("published %v", ids)
		}
		return nil
	})
	if n := len(b.pub.Published()); n > 4 {
		t.Errorf("the six queued went out in %d messages, want at most 2", n-2)
	}
	if n := entries(b, "ack"); n != 2 {
		t.Errorf("%d acks before the second PubAcks, want 2: %q", n, b.j.All())
	}
	b.pub.AckAll()
	close(work)
	wait()
	ids := published()
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"}) {
		t.Errorf("published %v", ids)
	}
	if n := entries(b, "ack"); n != 8 {
		t.Errorf("%d acks, want 8: %q", n, b.j.All())
	}
}
