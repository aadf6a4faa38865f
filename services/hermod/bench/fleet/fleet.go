// Package fleet runs Hermod as users run it, every part its own OS process
// on 127.0.0.1: nats-server with JetStream, redis-server, Hermod in one of
// its layouts (hermod-api, hermod-router and hermod-deliverers, or the
// all-in-one bin/hermod), the counting receiver (bench-receiver) and the
// publisher (bench-publisher). The external benchmark and the
// fault-injection suite drive it; it needs `make build` and `make tools`.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Layouts of Hermod.
const (
	LayoutServices = "services"   // hermod-api, hermod-router and hermod-deliverers
	LayoutAllInOne = "all-in-one" // bin/hermod against the same nats-server and redis-server
)

// Roles of the processes.
const (
	RoleNATS      = "nats"
	RoleRedis     = "redis"
	RoleAPI       = "api"
	RoleRouter    = "router"
	RoleDeliverer = "deliverer"
	RoleHermod    = "hermod"
	RoleAgent     = "agent"
	RoleReceiver  = "receiver"
	RolePublisher = "publisher"
)

// HermodBinary is the binary of each Hermod role.
var HermodBinary = map[string]string{RoleAPI: "hermod-api", RoleRouter: "hermod-router",
	RoleDeliverer: "hermod-deliverer", RoleHermod: "hermod", RoleAgent: "hermod-agent"}

// EncryptionKey is HERMOD_ENCRYPTION_KEY of every fleet.
const EncryptionKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// Config says what to run.
type Config struct {
	// Layout is LayoutServices or LayoutAllInOne.
	Layout string
	// Deliverers is the number of hermod-deliverer processes of the
	// services layout (at least 1): the first is named "deliverer", the
	// others "deliverer-2", "deliverer-3"...
	Deliverers int
	// Env is more environment for every Hermod process, over the fleet's.
	Env map[string]string
	// SlowDelay is how long the receiver's /slow/ answers take; 0:
	// $HERMOD_BENCH_SLOW_DELAY, else 2 s.
	SlowDelay time.Duration
	// AuthCallout runs nats-server with deploy/compose/nats.conf (its
	// accounts and the auth callout that enforces each agent's grant),
	// the services as its user hermod, hermod-api as the callout with a
	// system-account connection: what agents (StartAgent) need, as deployed.
	AuthCallout bool
}

// Fleet is one run of the processes. Hermod processes are known by name:
// their role, or "deliverer-N" for the services layout's further
// deliverers.
type Fleet struct {
	TB          testing.TB
	Bins        Binaries
	Layout      string
	Dir         string // JetStream's store and the all-in-one's data
	LogDir      string // every process's output
	NATS        *Proc
	NATSURL     string
	Redis       *hermodtest.Redis
	Receiver    *Proc
	ReceiverURL string
	APIURL      string
	NC          *nats.Conn // the fleet's own connection, to watch streams and indexes
	JS          jetstream.JetStream
	HC          *http.Client
	natsPort    int
	natsArgs    []string                     // nats-server's options beyond port and store
	natsEnv     map[string]string            // nats-server's environment (nats.conf's variables)
	natsAuth    string                       // "user:password@" of the services' connections, or ""
	procEnv     map[string]map[string]string // more environment of one Hermod process, by name
	env         map[string]string            // the environment every Hermod process shares (roleEnv adds)
	hermod      map[string]*Proc             // by name
	addr        map[string]string            // each Hermod process's API or ops address, by name
}

