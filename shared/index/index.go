// Package index keeps an in-memory copy of every webhook that follows
// changes: a change notice over NATS reloads one webhook from Redis, a cheap
// version poll catches a lost notice, and a periodic full resync is the
// backstop. Readers never wait for I/O.
package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// Source loads webhooks; *store.Store implements it.
type Source interface {
	GetWebhook(ctx context.Context, id string) (*webhooks.Webhook, error)
	AllWebhooks(ctx context.Context) ([]*webhooks.Webhook, error)
	Version(ctx context.Context) (int64, error)
}

// Options tune the index.
type Options struct {
	PollInterval   time.Duration // version poll (default 100ms)
	ResyncInterval time.Duration // full resync (default 60s)
	// LookupOnly is for an index that only looks webhooks up by id (the
	// deliverer): its sets do not compile filter expressions, and must not
	// be matched against.
	LookupOnly bool
}

// Index is the live webhook set.
type Index struct {
	src  Source
	nc   *nats.Conn
	log  zerolog.Logger
	opts Options

	set      atomic.Pointer[matching.Set]
	rebuild  sync.Mutex // one rebuild at a time, each from the last
	mu       sync.Mutex
	byID     map[string]*webhooks.Webhook
	dirty    chan struct{}
	version  atomic.Int64
	onChange []func(id string, w *webhooks.Webhook)

	id      string         // announced on AliveSubject
	notices chan *nats.Msg // change notices, subscribed by Load
	subs    []*nats.Subscription
}

// New creates an index; call Start to load it and follow changes.
func New(src Source, nc *nats.Conn, log zerolog.Logger, opts Options) *Index {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 60 * time.Second
	}
	ix := &Index{src: src, nc: nc, log: log, opts: opts, byID: map[string]*webhooks.Webhook{}, dirty: make(chan struct{}, 1),
		id: nats.NewInbox(), notices: make(chan *nats.Msg, 4096)}
	ix.set.Store(matching.Build(nil))
	return ix
}

// OnChange registers f, called after a webhook changed (w nil: deleted).
// Register before Start.
func (ix *Index) OnChange(f func(id string, w *webhooks.Webhook)) {
	ix.onChange = append(ix.onChange, f)
}

// Set returns the current immutable set.
func (ix *Index) Set() *matching.Set { return ix.set.Load() }

// Get returns a webhook by id from the current set.
func (ix *Index) Get(id string) (*webhooks.Webhook, bool) { return ix.set.Load().Get(id) }

// Refresh reloads one webhook now (used on an index miss).
func (ix *Index) Refresh(ctx context.Context, id string) (*webhooks.Webhook, error) {
	w, err := ix.src.GetWebhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		ix.apply(id, nil)
		ix.rebuildNow()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ix.apply(id, w)
	ix.rebuildNow()
	return w, nil
}

// Component is the index as a lifecycle component, started the same way
// in every binary: Start loads every webhook (nothing runs on an empty
// index), Run follows the changes until the workers drained (it is a
// Server component: draining deliveries still look webhooks up).
func (ix *Index) Component() lifecycle.Component {
	return lifecycle.Component{Name: "webhook index", Start: ix.Load, Run: ix.Run, Server: true}
}

// ID is the name this index announces itself by on AliveSubject.
func (ix *Index) ID() string { return ix.id }

// Load subscribes to change notices, loads every webhook from the store
// and announces the index. Subscribing first means no change made after
// Load returned is missed; announcing before the process is ready means
// an API that answers a change waits for this index.
func (ix *Index) Load(ctx context.Context) error {
	if ix.subs == nil {
		sub, err := ix.nc.Subscribe(streams.ChangesSubject, func(m *nats.Msg) {
			select {
			case ix.notices <- m:
			default: // overflow: the version poll resyncs
			}
		})
		if err != nil {
			return fmt.Errorf("webhook index: %w", err)
		}
		probe, err := ix.nc.Subscribe(ProbeSubject, func(*nats.Msg) { _ = ix.nc.Publish(AliveSubject, []byte(ix.id)) })
		if err != nil {
			_ = sub.Unsubscribe()
			return fmt.Errorf("webhook index: %w", err)
		}
		ix.subs = []*nats.Subscription{sub, probe}
	}
	if err := ix.resync(ctx); err != nil {
		return fmt.Errorf("load webhook index: %w", err)
	}
	_ = ix.nc.Publish(AliveSubject, []byte(ix.id))
	return nil
}

