// Package bench measures Hermod end to end. The in-process benchmarks
// (BenchmarkInProcess..., this file) run the all-in-one with its embedded
// JetStream and the sink inside the benchmark process, against a real
// redis-server; the external benchmark (BenchmarkExternal, external_test.go)
// runs every part as its own OS process, as users run it. Run both with
// `make bench`; figures are printed and recorded in docs/benchmarks.md.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// sink counts deliveries and records each one's receipt time by event id.
type sink struct {
	url   string
	srv   *http.Server
	n     atomic.Int64
	mu    sync.Mutex
	recv  map[string][]time.Time // by "event id|path": one entry per receipt
	total int64
	done  chan struct{}
}

func newSink(b *testing.B, want int64) *sink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &sink{url: "http://" + l.Addr().String(), recv: map[string][]time.Time{}, total: want, done: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	b.Cleanup(func() { _ = s.srv.Close() })
	return s
}

var idKey = []byte(`"id":"`)

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	id := ""
	if i := bytes.Index(body, idKey); i >= 0 {
		rest := body[i+len(idKey):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			id = string(rest[:j])
		}
	}
	s.mu.Lock()
	s.recv[id+"|"+r.URL.Path] = append(s.recv[id+"|"+r.URL.Path], now)
	s.mu.Unlock()
	if s.n.Add(1) == s.total {
		close(s.done)
	}
	w.WriteHeader(http.StatusNoContent)
}

type env struct {
	b      *testing.B
	base   string
	hc     *http.Client
	js     jetstream.JetStream
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

func start(b *testing.B) *env { return startWith(b, hermodtest.StartRedis(b)) }

func startWith(b *testing.B, rd *hermodtest.Redis) *env { return startConfigured(b, rd, nil) }

// startConfigured is startWith with the configuration changed by mod.
func startConfigured(b *testing.B, rd *hermodtest.Redis, mod func(c *allinone.Config)) *env {
	port, _ := hermodtest.FreePort()
	natsPort, _ := hermodtest.FreePort()
	cfg, err := allinone.LoadConfig(envconfig.NewFrom(func(string) (string, bool) { return "", false }))
	if err != nil {
		b.Fatal(err)
	}
	cfg.RedisURL = rd.URL()
	cfg.DataDir = b.TempDir()
	cfg.APIAddr = "127.0.0.1:" + strconv.Itoa(port)
	cfg.NATSListen = "127.0.0.1:" + strconv.Itoa(natsPort)
	cfg.AdminKeys = []string{fleet.AdminKey}
	cfg.Concurrency = 128
	if v := os.Getenv("HERMOD_DELIVERY_CONCURRENCY"); v != "" {
		cfg.Concurrency, _ = strconv.Atoi(v)
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{b: b, base: "http://" + cfg.APIAddr, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}},
		cancel: cancel, done: make(chan error, 1)}
	var logOut io.Writer = io.Discard
	if path := os.Getenv("HERMOD_BENCH_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close() })
		logOut = f
	}
	log := zerolog.New(logOut).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	go func() { e.done <- allinone.Main(ctx, cfg, log, io.Discard) }()
	hermodtest.CheckFor(b, 30*time.Second, 20*time.Millisecond, func() error {
		resp, err := e.hc.Get(e.base + "/readyz")
		if err != nil {
			return fmt.Errorf("pipeline not ready: %w", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("pipeline not ready: /readyz %d", resp.StatusCode)
		}
		return nil
	})
	// Listening for agents, the embedded NATS admits the all-in-one's own
	// user (password in the data dir) besides the agents.
	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, "nats_password"))
	if err != nil {
		b.Fatal(err)
	}
	if e.nc, err = nats.Connect("nats://"+cfg.NATSListen, nats.UserInfo("hermod", strings.TrimSpace(string(pw)))); err != nil {
		b.Fatal(err)
	}
	if e.js, err = jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		e.nc.Close()
		cancel()
		<-e.done
		e.hc.CloseIdleConnections()
	})
	return e
}

func (e *env) createWebhooks(n int, url string, eventType string) {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = url + "/h/" + strconv.Itoa(i)
	}
	fleet.CreateWebhooks(e.b, e.hc, e.base, urls, eventType)
}

func (e *env) publish(id, eventType string) {
	body := []byte(`{"id":"` + id + `","event_type":"` + eventType + `","timestamp":"` + time.Now().UTC().Format(time.RFC3339Nano) +
		`","data":{"deployment_id":"` + id + `","cluster":"bench","replicas":3}}`)
	if _, err := e.js.PublishMsgAsync(&nats.Msg{Subject: streams.EventSubject(eventType), Data: body,
		Header: nats.Header{streams.HdrMsgID: {id}}}); err != nil {
		e.b.Fatal(err)
	}
}

// printMetrics prints the pipeline's own counters (parking, attempts, errors).
func (e *env) printMetrics() {
	resp, err := e.hc.Get(e.base + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(body, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("hermod_")) && !bytes.Contains(line, []byte("_bucket")) {
			fmt.Printf("    %s\n", line)
		}
	}
}

func (e *env) flush() {
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		e.b.Fatal("publish acks timed out")
	}
}

