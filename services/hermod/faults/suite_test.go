//go:build faults

package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// Sizes every scenario shares: a few thousand deliveries in flight.
const (
	hooksPerRun  = 4    // webhooks, each its own path at the receiver
	eventsPerRun = 1500 // events, each to every webhook
	ingestRate   = 500.0
	ingestConns  = 8
)

// baseEnv is every Hermod process's configuration beyond the fleet's: a
// 10 s lease, so that a killed deliverer's deliveries come back within
// seconds rather than a minute.
var baseEnv = map[string]string{"HERMOD_ACQUIRE_TTL": "10s"}

// run is one scenario: a fleet, its webhooks, the events flowing and the
// fault's moment.
type run struct {
	t       *testing.T
	f       *fleet.Fleet
	name    string
	prefix  string   // the receiver prefix the webhooks use (fast or slow)
	hookIDs []string // by index
	paths   []string // the receiver path of each webhook
	want    []int    // the distinct deliveries each webhook must get
	// wantByType, when set, is the exact number of distinct deliveries of
	// each "<path>?type=<event type>" (the receiver's count by type).
	wantByType map[string]int
	ins        []*ingest // every batch of events sent
	faultAt    time.Time
	started    []string // the Hermod processes that must still run at the end
}

// hookSpec is one webhook of a run: its name (the last segment of its
// path at the receiver) and its API body without name and url.
type hookSpec struct {
	name string
	body map[string]any
}

// startFleet starts a fleet with cfg (baseEnv added) for the scenario name.
func startFleet(t *testing.T, name string, cfg fleet.Config, prefix string) *run {
	t.Helper()
	env := map[string]string{}
	for k, v := range baseEnv {
		env[k] = v
	}
	for k, v := range cfg.Env {
		env[k] = v
	}
	cfg.Env = env
	r := &run{t: t, f: fleet.Start(t, binaries(t), cfg), name: name, prefix: prefix}
	r.started = r.f.HermodNames()
	return r
}

// startRun starts a fleet, creates hooksPerRun webhooks for eventType,
// each to expect every one of eventsPerRun events, and starts sending them.
func startRun(t *testing.T, name string, cfg fleet.Config, prefix string) *run {
	t.Helper()
	r := startFleet(t, name, cfg, prefix)
	specs := make([]hookSpec, hooksPerRun)
	for i := range specs {
		specs[i] = hookSpec{name: strconv.Itoa(i), body: map[string]any{"event_types": []string{eventType}}}
	}
	r.createHooks(specs)
	for i := range r.want {
		r.want[i] = eventsPerRun
	}
	return r
}

// createHooks creates the webhooks through the API and waits until every
// webhook index has applied them.
func (r *run) createHooks(specs []hookSpec) {
	r.t.Helper()
	w := fleet.WatchIndexes(r.t, r.f.NC)
	for _, spec := range specs {
		path := "/" + r.prefix + "/" + r.name + "/" + spec.name
		body := map[string]any{"name": r.name + "-" + spec.name, "url": r.f.ReceiverURL + path}
		for k, v := range spec.body {
			body[k] = v
		}
		var created struct {
			ID string `json:"id"`
		}
		code, answer, err := call(r.f, http.MethodPost, "/api/v1/webhooks", body)
		if err != nil || code != http.StatusCreated || json.Unmarshal(answer, &created) != nil || created.ID == "" {
			r.t.Fatalf("create webhook %s: %d %s %v", spec.name, code, answer, err)
		}
		r.hookIDs = append(r.hookIDs, created.ID)
		r.paths = append(r.paths, path)
		r.want = append(r.want, 0)
	}
	w.Settle()
}

// send starts eventsPerRun events of eventType flowing.
func (r *run) send() *ingest { return r.sendEvents(r.name, eventsPerRun, nil) }

// sendEvents starts n events flowing, ids prefix-<n>, shaped by shape
// (nil: eventType, no labels).
func (r *run) sendEvents(prefix string, n int, shape func(seq int) (string, map[string]string)) *ingest {
	in := startIngest(r.f, prefix, n, ingestRate, ingestConns, shape)
	r.ins = append(r.ins, in)
	r.t.Cleanup(func() { _ = in.wait() })
	return in
}