// Start starts a fleet: nats-server, redis-server (AOF, fsync every
// second, as deployed), the receiver, then Hermod's processes, each
// waited for until its /readyz answers 200. Everything stops when tb ends.
func Start(tb testing.TB, bins Binaries, cfg Config) *Fleet {
	tb.Helper()
	if cfg.Layout != LayoutServices && cfg.Layout != LayoutAllInOne {
		tb.Fatalf("unknown layout %q (%s, %s)", cfg.Layout, LayoutServices, LayoutAllInOne)
	}
	f := &Fleet{TB: tb, Bins: bins, Layout: cfg.Layout, Dir: tb.TempDir(), LogDir: logDir(tb), hermod: map[string]*Proc{},
		addr: map[string]string{}, procEnv: map[string]map[string]string{},
		HC: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	tb.Cleanup(f.HC.CloseIdleConnections)
	port, err := hermodtest.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	f.natsPort, f.NATSURL = port, "nats://127.0.0.1:"+strconv.Itoa(port)
	var calloutEnv map[string]string
	if cfg.AuthCallout {
		calloutEnv = f.authCallout()
	}
	f.StartNATS()
	f.Redis = hermodtest.StartRedisWith(tb, "--appendfsync", "everysec")
	slow := cfg.SlowDelay
	if slow == 0 {
		slow = EnvDuration(tb, "HERMOD_BENCH_SLOW_DELAY", 2*time.Second)
	}
	f.startReceiver(slow)
	f.env = merge(map[string]string{
		"HERMOD_NATS_URL": f.servicesURL(), "HERMOD_REDIS_URL": f.Redis.URL(),
		"HERMOD_LOG_LEVEL": EnvOr("HERMOD_BENCH_LOG_LEVEL", "info"), "HERMOD_SHUTDOWN_TIMEOUT": "10s",
	}, cfg.Env)
	names := []string{RoleAPI, RoleRouter, RoleDeliverer}
	for i := 2; i <= cfg.Deliverers; i++ {
		names = append(names, RoleDeliverer+"-"+strconv.Itoa(i))
	}
	api := RoleAPI
	if cfg.Layout == LayoutAllInOne {
		names, api = []string{RoleHermod}, RoleHermod
	}
	if cfg.AuthCallout {
		f.procEnv[api] = calloutEnv
	}
	for _, name := range names {
		f.StartHermod(name)
	}
	f.APIURL = "http://" + f.addr[api]
	return f
}

// StartNATS starts nats-server again after it stopped, on the same port
// and store.
func (f *Fleet) StartNATS() {
	f.TB.Helper()
	dir := filepath.Join(f.Dir, "jetstream")
	f.NATS = StartProc(f.TB, RoleNATS, f.Bins.NATSServer, append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(f.natsPort),
		"-js", "-sd", dir, "--server_name", "fleet"}, f.natsArgs...), f.natsEnv, f.LogDir)
	hermodtest.CheckFor(f.TB, 60*time.Second, 20*time.Millisecond, func() error {
		if f.NATS.Exited() {
			f.TB.Fatalf("nats-server exited at start:\n%s", f.NATS.Tail(2000))
		}
		if f.NC != nil { // a restart: the fleet's connection reconnects by itself
			if !f.NC.IsConnected() {
				return fmt.Errorf("not reconnected to nats-server yet")
			}
			_, err := f.JS.AccountInfo(context.Background())
			return err
		}
		nc, err := nats.Connect(f.servicesURL(), nats.Name("fleet"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("nats-server not ready: %w", err)
		}
		js, err := jetstream.New(nc)
		if err == nil {
			_, err = js.AccountInfo(context.Background())
		}
		if err != nil {
			nc.Close()
			return fmt.Errorf("JetStream not ready: %w", err)
		}
		f.NC, f.JS = nc, js
		f.TB.Cleanup(nc.Close)
		return nil
	})
}

