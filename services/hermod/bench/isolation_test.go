package bench

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
)

// The isolation scenarios: the same steady load on many healthy webhooks,
// alone (6a), beside a slow and an always-failing webhook that get every
// event too (6b), and beside two slow webhooks (6c). The healthy ones' latency is compared between the
// two, and the share the bad ones took of the deliverer is shown: the
// most attempts the receiver had open at once for each, against the
// webhook's in-flight slots and the deliverer's workers.

// Sub-benchmark names of the runs.
const (
	isolationAlone   = "6a-isolation-alone"
	isolationBeside  = "6b-isolation-beside-slow-and-failing"
	isolationTwoSlow = "6c-isolation-beside-two-slow"
)

// What beside the healthy webhooks: nothing (6a), a slow and a failing
// webhook (6b), two slow webhooks (6c: together they may hold the slow
// lane, half the workers, where their slots alone would let them hold
// every worker).
type besideKind int

const (
	besideNothing besideKind = iota
	besideSlowAndFailing
	besideTwoSlow
)

// isolationTarget is the most the healthy webhooks' p99 beside the bad
// ones may be, as a multiple of their p99 alone. It is printed beside the
// measured ratio, never asserted.
const isolationTarget = 1.5

// The deliverer's workers and each webhook's slots, pinned to their
// defaults (docs/configuration.md) in every scenario, so the share shown
// is the one the run had.
const (
	deliveryWorkers = 64 // HERMOD_DELIVERY_CONCURRENCY
	webhookSlots    = 32 // HERMOD_WEBHOOK_MAX_INFLIGHT
)

var isolationEnv = map[string]string{
	"HERMOD_DELIVERY_CONCURRENCY": strconv.Itoa(deliveryWorkers),
	"HERMOD_WEBHOOK_MAX_INFLIGHT": strconv.Itoa(webhookSlots),
}

// samplePeriod is how often the delivering process's gauges are read
// during an isolation run: not a divisor of the publisher's 100 ms pace,
// whose events arrive in bursts (one delivery per webhook at once), so
// the samples fall at every phase of a burst, not always between two.
const samplePeriod = 37 * time.Millisecond

// isolationEvents is the events per second that make isolationRate
// deliveries per second to the healthy webhooks.
func isolationEvents(s sizes) int { return max(s.isolationRate/s.isolationHooks, 1) }

// isolationSeen is what an isolation run saw beside the healthy
// webhooks' deliveries.
type isolationSeen struct {
	kind             besideKind
	events           int             // events accepted: each a delivery to every webhook
	slow, failing    receiver.Counts // what reached the bad webhooks
	slowMax, failMax int             // most requests the receiver had open at once for each
	deliverer        gauges
}

// gauges are the delivering process's gauges, read every samplePeriod.
type gauges struct {
	samples     int
	inFlightMax int // hermod_deliveries_in_flight: HTTP attempts at once, every webhook
	waitingMax  int // hermod_deliveries_waiting_for_slot
	breakerOpen int // samples in which the failing webhook's breaker was open
	breakerEnd  bool
	slowLaneMax int // hermod_slow_lane_attempts
}