// expected is the number of deliveries the run must see.
func (r *run) expected() int {
	n := 0
	for _, w := range r.want {
		n += w
	}
	return n
}

// arrived is the number of distinct deliveries the receiver got at the
// run's webhooks (at most what each must get), and their duplicates.
func (r *run) arrived() (distinct, duplicates int, byPath map[string]receiver.Counts, err error) {
	byPath, err = r.f.PathCounts()
	for i, p := range r.paths {
		distinct += min(byPath[p].Distinct, r.want[i])
		duplicates += byPath[p].Duplicates
	}
	return distinct, duplicates, byPath, err
}

// awaitShare waits until share (0–1) of the run's deliveries arrived: the
// moment to strike, with the rest still in flight.
func (r *run) awaitShare(share float64) {
	r.t.Helper()
	want := int(share * float64(r.expected()))
	hermodtest.CheckFor(r.t, 2*time.Minute, 20*time.Millisecond, func() error {
		got, _, _, err := r.arrived()
		if err != nil {
			return err
		}
		if got < want {
			return fmt.Errorf("%d of %d deliveries arrived, waiting for %d", got, r.expected(), want)
		}
		return nil
	})
	if got, _, _, _ := r.arrived(); got >= r.expected() {
		r.t.Fatalf("every delivery arrived before the fault: nothing was in flight (raise eventsPerRun)")
	}
}

// fault records the moment of the fault and carries it out.
func (r *run) fault(what string, do func()) {
	r.t.Helper()
	r.t.Logf("fault: %s", what)
	r.faultAt = time.Now()
	do()
}

// killRestart is the fault of killing the Hermod process name with
// SIGKILL and starting it again.
func (r *run) killRestart(name string) {
	r.t.Helper()
	r.fault("kill -9 "+name+", then start it again", func() {
		r.f.Hermod(name).Kill()
		r.f.StartHermod(name)
	})
}

// checks says what a scenario tolerates.
type checks struct {
	// duplicatesAllowed: the fault may cause second attempts (a process
	// killed between an attempt and its acknowledgement); otherwise any
	// duplicate fails the scenario.
	duplicatesAllowed bool
}

// figures are what a scenario prints.
type figures struct {
	scenario   string
	events     int
	deliveries int
	lost       int
	duplicates int
	recovery   time.Duration // from the fault until the last expected delivery arrived
	note       string
}

func (g figures) String() string {
	s := fmt.Sprintf("%-28s events %5d  deliveries %5d  lost %d  duplicates %3d  recovery %5.1f s", g.scenario, g.events,
		g.deliveries, g.lost, g.duplicates, g.recovery.Seconds())
	if g.note != "" {
		s += "  (" + g.note + ")"
	}
	return s
}

var (
	summaryMu sync.Mutex
	summary   []figures
)

func printSummary() {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return
	}
	fmt.Println("\n---- fault-injection suite: figures (docs/reliability.md) ----")
	for _, g := range summary {
		fmt.Println(g)
	}
	fmt.Println("---- end of the figures ----")
}