func (f *Fleet) startReceiver(slow time.Duration) {
	port, err := hermodtest.FreePort()
	if err != nil {
		f.TB.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	f.Receiver = StartProc(f.TB, RoleReceiver, f.Bins.Receiver, []string{"-addr", addr, "-slow", slow.String()}, nil, f.LogDir)
	f.ReceiverURL = "http://" + addr
	f.WaitReady(f.Receiver, f.ReceiverURL+"/counts")
}

// RoleOf is the role of the Hermod process name ("deliverer-2" is a
// deliverer).
func RoleOf(name string) string {
	role, _, _ := strings.Cut(name, "-")
	return role
}

// StartHermod starts the Hermod process name (again on its earlier
// address after it stopped) and waits until its /readyz answers 200.
func (f *Fleet) StartHermod(name string) {
	f.TB.Helper()
	role := RoleOf(name)
	if HermodBinary[role] == "" {
		f.TB.Fatalf("no Hermod role %q", role)
	}
	addr := f.addr[name]
	if addr == "" {
		port, err := hermodtest.FreePort()
		if err != nil {
			f.TB.Fatal(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
		f.addr[name] = addr
	}
	env := merge(f.env, f.roleEnv(role), f.procEnv[name])
	if role == RoleAPI || role == RoleHermod {
		env["HERMOD_API_ADDR"] = addr
	} else {
		env["HERMOD_OPS_ADDR"] = addr
	}
	f.hermod[name] = StartProc(f.TB, name, filepath.Join(f.Bins.Bin, HermodBinary[role]), nil, env, f.LogDir)
	f.WaitReady(f.hermod[name], "http://"+addr+"/readyz")
}

// authCallout prepares nats-server to run with deploy/compose/nats.conf:
// passwords for its users hermod and sys, and a callout key made by
// `hermod-api callout-key`. It returns hermod-api's callout environment.
func (f *Fleet) authCallout() map[string]string {
	f.TB.Helper()
	root, err := hermodtest.RepoRoot()
	if err != nil {
		f.TB.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(f.Bins.Bin, HermodBinary[RoleAPI]), "callout-key").Output()
	if err != nil {
		f.TB.Fatalf("hermod-api callout-key: %v", err)
	}
	keys := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = v
		}
	}
	if keys["HERMOD_AUTH_CALLOUT_SEED"] == "" || keys["NATS_CALLOUT_ISSUER"] == "" {
		f.TB.Fatalf("hermod-api callout-key printed %q", out)
	}
	const hermodPW, sysPW = "fleet-hermod-pw", "fleet-system-pw"
	f.natsArgs = []string{"-c", filepath.Join(root, "deploy", "compose", "nats.conf")}
	f.natsEnv = map[string]string{"NATS_HERMOD_PASSWORD": hermodPW, "NATS_SYSTEM_PASSWORD": sysPW,
		"NATS_CALLOUT_ISSUER": keys["NATS_CALLOUT_ISSUER"]}
	f.natsAuth = "hermod:" + hermodPW + "@"
	return map[string]string{"HERMOD_AUTH_CALLOUT_SEED": keys["HERMOD_AUTH_CALLOUT_SEED"],
		"HERMOD_NATS_SYSTEM_URL": "nats://sys:" + sysPW + "@127.0.0.1:" + strconv.Itoa(f.natsPort)}
}

// servicesURL is the NATS URL of Hermod's services and the fleet's own
// connection (with the services' user under AuthCallout); agents connect
// to NATSURL with their own credentials.
func (f *Fleet) servicesURL() string {
	return "nats://" + f.natsAuth + strings.TrimPrefix(f.NATSURL, "nats://")
}

// StartAgent starts hermod-agent as the Hermod process name (a name of
// role agent: "agent", "agent-2"...) with the agent id and token that
// POST /api/v1/agents returned, and waits until it is ready. The fleet
// needs AuthCallout. After Kill or Stop, StartHermod(name) starts it again
// with the same credentials.
func (f *Fleet) StartAgent(name, id, token string) {
	f.TB.Helper()
	if RoleOf(name) != RoleAgent {
		f.TB.Fatalf("agent name %q: want agent or agent-N", name)
	}
	f.procEnv[name] = map[string]string{"HERMOD_AGENT_ID": id, "HERMOD_AGENT_TOKEN": token, "HERMOD_NATS_URL": f.NATSURL}
	f.StartHermod(name)
}

// roleEnv is what only some Hermod processes need (docs/configuration.md):
// the router needs neither keys nor the SSRF allowance.
func (f *Fleet) roleEnv(role string) map[string]string {
	admin := map[string]string{"HERMOD_ADMIN_KEYS": AdminKey}
	sealed := map[string]string{"HERMOD_ENCRYPTION_KEY": EncryptionKey, "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	switch role {
	case RoleAPI: // its test endpoint delivers too
		return merge(admin, sealed)
	case RoleDeliverer:
		return sealed
	case RoleHermod:
		return merge(admin, sealed, map[string]string{"HERMOD_DATA_DIR": filepath.Join(f.Dir, "data")})
	}
	return nil
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Hermod is the running (or last started) Hermod process name, nil if
// none was started; Kill, Stop or signal it, then StartHermod again.
func (f *Fleet) Hermod(name string) *Proc { return f.hermod[name] }

// HermodNames are the names of the running Hermod processes, sorted.
func (f *Fleet) HermodNames() []string {
	var names []string
	for name, p := range f.hermod {
		if !p.Exited() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Addr is the API or ops address (host:port) of the Hermod process name.
func (f *Fleet) Addr(name string) string { return f.addr[name] }

// StopHermod stops the Hermod process name (SIGTERM) and waits until it
// exited.
func (f *Fleet) StopHermod(name string) {
	f.hermod[name].Stop(30 * time.Second)
	delete(f.hermod, name)
}

// DeliveringRole is the process that delivers in this layout (the first
// deliverer's name).
func (f *Fleet) DeliveringRole() string {
	if f.Layout == LayoutAllInOne {
		return RoleHermod
	}
	return RoleDeliverer
}

// WaitReady waits until url answers 200, failing at once if p exits.
func (f *Fleet) WaitReady(p *Proc, url string) {
	f.TB.Helper()
	hermodtest.CheckFor(f.TB, 60*time.Second, 25*time.Millisecond, func() error {
		if p.Exited() {
			f.TB.Fatalf("%s exited at start:\n%s", p.Name, p.Tail(3000))
		}
		resp, err := f.HC.Get(url)
		if err != nil {
			return fmt.Errorf("%s not ready: %w", p.Name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s not ready: %s %d", p.Name, url, resp.StatusCode)
		}
		return nil
	})
}

// CPU is the CPU time used so far by every running process of the fleet,
// by role (Hermod processes by name).
func (f *Fleet) CPU() map[string]time.Duration {
	pids := map[string]int{RoleNATS: f.NATS.PID(), RoleRedis: f.Redis.PID(), RoleReceiver: f.Receiver.PID()}
	for name, p := range f.hermod {
		pids[name] = p.PID()
	}
	out := map[string]time.Duration{}
	for role, pid := range pids {
		d, err := ProcessCPU(pid)
		if err != nil {
			f.TB.Fatalf("CPU of %s: %v", role, err)
		}
		out[role] = d
	}
	return out
}

// Counts asks the receiver what arrived so far, by path prefix (cheap).
func (f *Fleet) Counts() (map[string]receiver.Counts, error) {
	var c map[string]receiver.Counts
	return c, f.GetJSON(f.ReceiverURL+"/counts", &c)
}

// PathCounts asks the receiver what arrived so far, by whole path: one
// webhook's deliveries when every webhook has its own URL.
func (f *Fleet) PathCounts() (map[string]receiver.Counts, error) {
	var c map[string]receiver.Counts
	return c, f.GetJSON(f.ReceiverURL+"/paths", &c)
}

// Inflight asks the receiver how many requests each path prefix has open
// now, and had at most since it started: with one webhook per prefix, the
// most attempts Hermod had in flight to that webhook.
func (f *Fleet) Inflight() (map[string]receiver.Concurrency, error) {
	var c map[string]receiver.Concurrency
	return c, f.GetJSON(f.ReceiverURL+"/inflight", &c)
}

// Stats is Counts with the latencies.
func (f *Fleet) Stats() map[string]receiver.Stats {
	var s map[string]receiver.Stats
	if err := f.GetJSON(f.ReceiverURL+"/stats", &s); err != nil {
		f.TB.Fatal(err)
	}
	return s
}

// GetJSON decodes the 200 answer of GET url into v.
func (f *Fleet) GetJSON(url string, v any) error { return GetJSON(f.HC, url, v) }

// GetJSON decodes the 200 answer of GET url, asked with hc, into v.
func GetJSON(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// StreamMsgs is the number of messages stream holds now.
func (f *Fleet) StreamMsgs(stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := f.JS.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// AwaitEmpty waits until stream holds no message (a work-queue stream is
// empty once its consumer acknowledged everything).
func (f *Fleet) AwaitEmpty(stream string, timeout time.Duration) error {
	return f.AwaitMsgs(stream, 0, timeout)
}

// AwaitMsgs waits until stream holds exactly n messages.
func (f *Fleet) AwaitMsgs(stream string, n uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := f.StreamMsgs(stream)
		if err == nil && got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s holds %d messages, not %d, after %s (%v)", stream, got, n, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HookURLs are n webhook URLs at the receiver's prefix for scenario:
// prefix/scenario/0, prefix/scenario/1...
func (f *Fleet) HookURLs(prefix, scenario string, n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = f.ReceiverURL + "/" + prefix + "/" + scenario + "/" + strconv.Itoa(i)
	}
	return urls
}

// CreateHooks creates a webhook per url for eventType through the API and
// waits until every webhook index (router, deliverers, API) has applied
// them. It returns their ids, in the order of urls.
func (f *Fleet) CreateHooks(urls []string, eventType string) []string {
	f.TB.Helper()
	w := WatchIndexes(f.TB, f.NC)
	ids := CreateWebhooks(f.TB, f.HC, f.APIURL, urls, eventType)
	w.Settle()
	return ids
}

// logDir is where the processes' output goes: a temporary directory, or
// one per test under $HERMOD_BENCH_LOG_DIR, kept.
func logDir(tb testing.TB) string {
	root := os.Getenv("HERMOD_BENCH_LOG_DIR")
	if root == "" {
		return tb.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(tb.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// EnvOr is the environment variable name, or def when it is unset.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// EnvDuration is the duration in the environment variable name, or def
// when it is unset; anything else than a duration fails tb.
func EnvDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		tb.Fatalf("%s=%q: want a duration such as 2s", name, v)
	}
	return d
}
