package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
)

const (
	testAdminKey = "test-admin-key-0123456789"
	testEncKey   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// lockedBuffer collects the pipeline's log lines for inspection.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pipeline is the all-in-one running in the test process against a real
// embedded JetStream server and a real redis-server.
type pipeline struct {
	t      *testing.T
	NS     *server.Server
	Redis  *hermodtest.Redis
	Base   string
	Logs   *lockedBuffer
	NC     *nats.Conn
	JS     jetstream.JetStream
	cancel func()
	done   chan error
	hc     *http.Client
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
		"HERMOD_LOG_LEVEL": c.LogLevel, "HERMOD_MAX_EVENT_BYTES": strconv.FormatInt(c.MaxEventBytes, 10),
		"HERMOD_DELIVERY_ALLOW_CIDRS": c.AllowCIDRs, "HERMOD_DELIVERY_CONCURRENCY": strconv.Itoa(c.Concurrency),
		"HERMOD_WEBHOOK_MAX_INFLIGHT": strconv.Itoa(c.WebhookInflight), "HERMOD_BREAKER_THRESHOLD": strconv.Itoa(c.Breaker.Threshold),
		"HERMOD_BREAKER_COOLDOWN": c.Breaker.Cooldown.String(), "HERMOD_MAX_HOLD": c.MaxHold.String(),
		"HERMOD_ACQUIRE_TTL": c.AcquireTTL.String(), "HERMOD_RETENTION": c.Retention.String(),
		"HERMOD_HISTORY_LIMIT": strconv.Itoa(c.HistoryLimit), "HERMOD_DEDUP_WINDOW": c.DedupWindow.String(),
		"HERMOD_SESSION_TTL": c.SessionTTL.String(), "HERMOD_COOKIE_SECURE": strconv.FormatBool(c.SecureCookies),
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
	ns := hermodtest.NATS(t)
	rd := hermodtest.StartRedis(t)
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
	logs := &lockedBuffer{}
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.hc.Get(p.Base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("pipeline exited at start: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline not ready\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	hermodtest.Eventually(p.t, timeout, strconv.Itoa(n)+" "+status+" deliveries", func() bool {
		ds = p.deliveries(webhookID, status)
		return len(ds) >= n
	})
	return ds
}

// streamMsgs counts the messages of stream on subject.
func (p *pipeline) streamMsgs(stream, subject string) uint64 {
	p.t.Helper()
	s, err := p.JS.Stream(context.Background(), stream)
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