func isolation(kind besideKind) func(f *external, s sizes) result {
	return func(f *external, s sizes) result {
		urls := f.HookURLs(receiver.Fast, "isolation", s.isolationHooks)
		switch kind {
		case besideSlowAndFailing:
			urls = append(urls, f.HookURLs(receiver.Slow, "isolation", 1)...)
			urls = append(urls, f.HookURLs(receiver.Fail, "isolation", 1)...)
		case besideTwoSlow:
			urls = append(urls, f.HookURLs(receiver.Slow, "isolation", 2)...)
		}
		ids := f.CreateHooks(urls, eventType)
		failingID := ""
		if kind == besideSlowAndFailing {
			failingID = ids[len(ids)-1]
		}
		rate := isolationEvents(s)
		events := rate * s.isolationSeconds
		stop := f.sampleGauges(f.DeliveringRole(), failingID)
		w := f.openWindow()
		pub := f.publish(load{mode: publisher.ModeHTTP, events: events, rate: float64(rate), conns: s.httpConns,
			idPrefix: "isolation-"}, w)
		want := pub.Accepted * s.isolationHooks
		m := w.close(map[string]int{receiver.Fast: want}, arrivalTimeout(want))
		g, err := stop()
		if err != nil {
			f.b.Fatal(err)
		}
		open, err := f.Inflight()
		if err != nil {
			f.b.Fatal(err)
		}
		seen := &isolationSeen{kind: kind, events: pub.Accepted, slow: m.stats[receiver.Slow].Counts,
			failing: m.stats[receiver.Fail].Counts, slowMax: open[receiver.Slow].Max, failMax: open[receiver.Fail].Max, deliverer: g}
		r := newResult(events*s.isolationHooks, receiver.Fast, m, &pub)
		r.isolation = seen
		if kind != besideNothing {
			r.otherDuplicates = seen.slow.Duplicates
			f.b.ReportMetric(float64(seen.slowMax), "slow_max_at_once")
			f.b.ReportMetric(float64(seen.failMax), "failing_max_at_once")
		}
		return r
	}
}

