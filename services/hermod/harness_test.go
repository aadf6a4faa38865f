package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	allinone "github.com/hermodhq/hermod/services/hermod"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

const (
	testAdminKey = "test-admin-key-0123456789"
	testEncKey   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// pipeline is the all-in-one running in the test process against a real
// embedded JetStream server and a real redis-server.
type pipeline struct {
	t     *testing.T
	NS    *server.Server
	Redis *hermodtest.Redis
	Base  string
	Logs  *hermodtest.LogBuffer
	NC    *nats.Conn
	JS    jetstream.JetStream
	// natsURL is where jetStream connects when JS is not set yet (startFleet).
	natsURL string
	cancel  func()
	done    chan error
	hc      *http.Client
	// procs are the separate processes of startFleet, by binary name.
	procs map[string]*proc
}

// bothModes runs body twice: against the all-in-one running in the test
// process (allinone.Main, under the race detector) and against the built
// bin/hermod binary as a separate process, configured only through its
// environment.
func bothModes(t *testing.T, body func(t *testing.T)) {
	t.Parallel()
	t.Run("in-process", func(t *testing.T) { t.Parallel(); body(t) })
	t.Run("binary", func(t *testing.T) { t.Parallel(); body(t) })
}

// configEnv turns the all-in-one configuration into its environment.
func configEnv(c allinone.Config) []string {
	env := map[string]string{
		"HERMOD_NATS_URL": c.NATSURL, "HERMOD_REDIS_URL": c.RedisURL, "HERMOD_DATA_DIR": c.DataDir,
		"HERMOD_API_ADDR": c.APIAddr, "HERMOD_ADMIN_KEYS": strings.Join(c.AdminKeys, ","),
		"HERMOD_ENCRYPTION_KEY": c.EncryptionKey, "HERMOD_SHUTDOWN_TIMEOUT": c.ShutdownTimeout.String(),
		"HERMOD_LOG_LEVEL": c.LogLevel, "HERMOD_MAX_EVENT_BYTES": strconv.Itoa(c.MaxEventBytes),
		"HERMOD_DELIVERY_ALLOW_CIDRS": c.AllowCIDRs, "HERMOD_DELIVERY_CONCURRENCY": strconv.Itoa(c.Concurrency),
		"HERMOD_WEBHOOK_MAX_INFLIGHT": strconv.Itoa(c.Isolation.Inflight), "HERMOD_BREAKER_THRESHOLD": strconv.Itoa(c.Isolation.Threshold),
		"HERMOD_BREAKER_COOLDOWN": c.Isolation.Cooldown.String(), "HERMOD_WEBHOOK_SLOT_WAIT": c.Isolation.SlotWait.String(), "HERMOD_MAX_HOLD": c.MaxHold.String(),
		"HERMOD_ACQUIRE_TTL": c.AcquireTTL.String(), "HERMOD_RETENTION": c.Retention.String(),
		"HERMOD_HISTORY_LIMIT": strconv.Itoa(c.HistoryLimit), "HERMOD_DEDUP_WINDOW": c.DedupWindow.String(),
		"HERMOD_SESSION_TTL": c.SessionTTL.String(), "HERMOD_COOKIE_SECURE": strconv.FormatBool(c.SecureCookies),
		"HERMOD_REPLAY_RATE":         strconv.Itoa(c.ReplayRate),
		"HERMOD_OPS_EVENTS_COOLDOWN": c.OpsCooldown.String(), "HERMOD_OPS_EVENTS_DEAD_LIMIT": strconv.Itoa(c.OpsDeadLimit),
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		if v == "" {
			v = "none" // only HERMOD_DELIVERY_ALLOW_CIDRS may be empty here: empty means none
		}
		out = append(out, k+"="+v)
	}
	return out
}

func startPipeline(t *testing.T, mod func(c *allinone.Config)) *pipeline {
	t.Helper()
	return startPipelineOn(t, hermodtest.NATS(t), hermodtest.StartRedis(t), mod)
}

// startPipelineOn is startPipeline on a NATS server and a Redis already
// running (another pipeline's, after it stopped: a restart).
func startPipelineOn(t *testing.T, ns *server.Server, rd *hermodtest.Redis, mod func(c *allinone.Config)) *pipeline {
	t.Helper()
	port, err := hermodtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := envconfig.NewFrom(func(string) (string, bool) { return "", false })
	cfg, err := allinone.LoadConfig(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATSURL = ns.ClientURL()
	cfg.RedisURL = rd.URL()
	cfg.DataDir = t.TempDir()
	cfg.APIAddr = "127.0.0.1:" + strconv.Itoa(port)
	cfg.AdminKeys = []string{testAdminKey}
	cfg.EncryptionKey = testEncKey
	cfg.ShutdownTimeout = 15 * time.Second
	cfg.LogLevel = "debug"
	if mod != nil {
		mod(&cfg)
	}
	logs := &hermodtest.LogBuffer{}
	p := &pipeline{t: t, NS: ns, Redis: rd, Base: "http://" + cfg.APIAddr, Logs: logs,
		done: make(chan error, 1), hc: &http.Client{Timeout: 30 * time.Second}}
	if strings.HasSuffix(t.Name(), "/binary") {
		cmd := exec.Command(binPath(t, "hermod"))
		cmd.Env = configEnv(cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- cmd.Wait() }()
		p.cancel = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	} else {
		log := zerolog.New(logs).With().Timestamp().Logger()
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		go func() { p.done <- allinone.Main(ctx, cfg, log, io.Discard) }()
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	p.NC = nc
	if p.JS, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	hermodtest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-p.done:
			t.Fatalf("pipeline exited at start: %v\n%s", err, logs.String())
		default:
		}
		resp, err := p.hc.Get(p.Base + "/readyz")
		if err != nil {
			return fmt.Errorf("pipeline not ready: %w\n%s", err, tail(logs.String(), 3000))
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("pipeline not ready: /readyz %d %s\n%s", resp.StatusCode, body, tail(logs.String(), 3000))
		}
		return nil
	})
	return p
}