// verify waits for the events to be accepted and for every delivery to
// arrive, then checks that nothing is stuck and that the API's statistics
// equal the receiver's counts; it prints and records the figures.
func (r *run) verify(c checks, note string) figures {
	r.t.Helper()
	g := figures{scenario: r.name, deliveries: r.expected(), note: note}
	var retried, dupes int64
	for _, in := range r.ins {
		if err := in.wait(); err != nil {
			r.t.Errorf("ingest: %v", err)
		}
		g.events += int(in.accepted.Load())
		retried += in.retried.Load()
		dupes += in.dupes.Load()
	}
	if retried > 0 {
		g.note = strings.TrimPrefix(g.note+"; ", "; ") + fmt.Sprintf("%d events sent again, %d of them answered as duplicates",
			retried, dupes)
	}

	// Every delivery arrives (at least once).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		distinct, _, bp, err := r.arrived()
		if err == nil {
			g.lost = r.expected() - distinct
			if distinct >= r.expected() {
				g.recovery = time.Since(r.faultAt)
				break
			}
		}
		if time.Now().After(deadline) {
			var short []string
			for i, p := range r.paths {
				if n := bp[p].Distinct; n < r.want[i] {
					short = append(short, fmt.Sprintf("%s %d of %d", p, n, r.want[i]))
				}
			}
			r.t.Errorf("LOSS: %d of %d deliveries never arrived: %s (%v)", g.lost, r.expected(), strings.Join(short, ", "), err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range r.started {
		if p := r.f.Hermod(name); p.Exited() {
			r.t.Errorf("CRASH: %s exited:\n%s", name, p.Tail(3000))
		}
	}

	// Nothing stuck: every stream drained, all at once (a delivery is
	// always in one of them until it is final), and every record final.
	hermodtest.CheckFor(r.t, 2*time.Minute, 50*time.Millisecond, func() error {
		for _, s := range []string{streams.EventsStream, streams.DeliveriesStream, streams.HeldStream, streams.ResultsStream} {
			if n, err := r.f.StreamMsgs(s); err != nil || n > 0 {
				return fmt.Errorf("STUCK: %s holds %d messages (%v)", s, n, err)
			}
		}
		return nil
	})
	// The final counts: second attempts may come after the last first one.
	_, dups, byPath, err := r.arrived()
	if err != nil {
		r.t.Fatal(err)
	}
	g.duplicates = dups
	for i, p := range r.paths {
		if n := byPath[p].Distinct; n > r.want[i] {
			r.t.Errorf("UNEXPECTED: %s got %d distinct deliveries, %d more than its events", p, n, n-r.want[i])
		}
		if byPath[p].NoID > 0 {
			r.t.Errorf("%s: %d requests without a webhook-id", p, byPath[p].NoID)
		}
	}
	for key, want := range r.wantByType {
		if got := byPath[key].Distinct; got != want {
			r.t.Errorf("%s: %d distinct deliveries, want %d", key, got, want)
		}
	}
	if g.duplicates > 0 && !c.duplicatesAllowed {
		r.t.Errorf("DUPLICATES: %d deliveries arrived more than once", g.duplicates)
	}
	hermodtest.CheckFor(r.t, 2*time.Minute, 100*time.Millisecond, func() error { return r.apiAgrees(byPath) })

	summaryMu.Lock()
	summary = append(summary, g)
	summaryMu.Unlock()
	r.t.Logf("FIGURES %s", g)
	return g
}

// apiAgrees checks, for each webhook, that the API lists no delivery
// pending, failed or dead, and that its delivered count is the receiver's.
func (r *run) apiAgrees(byPath map[string]receiver.Counts) error {
	for i, id := range r.hookIDs {
		for _, status := range []string{"pending", "failed", "dead"} {
			var list struct {
				Data []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"data"`
			}
			q := url.Values{"status": {status}, "limit": {"5"}}
			if err := r.apiGet("/api/v1/webhooks/"+id+"/deliveries?"+q.Encode(), &list); err != nil {
				return err
			}
			if len(list.Data) > 0 {
				return fmt.Errorf("webhook %d: deliveries still %s, e.g. %v", i, status, list.Data)
			}
		}
		var w struct {
			TotalDelivered int64 `json:"total_delivered"`
			TotalFailed    int64 `json:"total_failed"`
		}
		if err := r.apiGet("/api/v1/webhooks/"+id, &w); err != nil {
			return err
		}
		if got := byPath[r.paths[i]].Distinct; w.TotalDelivered != int64(got) || w.TotalFailed != 0 {
			return fmt.Errorf("webhook %d: the API counts %d delivered and %d failed, the receiver got %d", i,
				w.TotalDelivered, w.TotalFailed, got)
		}
	}
	return nil
}

// apiGet decodes the 200 answer of the API's path into v.
func (r *run) apiGet(path string, v any) error {
	return getAuthorized(r.f, path, v)
}

// metricSum sums the samples of a metric (every label set) of a Hermod
// process's /metrics.
func metricSum(f *fleet.Fleet, name, metric string) (float64, error) {
	resp, err := f.HC.Get("http://" + f.Addr(name) + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+" ") && !strings.HasPrefix(line, metric+"{") {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}
