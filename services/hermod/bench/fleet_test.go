package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Layouts of Hermod in the external benchmark.
const (
	layoutServices = "services"   // hermod-api, hermod-router and one hermod-deliverer
	layoutAllInOne = "all-in-one" // bin/hermod against the same nats-server and redis-server
)

// Roles of the processes, the columns of the CPU table.
const (
	roleNATS      = "nats"
	roleRedis     = "redis"
	roleAPI       = "api"
	roleRouter    = "router"
	roleDeliverer = "deliverer"
	roleHermod    = "hermod"
	roleReceiver  = "receiver"
	rolePublisher = "publisher"
)

// hermodBinary is the binary of each Hermod role.
var hermodBinary = map[string]string{roleAPI: "hermod-api", roleRouter: "hermod-router",
	roleDeliverer: "hermod-deliverer", roleHermod: "hermod"}

const encryptionKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// fleet is one run of the external benchmark's processes, every one on
// 127.0.0.1: nats-server with JetStream, redis-server, Hermod in one
// layout, and the receiver. The benchmark itself only creates webhooks
// through the API, runs the publisher and watches.
type fleet struct {
	b       *testing.B
	bins    binaries
	layout  string
	dir     string // JetStream's store and the all-in-one's data
	logDir  string // every process's output
	nats    *proc
	natsURL string
	redis   *hermodtest.Redis
	recv    *proc
	recvURL string
	hermod  map[string]*proc  // by role
	addr    map[string]string // each Hermod role's API or ops address
	apiURL  string
	env     map[string]string // the environment every Hermod process shares (roleEnv adds)
	nc      *nats.Conn        // the benchmark's own connection, to watch streams and indexes
	js      jetstream.JetStream
	hc      *http.Client
}

func startFleet(b *testing.B, bins binaries, layout string) *fleet {
	b.Helper()
	f := &fleet{b: b, bins: bins, layout: layout, dir: b.TempDir(), logDir: logDir(b), hermod: map[string]*proc{}, addr: map[string]string{},
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	b.Cleanup(f.hc.CloseIdleConnections)
	f.startNATS()
	// AOF with fsync every second, as deployed (deploy/compose).
	f.redis = hermodtest.StartRedisWith(b, "--appendfsync", "everysec")
	f.startReceiver()
	f.env = map[string]string{
		"HERMOD_NATS_URL": f.natsURL, "HERMOD_REDIS_URL": f.redis.URL(),
		"HERMOD_LOG_LEVEL": envOr("HERMOD_BENCH_LOG_LEVEL", "info"), "HERMOD_SHUTDOWN_TIMEOUT": "10s",
	}
	roles := []string{roleAPI, roleRouter, roleDeliverer}
	if layout == layoutAllInOne {
		roles = []string{roleHermod}
	}
	for _, role := range roles {
		f.startHermod(role)
	}
	api := roleAPI
	if layout == layoutAllInOne {
		api = roleHermod
	}
	f.apiURL = "http://" + f.addr[api]
	return f
}

func (f *fleet) startNATS() {
	port, err := hermodtest.FreePort()
	if err != nil {
		f.b.Fatal(err)
	}
	dir := filepath.Join(f.dir, "jetstream")
	f.nats = startProc(f.b, roleNATS, f.bins.natsServer,
		[]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dir, "--server_name", "bench"}, nil, f.logDir)
	f.natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	hermodtest.CheckFor(f.b, 30*time.Second, 20*time.Millisecond, func() error {
		if f.nats.exited() {
			f.b.Fatalf("nats-server exited at start:\n%s", f.nats.tail(2000))
		}
		nc, err := nats.Connect(f.natsURL, nats.Name("bench"))
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
		f.nc, f.js = nc, js
		return nil
	})
	f.b.Cleanup(f.nc.Close)
}