// Run follows change notices (and the version poll and periodic resync)
// and announces this index until ctx ends. Load must have succeeded.
func (ix *Index) Run(ctx context.Context) error {
	if ix.subs == nil {
		return errors.New("webhook index: Run before Load")
	}
	defer func() {
		for _, s := range ix.subs {
			_ = s.Unsubscribe()
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ix.announce(ctx, ix.id)
	}()
	ix.follow(ctx, ix.notices)
	wg.Wait()
	return nil
}

// announce tells the API that this index exists, so a change waits for it.
func (ix *Index) announce(ctx context.Context, id string) {
	t := time.NewTicker(AliveInterval)
	defer t.Stop()
	for {
		_ = ix.nc.Publish(AliveSubject, []byte(id))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (ix *Index) follow(ctx context.Context, notices <-chan *nats.Msg) {
	poll := time.NewTicker(ix.opts.PollInterval)
	defer poll.Stop()
	resync := time.NewTicker(ix.opts.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-notices:
			// Take every notice already waiting, rebuild once, then confirm.
			batch := []*nats.Msg{m}
			for more := true; more && len(batch) < 1000; {
				select {
				case m2 := <-notices:
					batch = append(batch, m2)
				default:
					more = false
				}
			}
			for _, n := range batch {
				ix.reload(ctx, string(n.Data))
			}
			ix.rebuildNow()
			for _, n := range batch {
				if n.Reply != "" {
					_ = n.Respond(nil)
				}
			}
		case <-poll.C:
			v, err := ix.src.Version(ctx)
			if err != nil {
				continue // Redis down: keep serving the last known set
			}
			if v != ix.version.Load() {
				if err := ix.resync(ctx); err != nil {
					ix.log.Warn().Err(err).Msg("webhook index resync failed")
				}
			}
		case <-resync.C:
			if err := ix.resync(ctx); err != nil {
				ix.log.Warn().Err(err).Msg("webhook index resync failed")
			}
		}
	}
}

func (ix *Index) reload(ctx context.Context, id string) {
	w, err := ix.src.GetWebhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		ix.apply(id, nil)
		return
	}
	if err != nil {
		ix.log.Warn().Err(err).Str("webhook_id", id).Msg("reload webhook failed; the version poll retries")
		ix.version.Store(-1)
		return
	}
	ix.apply(id, w)
}

func (ix *Index) apply(id string, w *webhooks.Webhook) {
	ix.mu.Lock()
	old, had := ix.byID[id]
	if w == nil {
		delete(ix.byID, id)
	} else {
		ix.byID[id] = w
	}
	ix.mu.Unlock()
	if (had && w == nil) || w != nil && (old == nil || !old.UpdatedAt.Equal(w.UpdatedAt)) {
		for _, f := range ix.onChange {
			f(id, w)
		}
	}
}

// rebuildNow replaces the set; a filter expression is compiled only when
// its webhook's expression changed since the last set.
func (ix *Index) rebuildNow() {
	ix.rebuild.Lock()
	defer ix.rebuild.Unlock()
	ix.mu.Lock()
	ws := make([]*webhooks.Webhook, 0, len(ix.byID))
	for _, w := range ix.byID {
		ws = append(ws, w)
	}
	ix.mu.Unlock()
	if ix.opts.LookupOnly {
		ix.set.Store(matching.LookupOnly(ws))
		return
	}
	ix.set.Store(matching.Rebuild(ix.set.Load(), ws))
}

func (ix *Index) resync(ctx context.Context) error {
	v, err := ix.src.Version(ctx)
	if err != nil {
		return err
	}
	all, err := ix.src.AllWebhooks(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(all))
	for _, w := range all {
		seen[w.ID] = true
		ix.apply(w.ID, w)
	}
	ix.mu.Lock()
	var gone []string
	for id := range ix.byID {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	ix.mu.Unlock()
	for _, id := range gone {
		ix.apply(id, nil)
	}
	ix.rebuildNow()
	ix.version.Store(v)
	return nil
}

// AliveSubject carries the presence of every index (core NATS).
const AliveSubject = streams.IndexAliveSubject

// ProbeSubject asks every index to announce itself now (a starting API).
const ProbeSubject = streams.IndexProbeSubject

// AliveInterval is how often an index announces itself.
const AliveInterval = time.Second

// Notifier tells every index about a change and waits until each index it
// knows of has applied it, so a change applies to every event published
// after the API answered. It waits at most MaxWait (then the version poll
// guarantees the change within one poll interval).
type Notifier struct {
	nc          *nats.Conn
	MaxWait     time.Duration
	log         zerolog.Logger
	unconfirmed prometheus.Counter
	mu          sync.Mutex
	alive       map[string]time.Time
	sub         *nats.Subscription
}

// NewNotifier starts listening for indexes. A change that some index did not
// confirm within MaxWait is logged on log (warn) and counted on unconfirmed
// (nil: not counted).
func NewNotifier(nc *nats.Conn, log zerolog.Logger, unconfirmed prometheus.Counter) (*Notifier, error) {
	n := &Notifier{nc: nc, MaxWait: 250 * time.Millisecond, log: log, unconfirmed: unconfirmed, alive: map[string]time.Time{}}
	sub, err := nc.Subscribe(AliveSubject, func(m *nats.Msg) {
		n.mu.Lock()
		n.alive[string(m.Data)] = time.Now()
		n.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	n.sub = sub
	// Ask the indexes to announce now rather than within a second.
	if err := nc.Publish(ProbeSubject, nil); err == nil {
		_ = nc.FlushTimeout(time.Second)
	}
	return n, nil
}

// Close stops listening.
func (n *Notifier) Close() { _ = n.sub.Unsubscribe() }

// Expect adds an index the notifier knows of without hearing it announce
// itself (the all-in-one's own index): a change made before its first
// announcement arrived still waits for it.
func (n *Notifier) Expect(id string) {
	n.mu.Lock()
	n.alive[id] = time.Now()
	n.mu.Unlock()
}

func (n *Notifier) expected() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	cut := time.Now().Add(-3 * AliveInterval)
	c := 0
	for id, t := range n.alive {
		if t.Before(cut) {
			delete(n.alive, id)
			continue
		}
		c++
	}
	return c
}

// Notify publishes a change notice for webhook id and waits for the indexes.
// When MaxWait passes before every known index confirmed, it logs and counts
// the change as unconfirmed and still returns nil: the change is stored, and
// an index that missed the notice applies it at its next version poll (an
// index that stopped answering leaves the known set within 3 AliveIntervals).
// It returns an error only when the notice could not be published, or ctx
// ended first.
func (n *Notifier) Notify(ctx context.Context, id string) error {
	want := n.expected()
	inbox := nats.NewInbox()
	replies := make(chan struct{}, 64)
	sub, err := n.nc.Subscribe(inbox, func(*nats.Msg) {
		select {
		case replies <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(streams.ChangesSubject, inbox, []byte(id)); err != nil {
		return err
	}
	if want == 0 {
		return nil
	}
	timeout := time.NewTimer(n.MaxWait)
	defer timeout.Stop()
	for got := 0; got < want; {
		select {
		case <-replies:
			got++
		case <-timeout.C:
			if n.unconfirmed != nil {
				n.unconfirmed.Inc()
			}
			n.log.Warn().Str("webhook_id", id).Int("indexes", want).Int("unconfirmed", want-got).
				Dur("waited", n.MaxWait).Msg("webhook change not confirmed by every index in time; the version poll applies it")
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
