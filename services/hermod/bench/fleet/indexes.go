package fleet

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/streams"
)

// IndexWatch follows the presence announcements of the pipeline's webhook
// indexes, to find out when all of them have applied a bulk of changes.
type IndexWatch struct {
	tb    testing.TB
	nc    *nats.Conn
	since time.Time
	sub   *nats.Subscription
	mu    sync.Mutex
	ids   map[string]bool
}

// WatchIndexes starts counting the indexes: each announces itself when
// probed and then every index.AliveInterval.
func WatchIndexes(tb testing.TB, nc *nats.Conn) *IndexWatch {
	tb.Helper()
	w := &IndexWatch{tb: tb, nc: nc, since: time.Now(), ids: map[string]bool{}}
	sub, err := nc.Subscribe(index.AliveSubject, func(m *nats.Msg) {
		w.mu.Lock()
		w.ids[string(m.Data)] = true
		w.mu.Unlock()
	})
	if err != nil {
		tb.Fatal(err)
	}
	w.sub = sub
	if err := nc.Publish(index.ProbeSubject, nil); err != nil {
		tb.Fatal(err)
	}
	return w
}

// Settle waits until every index has applied every change made so far. An
// index takes change notices in order and confirms one only once it has
// applied it and every notice before it, so a notice of our own (for no
// webhook) confirmed by each index proves it. Only after one
// index.AliveInterval has every index announced itself at least once.
func (w *IndexWatch) Settle() {
	w.tb.Helper()
	defer func() { _ = w.sub.Unsubscribe() }()
	hermodtest.CheckFor(w.tb, time.Minute, 50*time.Millisecond, func() error {
		if left := index.AliveInterval - time.Since(w.since); left > 0 {
			return fmt.Errorf("indexes may still announce themselves for %s", left)
		}
		w.mu.Lock()
		want := len(w.ids)
		w.mu.Unlock()
		if want == 0 {
			return fmt.Errorf("no webhook index announced itself")
		}
		inbox := nats.NewInbox()
		replies, err := w.nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer func() { _ = replies.Unsubscribe() }()
		if err := w.nc.PublishRequest(streams.ChangesSubject, inbox, []byte("fleet-settle")); err != nil {
			return err
		}
		for got := 0; got < want; got++ {
			if _, err := replies.NextMsg(5 * time.Second); err != nil {
				return fmt.Errorf("%d of %d indexes confirmed a change notice: %w", got, want, err)
			}
		}
		return nil
	})
}
