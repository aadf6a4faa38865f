// Package receiver is the external benchmark's webhook receiver: it answers
// deliveries by path prefix (fast, slow, failing) and tallies, per prefix,
// the requests, the distinct webhook-ids, the duplicates and the latency
// from the send time the publisher put into each event.
package receiver

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Counts is what arrived at one path prefix.
type Counts struct {
	// Requests is every request, retries and duplicates included.
	Requests int `json:"requests"`
	// Distinct is the number of different webhook-ids (deliveries).
	Distinct int `json:"distinct"`
	// Duplicates is Requests beyond the first of each webhook-id: a
	// delivery received again (a retry, where the receiver failed it).
	Duplicates int `json:"duplicates"`
	// NoID counts requests without a webhook-id header; NoSendTime those
	// whose event carried no data.sent_ns (no latency for them).
	NoID       int `json:"no_id"`
	NoSendTime int `json:"no_send_time"`
	// FirstNS and LastNS are the first and the last arrival (unix ns).
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
}

// Stats is Counts with the latency of each delivery's first arrival:
// arrival time minus the event's data.sent_ns.
type Stats struct {
	Counts
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// Span is the time from the first arrival to the last.
func (c Counts) Span() time.Duration { return time.Duration(c.LastNS - c.FirstNS) }

type prefixTally struct {
	Counts
	seen      map[string]struct{}
	latencies []time.Duration
}

// Tally counts arrivals per path prefix; safe for concurrent use.
type Tally struct {
	mu       sync.Mutex
	prefixes map[string]*prefixTally
}

// NewTally returns an empty tally.
func NewTally() *Tally { return &Tally{prefixes: map[string]*prefixTally{}} }

// Record counts one request at prefix that arrived at arrived, carrying
// webhookID ("" when absent) for an event sent at sentNS (0 when unknown).
func (t *Tally) Record(prefix, webhookID string, arrived time.Time, sentNS int64) {
	at := arrived.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.prefixes[prefix]
	if p == nil {
		p = &prefixTally{seen: map[string]struct{}{}, Counts: Counts{FirstNS: at}}
		t.prefixes[prefix] = p
	}
	p.Requests++
	p.FirstNS, p.LastNS = min(p.FirstNS, at), max(p.LastNS, at)
	if webhookID == "" {
		p.NoID++
		return
	}
	if _, dup := p.seen[webhookID]; dup {
		p.Duplicates++
		return
	}
	p.seen[webhookID] = struct{}{}
	p.Distinct++
	if sentNS == 0 {
		p.NoSendTime++
		return
	}
	p.latencies = append(p.latencies, time.Duration(at-sentNS))
}

// Counts returns the counts of every prefix seen so far.
func (t *Tally) Counts() map[string]Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Counts, len(t.prefixes))
	for name, p := range t.prefixes {
		out[name] = p.Counts
	}
	return out
}

// Stats returns the counts and latency percentiles of every prefix.
func (t *Tally) Stats() map[string]Stats {
	t.mu.Lock()
	out := make(map[string]Stats, len(t.prefixes))
	lats := make(map[string][]time.Duration, len(t.prefixes))
	for name, p := range t.prefixes {
		out[name] = Stats{Counts: p.Counts}
		lats[name] = slices.Clone(p.latencies)
	}
	t.mu.Unlock()
	for name, l := range lats {
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		s := out[name]
		s.P50MS, s.P99MS, s.MaxMS = ms(Percentile(l, 0.50)), ms(Percentile(l, 0.99)), ms(l[len(l)-1])
		out[name] = s
	}
	return out
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 1) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