func (p *pipeline) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("pipeline stopped with error: %v\n%s", err, tail(p.Logs.String(), 3000))
		}
	case <-time.After(30 * time.Second):
		p.t.Errorf("pipeline did not stop")
	}
	p.NC.Close()
	p.hc.CloseIdleConnections()
}

// do sends an API request with the admin key; body may be nil, a string or a value to encode.
func (p *pipeline) do(method, path string, body any) (int, []byte) {
	p.t.Helper()
	return p.doKey(method, path, body, testAdminKey)
}

func (p *pipeline) doKey(method, path string, body any, key string) (int, []byte) {
	p.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.Base+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must asserts the status and decodes the body into a map.
func (p *pipeline) must(want int, method, path string, body any) map[string]any {
	p.t.Helper()
	code, out := p.do(method, path, body)
	if code != want {
		p.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, out)
	}
	var m map[string]any
	if len(out) > 0 {
		if err := json.Unmarshal(out, &m); err != nil {
			p.t.Fatalf("%s %s: body is not a JSON object: %s", method, path, out)
		}
	}
	return m
}

func (p *pipeline) createWebhook(body map[string]any) string {
	p.t.Helper()
	return p.must(201, "POST", "/api/v1/webhooks", body)["id"].(string)
}

// registerAgent registers an agent granted labels and returns its token.
func (p *pipeline) registerAgent(id string, labels ...string) string {
	p.t.Helper()
	reg := p.must(201, "POST", "/api/v1/agents", map[string]any{"id": id, "labels": labels})
	return reg["credentials"].(map[string]any)["token"].(string)
}

func (p *pipeline) publish(eventType string, data any) string {
	p.t.Helper()
	return p.must(202, "POST", "/api/v1/events", map[string]any{"event_type": eventType, "data": data})["id"].(string)
}