// report prints throughput and latency percentiles from intended send times.
func report(b *testing.B, name string, s *sink, intended map[string]time.Time, start, end time.Time) {
	var lat []time.Duration
	dups := 0
	s.mu.Lock()
	for key, ts := range s.recv {
		id, _, _ := strings.Cut(key, "|")
		dups += len(ts) - 1 // the same event at the same webhook more than once
		for _, t := range ts {
			lat = append(lat, t.Sub(intended[id]))
		}
	}
	s.mu.Unlock()
	if os.Getenv("HERMOD_BENCH_TIMELINE") != "" {
		perSec := map[int]int{}
		s.mu.Lock()
		for _, ts := range s.recv {
			for _, t := range ts {
				perSec[int(t.Sub(start).Seconds())]++
			}
		}
		s.mu.Unlock()
		for sec := 0; sec <= int(end.Sub(start).Seconds()); sec++ {
			fmt.Printf("    t=%2ds %6d\n", sec, perSec[sec])
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	rate := float64(len(lat)) / end.Sub(start).Seconds()
	fmt.Printf("%-28s deliveries=%d in %.2fs  %.0f deliveries/s  latency p50=%s p95=%s p99=%s max=%s dup_ids=%d\n",
		name, len(lat), end.Sub(start).Seconds(), rate, pct(0.50).Round(100*time.Microsecond),
		pct(0.95).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), pct(1).Round(time.Millisecond), dups)
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(pct(0.95).Microseconds())/1000, "p95_ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99_ms")
}

func profile(b *testing.B, name string) func() {
	dir := os.Getenv("HERMOD_BENCH_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(dir + "/" + name + ".cpu.prof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

func wait(b *testing.B, s *sink, timeout time.Duration) time.Time {
	select {
	case <-s.done:
		return time.Now()
	case <-time.After(timeout):
		b.Fatalf("only %d of %d deliveries arrived within %s", s.n.Load(), s.total, timeout)
	}
	return time.Time{}
}

// (a) 5,000 events × 10 webhooks, as fast as possible.
func BenchmarkInProcessBurst5000x10(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := start(b)
		const events, hooks = 5000, 10
		s := newSink(b, events*hooks)
		e.createWebhooks(hooks, s.url, "deployment.applied")
		intended := make(map[string]time.Time, events)
		stop := profile(b, "burst")
		begin := time.Now()
		for j := 0; j < events; j++ {
			id := "burst-" + strconv.Itoa(j)
			intended[id] = time.Now()
			e.publish(id, "deployment.applied")
		}
		e.flush()
		end := wait(b, s, 2*time.Minute)
		stop()
		report(b, "a) 5000 events x 10 hooks", s, intended, begin, end)
		e.printMetrics()
	}
}

// (b) a steady 1,000 deliveries/s (100 events/s × 10 webhooks) for 30 s.
func BenchmarkInProcessSteady1000PerSecond(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := start(b)
		const hooks, perSecond, seconds = 10, 100, 30
		events := perSecond * seconds
		s := newSink(b, int64(events*hooks))
		e.createWebhooks(hooks, s.url, "instance.crash")
		intended := make(map[string]time.Time, events)
		for j := 0; j < events; j++ {
			intended["steady-"+strconv.Itoa(j)] = time.Time{}
		}
		stop := profile(b, "steady")
		begin := time.Now()
		interval := time.Second / perSecond
		for j := 0; j < events; j++ {
			at := begin.Add(time.Duration(j) * interval)
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			id := "steady-" + strconv.Itoa(j)
			intended[id] = at // latency counts from the schedule, not the actual send
			e.publish(id, "instance.crash")
		}
		e.flush()
		end := wait(b, s, time.Minute)
		stop()
		report(b, "b) steady 1000 deliveries/s", s, intended, begin, end)
	}
}

// (c) one event fanned out to 10,000 webhooks.
func BenchmarkInProcessFanOut10000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := start(b)
		const hooks = 10000
		s := newSink(b, hooks)
		indexes := fleet.WatchIndexes(b, e.nc)
		e.createWebhooks(hooks, s.url, "alert.triggered")
		indexes.Settle()
		stop := profile(b, "fanout")
		begin := time.Now()
		e.publish("fanout-1", "alert.triggered")
		e.flush()
		end := wait(b, s, 2*time.Minute)
		stop()
		report(b, "c) 1 event x 10000 hooks", s, map[string]time.Time{"fanout-1": begin}, begin, end)
	}
}

// Redis bytes per retained delivery: 1,000 events × 10 webhooks, one
// successful attempt each, measured with INFO memory before and after.
func BenchmarkInProcessRedisBytesPerDelivery(b *testing.B) {
	for i := 0; i < b.N; i++ {
		rd := hermodtest.StartRedis(b)
		e := startWith(b, rd)
		const events, hooks = 1000, 10
		s := newSink(b, events*hooks)
		e.createWebhooks(hooks, s.url, "deployment.applied")
		rdb := rd.Client(b)
		before := usedMemory(b, rdb.Info(context.Background(), "memory").Val())
		for j := 0; j < events; j++ {
			e.publish("mem-"+strconv.Itoa(j), "deployment.applied")
		}
		e.flush()
		wait(b, s, time.Minute)
		// Wait until the recorder wrote every record.
		hermodtest.CheckFor(b, time.Minute, 50*time.Millisecond, func() error {
			n, err := rdb.Eval(context.Background(), `return #redis.call('KEYS', ARGV[1])`, nil, store.AttemptsKey("*", "*")).Int()
			if err != nil || n != events*hooks {
				return fmt.Errorf("%d of %d attempt histories written (%v)", n, events*hooks, err)
			}
			return nil
		})
		after := usedMemory(b, rdb.Info(context.Background(), "memory").Val())
		per := float64(after-before) / float64(events*hooks)
		fmt.Printf("redis bytes per retained delivery: %.0f (used_memory %d -> %d for %d deliveries of %d events, envelope ~150 B stored once per event)\n",
			per, before, after, events*hooks, events)
		b.ReportMetric(per, "bytes/delivery")
	}
}

func usedMemory(b *testing.B, info string) int64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}