func (f *fleet) startReceiver() {
	port, err := hermodtest.FreePort()
	if err != nil {
		f.b.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	f.recv = startProc(f.b, roleReceiver, f.bins.receiver,
		[]string{"-addr", addr, "-slow", envDuration(f.b, "HERMOD_BENCH_SLOW_DELAY", 2*time.Second).String()}, nil, f.logDir)
	f.recvURL = "http://" + addr
	f.waitReady(f.recv, f.recvURL+"/counts")
}

// startHermod starts the Hermod process of role (again on its earlier
// address after stopHermod) and waits until its /readyz answers 200.
func (f *fleet) startHermod(role string) {
	addr := f.addr[role]
	if addr == "" {
		port, err := hermodtest.FreePort()
		if err != nil {
			f.b.Fatal(err)
		}
		addr = "127.0.0.1:" + strconv.Itoa(port)
		f.addr[role] = addr
	}
	env := merge(f.env, f.roleEnv(role))
	if role == roleAPI || role == roleHermod {
		env["HERMOD_API_ADDR"] = addr
	} else {
		env["HERMOD_OPS_ADDR"] = addr
	}
	f.hermod[role] = startProc(f.b, role, filepath.Join(f.bins.bin, hermodBinary[role]), nil, env, f.logDir)
	f.waitReady(f.hermod[role], "http://"+addr+"/readyz")
}

// roleEnv is what only some Hermod processes need (docs/configuration.md):
// the router needs neither keys nor the SSRF allowance.
func (f *fleet) roleEnv(role string) map[string]string {
	admin := map[string]string{"HERMOD_ADMIN_KEYS": adminKey}
	sealed := map[string]string{"HERMOD_ENCRYPTION_KEY": encryptionKey, "HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	switch role {
	case roleAPI: // its test endpoint delivers too
		return merge(admin, sealed)
	case roleDeliverer:
		return sealed
	case roleHermod:
		return merge(admin, sealed, map[string]string{"HERMOD_DATA_DIR": filepath.Join(f.dir, "data")})
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

// stopHermod stops the Hermod process of role and waits until it exited.
func (f *fleet) stopHermod(role string) {
	f.hermod[role].stop(30 * time.Second)
	delete(f.hermod, role)
}

// deliveringRole is the process that delivers in this layout.
func (f *fleet) deliveringRole() string {
	if f.layout == layoutAllInOne {
		return roleHermod
	}
	return roleDeliverer
}

func (f *fleet) waitReady(p *proc, url string) {
	f.b.Helper()
	hermodtest.CheckFor(f.b, 60*time.Second, 25*time.Millisecond, func() error {
		if p.exited() {
			f.b.Fatalf("%s exited at start:\n%s", p.name, p.tail(3000))
		}
		resp, err := f.hc.Get(url)
		if err != nil {
			return fmt.Errorf("%s not ready: %w", p.name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s not ready: %s %d", p.name, url, resp.StatusCode)
		}
		return nil
	})
}

// cpu is the CPU time used so far by every running process of the fleet,
// by role.
func (f *fleet) cpu() map[string]time.Duration {
	pids := map[string]int{roleNATS: f.nats.pid(), roleRedis: f.redis.PID(), roleReceiver: f.recv.pid()}
	for role, p := range f.hermod {
		pids[role] = p.pid()
	}
	out := map[string]time.Duration{}
	for role, pid := range pids {
		d, err := processCPU(pid)
		if err != nil {
			f.b.Fatalf("CPU of %s: %v", role, err)
		}
		out[role] = d
	}
	return out
}

// counts asks the receiver what arrived so far (cheap); stats adds latency.
func (f *fleet) counts() (map[string]receiver.Counts, error) {
	var c map[string]receiver.Counts
	return c, f.getJSON(f.recvURL+"/counts", &c)
}

func (f *fleet) stats() map[string]receiver.Stats {
	var s map[string]receiver.Stats
	if err := f.getJSON(f.recvURL+"/stats", &s); err != nil {
		f.b.Fatal(err)
	}
	return s
}

func (f *fleet) getJSON(url string, v any) error {
	resp, err := f.hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// streamMsgs is the number of messages stream holds now.
func (f *fleet) streamMsgs(stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := f.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// logDir is where the processes' output goes: a temporary directory, or
// one per sub-benchmark under $HERMOD_BENCH_LOG_DIR, kept.
func logDir(b *testing.B) string {
	root := os.Getenv("HERMOD_BENCH_LOG_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(b.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