// deliveries lists a webhook's deliveries (optionally by status).
func (p *pipeline) deliveries(webhookID, status string) []map[string]any {
	p.t.Helper()
	path := "/api/v1/webhooks/" + webhookID + "/deliveries?limit=500"
	if status != "" {
		path += "&status=" + status
	}
	m := p.must(200, "GET", path, nil)
	var out []map[string]any
	for _, d := range m["data"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// waitStatus polls until the webhook has n deliveries in status.
func (p *pipeline) waitStatus(webhookID, status string, n int, timeout time.Duration) []map[string]any {
	p.t.Helper()
	var ds []map[string]any
	hermodtest.CheckFor(p.t, timeout, 50*time.Millisecond, func() error {
		ds = p.deliveries(webhookID, status)
		if len(ds) < n {
			return fmt.Errorf("webhook %s has %d of %d %s deliveries; all its deliveries: %s",
				webhookID, len(ds), n, status, statuses(p.deliveries(webhookID, "")))
		}
		return nil
	})
	return ds
}

// waitWebhookStatus polls the webhook until its status is status and returns it.
func (p *pipeline) waitWebhookStatus(id, status string, timeout time.Duration) map[string]any {
	p.t.Helper()
	var w map[string]any
	hermodtest.CheckFor(p.t, timeout, 50*time.Millisecond, func() error {
		w = p.must(200, "GET", "/api/v1/webhooks/"+id, nil)
		if w["status"] != status {
			return fmt.Errorf("webhook %s is %v, want %s: %v", id, w["status"], status, w)
		}
		return nil
	})
	return w
}

// logged says whether one line of a log of startFleet's processes holds
// every one of parts.
func (p *pipeline) logged(parts ...string) bool {
	p.t.Helper()
	for _, pr := range p.procs {
		b, err := os.ReadFile(pr.log)
		if err != nil {
			p.t.Fatal(err)
		}
	lines:
		for _, l := range strings.Split(string(b), "\n") {
			for _, part := range parts {
				if !strings.Contains(l, part) {
					continue lines
				}
			}
			return true
		}
	}
	return false
}

// statuses sums deliveries up by status, for failure messages ("pending=2 success=1").
func statuses(ds []map[string]any) string {
	n := map[string]int{}
	for _, d := range ds {
		n[fmt.Sprint(d["status"])]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+strconv.Itoa(n[k]))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

// jetStream is the test's own JetStream client on the pipeline's server:
// startPipeline's, or for startFleet one connected on first use.
func (p *pipeline) jetStream() jetstream.JetStream {
	p.t.Helper()
	if p.JS != nil {
		return p.JS
	}
	if p.natsURL == "" {
		p.t.Fatal("this pipeline has no NATS URL for the test's own client")
	}
	nc, err := nats.Connect(p.natsURL)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		p.t.Fatal(err)
	}
	p.NC, p.JS = nc, js
	return js
}

// streamMsgs counts the messages of stream on subject.
func (p *pipeline) streamMsgs(stream, subject string) uint64 {
	p.t.Helper()
	s, err := p.jetStream().Stream(context.Background(), stream)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		p.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// inHand says what the pipeline still has to do, or nil when nothing: an
// event not yet routed, a delivery ready for a broker deliverer or waiting
// for its due time (in flight, being retried, parked), an outcome not yet
// recorded. Each stage publishes what follows from a message before it acks
// it, and the events, deliveries and results streams are work queues that
// drop a message once it is acked; so when they are found empty in that
// order, every request the pipeline is going to make for what it was given
// so far has been made and recorded. Deliveries waiting for an agent
// (hermod.agentq.>) and those held while their webhook is paused are not
// in hand: they wait for someone else.
func (p *pipeline) inHand() error {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js := p.jetStream()
	count := func(stream string, prefixes ...string) (uint64, string, error) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return 0, "", err
		}
		// One snapshot of every subject's count, so that a message moved
		// between two subjects of the stream is not missed.
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err != nil {
			return 0, "", err
		}
		var n uint64
		var where []string
		for subj, c := range info.State.Subjects {
			for _, pre := range prefixes {
				if pre == "" || strings.HasPrefix(subj, pre) {
					n += c
					where = append(where, subj+"="+strconv.FormatUint(c, 10))
					break
				}
			}
		}
		sort.Strings(where)
		return n, strings.Join(where, " "), nil
	}
	for _, c := range []struct {
		what, stream string
		prefixes     []string
	}{
		{"events not yet routed", streams.EventsStream, []string{""}},
		{"deliveries ready or waiting for their due time", streams.DeliveriesStream, []string{streams.DeliverPrefix, streams.DelayPrefix}},
		{"outcomes not yet recorded", streams.ResultsStream, []string{""}},
	} {
		n, where, err := count(c.stream, c.prefixes...)
		if err != nil {
			return fmt.Errorf("%s: %w", c.stream, err)
		}
		if n != 0 {
			return fmt.Errorf("%d %s: %s", n, c.what, where)
		}
	}
	return nil
}

// waitIdle waits until the pipeline has nothing in hand (see inHand): what
// a sink has received by then is all it will receive for what was given.
// Operational events go the other way (the recorder publishes them to the
// events stream before it acks the outcome that caused them), so one found
// between the check of the events and that of the results is found by a
// second check: the pipeline is idle when two checks in a row say so.
func (p *pipeline) waitIdle(timeout time.Duration) {
	p.t.Helper()
	hermodtest.CheckFor(p.t, timeout, 20*time.Millisecond, func() error {
		if err := p.inHand(); err != nil {
			return err
		}
		// The operational events' watcher works beside the recorder: a
		// batch it still holds may yet publish an event.
		if v := metricValue(p.metrics(), "hermod_ops_events_queued"); v != 0 {
			return fmt.Errorf("%v recorded batches wait for the operational events' watcher", v)
		}
		return p.inHand()
	})
}

// consumer returns the info of a durable consumer of the deliveries stream.
func (p *pipeline) consumer(name string) *jetstream.ConsumerInfo {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.jetStream().Consumer(ctx, streams.DeliveriesStream, name)
	if err != nil {
		p.t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		p.t.Fatalf("consumer %s: %v", name, err)
	}
	return info
}

// sinkGot says whether s has received at least n requests.
func sinkGot(s *hermodtest.Sink, n int) error {
	if got := s.Count(); got < n {
		return fmt.Errorf("sink got %d of %d requests", got, n)
	}
	return nil
}

// sinkGotExactly says whether s has received exactly n requests.
func sinkGotExactly(s *hermodtest.Sink, n int) error {
	if got := s.Count(); got != n {
		return fmt.Errorf("sink got %d requests, want %d", got, n)
	}
	return nil
}

// metricValue is the value of one series of the /metrics text (0 when absent).
func metricValue(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}

// metrics returns the /metrics text.
func (p *pipeline) metrics() string {
	p.t.Helper()
	code, body := p.doKey("GET", "/metrics", nil, "")
	if code != 200 {
		p.t.Fatalf("/metrics: %d", code)
	}
	return string(body)
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