// sampleGauges reads the delivering process name's gauges every
// samplePeriod (the failing webhook's breaker too, when failingID is not
// empty) until the returned function is called; that returns what was
// seen, or the first failure to read.
func (f *external) sampleGauges(name, failingID string) func() (gauges, error) {
	breaker := `hermod_webhook_breaker_open{webhook_id="` + failingID + `"}`
	done := make(chan struct{})
	var (
		wg    sync.WaitGroup
		g     gauges
		first error
	)
	read := func() {
		series, err := f.scrape(name)
		if err != nil {
			first = err
			return
		}
		g.samples++
		g.inFlightMax = max(g.inFlightMax, int(series["hermod_deliveries_in_flight"]))
		g.waitingMax = max(g.waitingMax, int(series["hermod_deliveries_waiting_for_slot"]))
		g.slowLaneMax = max(g.slowLaneMax, int(series["hermod_slow_lane_attempts"]))
		g.breakerEnd = failingID != "" && series[breaker] == 1
		if g.breakerEnd {
			g.breakerOpen++
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(samplePeriod)
		defer t.Stop()
		for first == nil {
			select {
			case <-done:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() (gauges, error) {
		close(done)
		wg.Wait()
		return g, first
	}
}

// printIsolation prints, per layout that ran both isolation scenarios,
// the healthy webhooks' latency alone and beside the bad ones, their
// ratio against isolationTarget, and the share the bad ones took.
func printIsolation(rows []result) {
	type pair struct{ alone, beside, twoSlow *result }
	var layouts []string
	pairs := map[string]*pair{}
	for i := range rows {
		r := &rows[i]
		if r.isolation == nil {
			continue
		}
		p := pairs[r.layout]
		if p == nil {
			p = &pair{}
			pairs[r.layout] = p
			layouts = append(layouts, r.layout)
		}
		switch r.isolation.kind {
		case besideSlowAndFailing:
			p.beside = r
		case besideTwoSlow:
			p.twoSlow = r
		default:
			p.alone = r
		}
	}
	if len(layouts) == 0 {
		return
	}
	fmt.Printf("\nIsolation (6a against 6b): the healthy webhooks' latency alone and beside a slow and a failing webhook; "+
		"the bad ones' share is at most %d attempts at once each (HERMOD_WEBHOOK_MAX_INFLIGHT) of the deliverer's %d workers "+
		"(HERMOD_DELIVERY_CONCURRENCY); the gauges are the deliverer's, read every %s:\n\n", webhookSlots, deliveryWorkers, samplePeriod)
	fmt.Println("| layout | healthy p50 ms alone → beside | healthy p99 ms alone → beside | p99 ratio (target ≤ 1.5×) | " +
		"slow: most at once / slots | slow: attempts (deliveries) | failing: most at once / slots | failing: attempts (deliveries) | " +
		"failing: breaker open (samples, at the end) | deliverer: most in flight / workers, alone → beside | most waiting for a slot, alone → beside |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, layout := range layouts {
		p := pairs[layout]
		a, b := p.alone, p.beside
		cells := []string{layout, pairText(a, b, func(r *result) string { return fmt.Sprintf("%.1f", r.got.P50MS) }),
			pairText(a, b, func(r *result) string { return fmt.Sprintf("%.1f", r.got.P99MS) }), ratioText(a, b)}
		if b == nil {
			cells = append(cells, "—", "—", "—", "—", "—")
		} else {
			s := b.isolation
			breaker := "closed"
			if s.deliverer.breakerEnd {
				breaker = "open"
			}
			cells = append(cells, fmt.Sprintf("%d / %d", s.slowMax, webhookSlots),
				fmt.Sprintf("%d (%d of %d deliveries)", s.slow.Requests, s.slow.Distinct, s.events),
				fmt.Sprintf("%d / %d", s.failMax, webhookSlots),
				fmt.Sprintf("%d (%d of %d)", s.failing.Requests, s.failing.Distinct, s.events),
				fmt.Sprintf("%d of %d, %s", s.deliverer.breakerOpen, s.deliverer.samples, breaker))
		}
		cells = append(cells,
			pairText(a, b, func(r *result) string {
				return fmt.Sprintf("%d / %d", r.isolation.deliverer.inFlightMax, deliveryWorkers)
			}),
			pairText(a, b, func(r *result) string { return strconv.Itoa(r.isolation.deliverer.waitingMax) }))
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	fmt.Printf("\nIsolation (6a against 6c): the healthy webhooks beside two slow webhooks; attempts to slow webhooks "+
		"together hold at most half the workers (the slow lane, %d of %d):\n\n", deliveryWorkers/2, deliveryWorkers)
	fmt.Println("| layout | healthy p50 ms alone → beside | healthy p99 ms alone → beside | p99 ratio (target ≤ 1.5×) | " +
		"slow: most at once (both) | slow: attempts (deliveries of both) | slow lane: most held / capacity | deliverer: most in flight / workers |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, layout := range layouts {
		a, c := pairs[layout].alone, pairs[layout].twoSlow
		cells := []string{layout, pairText(a, c, func(r *result) string { return fmt.Sprintf("%.1f", r.got.P50MS) }),
			pairText(a, c, func(r *result) string { return fmt.Sprintf("%.1f", r.got.P99MS) }), ratioText(a, c)}
		if c == nil {
			cells = append(cells, "—", "—", "—", "—")
		} else {
			s := c.isolation
			cells = append(cells, strconv.Itoa(s.slowMax), fmt.Sprintf("%d (%d of %d)", s.slow.Requests, s.slow.Distinct, 2*s.events),
				fmt.Sprintf("%d / %d", s.deliverer.slowLaneMax, deliveryWorkers/2),
				fmt.Sprintf("%d / %d", s.deliverer.inFlightMax, deliveryWorkers))
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
}

// pairText is "alone → beside" of one figure, "—" for a run missing.
func pairText(alone, beside *result, figure func(*result) string) string {
	text := func(r *result) string {
		if r == nil {
			return "—"
		}
		return figure(r)
	}
	return text(alone) + " → " + text(beside)
}

// ratioText is the healthy p99 beside over alone, and whether it met
// isolationTarget.
func ratioText(alone, beside *result) string {
	if alone == nil || beside == nil || alone.got.P99MS <= 0 {
		return "—"
	}
	ratio := beside.got.P99MS / alone.got.P99MS
	verdict := "met"
	if ratio > isolationTarget {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%.2f× (%s)", ratio, verdict)
}
