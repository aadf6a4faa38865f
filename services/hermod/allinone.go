// Package allinone runs the whole pipeline in one process for development:
// embedded JetStream with its file store, a Redis whose data lives beside it,
// keys generated on first start, and the api, router, recorder and deliverer
// sharing one connection.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/services/api"
	"github.com/hermodhq/hermod/services/deliverer"
	"github.com/hermodhq/hermod/services/router"
	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/connect"
	"github.com/hermodhq/hermod/shared/encryption"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/lifecycle"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
)

// LoopbackCIDRs is the all-in-one's default delivery allow-list.
const LoopbackCIDRs = "127.0.0.0/8,::1/128"

// Config is the all-in-one's configuration.
type Config struct {
	envconfig.Common
	DataDir       string
	APIAddr       string
	NATSListen    string
	AdminKeys     []string
	EncryptionKey string
	AllowCIDRs    string
	Concurrency   int
	RouterWorkers int
	Isolation     envconfig.Isolation
	// RedisServer is the redis-server found on PATH ("" = none: the
	// embedded store is used when HERMOD_REDIS_URL is unset too).
	RedisServer string
	// CalloutSeed is the auth callout issuer of the embedded NATS when it
	// listens for agents (HERMOD_NATS_LISTEN); generated at each start when
	// unset.
	CalloutSeed string
	// SessionTTL and SecureCookies configure the Webhooks page (api.ReadWeb).
	SessionTTL    time.Duration
	SecureCookies bool
	// ReplayRate is HERMOD_REPLAY_RATE (api.ReadReplayRate).
	ReplayRate int
}

// LoadConfig reads the configuration from the environment.
func LoadConfig(r *envconfig.Reader) (Config, error) {
	c := Config{Common: envconfig.ReadCommon(r, false)}
	c.DataDir = r.String("HERMOD_DATA_DIR", "./data")
	c.APIAddr = r.String("HERMOD_API_ADDR", ":8080")
	c.NATSListen = r.String("HERMOD_NATS_LISTEN", "")
	if c.NATSListen != "" {
		_, _, err := net.SplitHostPort(c.NATSListen)
		r.Check(err == nil, "HERMOD_NATS_LISTEN", "must be host:port")
	}
	c.AdminKeys = api.ParseAdminKeys(r, r.Secret("HERMOD_ADMIN_KEYS", ""))
	c.SessionTTL, c.SecureCookies = api.ReadWeb(r)
	c.ReplayRate = api.ReadReplayRate(r)
	c.EncryptionKey = r.Secret("HERMOD_ENCRYPTION_KEY", "")
	if c.EncryptionKey != "" {
		_, err := encryption.ParseKey(c.EncryptionKey)
		r.Check(err == nil, "HERMOD_ENCRYPTION_KEY", "must be 64 hex characters")
	}
	c.AllowCIDRs, _ = envconfig.AllowCIDRs(r, LoopbackCIDRs)
	c.Concurrency = r.Int("HERMOD_DELIVERY_CONCURRENCY", 64, 1, 10000)
	c.RouterWorkers = r.Int("HERMOD_ROUTER_WORKERS", 32, 1, 256)
	c.Isolation = envconfig.ReadIsolation(r)
	c.CalloutSeed = r.Secret("HERMOD_AUTH_CALLOUT_SEED", "")
	r.Check(c.CalloutSeed == "" || strings.HasPrefix(c.CalloutSeed, "SA"), "HERMOD_AUTH_CALLOUT_SEED", "must be an account seed (SA...)")
	if bin, err := exec.LookPath("redis-server"); err == nil {
		c.RedisServer = bin
	}
	return c, r.Err()
}

// keyFile returns the value in dir/name, creating it with gen on first use.
func keyFile(dir, name string, gen func() (string, error)) (string, bool, error) {
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read %s: %w", p, err)
	}
	v, err := gen()
	if err != nil {
		return "", false, err
	}
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", p, err)
	}
	return v, true, nil
}

func genAdminKey() (string, error) {
	k, err := encryption.GenerateKey()
	if err != nil {
		return "", err
	}
	return "hermod_" + k[:40], nil
}

// Main runs the all-in-one until ctx ends. out receives the banner. It is
// long because it lists, in order, every part the all-in-one composes (the
// same parts the separate binaries build); each part is built elsewhere.
func Main(ctx context.Context, cfg Config, log zerolog.Logger, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("HERMOD_DATA_DIR: %w", err)
	}
	cfg, box, generatedKey, err := dataDirKeys(cfg)
	if err != nil {
		return err
	}
	nb, err := openNATS(cfg, log)
	if err != nil {
		return err
	}
	defer nb.close()
	nc, ns, calloutSeed := nb.nc, nb.ns, nb.calloutSeed
	redisURL, stopRedis, err := openRedis(cfg, log)
	if err != nil {
		return err
	}
	defer stopRedis()
	common := cfg.Common
	common.RedisURL = redisURL
	c, err := connect.Open(ctx, "hermod", common, box, nc, log)
	if err != nil {
		return err
	}
	defer func() { _ = c.Redis.Close() }() // nc is closed above
	st, js := c.Store, c.JS

	m := metrics.New("hermod")
	health := ops.NewHealth(c.Checks(), log)
	// The same components the separate binaries run, on one connection and
	// one webhook index.
	ix := index.New(st, nc, log, index.Options{})
	allow := cfg.AllowCIDRs
	dl, err := deliverer.Build(js, ix, deliverer.Config{Common: cfg.Common, Concurrency: cfg.Concurrency,
		AllowCIDRs: allow, Isolation: cfg.Isolation},
		log.With().Str("component", "deliverer").Logger(), m)
	if err != nil {
		return err
	}
	defer dl.Close()
	rt := router.Build(c, ix, router.Config{Common: cfg.Common, Workers: cfg.RouterWorkers},
		log.With().Str("component", "router").Logger(), m)
	apiCfg := api.Config{Common: cfg.Common, Addr: cfg.APIAddr, AdminKeys: cfg.AdminKeys,
		AllowCIDRs: allow, Box: box, SessionTTL: cfg.SessionTTL, SecureCookies: cfg.SecureCookies,
		ReplayRate: cfg.ReplayRate}
	apiParts, err := api.BuildParts(apiCfg, c, health, m, log.With().Str("component", "api").Logger())
	if err != nil {
		return err
	}
	defer apiParts.Close()
	apiParts.ExpectIndex(ix.ID())
	if calloutSeed != "" {
		if err := apiParts.ServeCallout(calloutSeed, ""); err != nil {
			return err
		}
		// Grant changes and revocations kick the agent's connections at
		// once; the embedded server does it without a system account.
		apiParts.ServeKicks(embeddedKick(ns))
	}
	if allow == "" || allow == "none" {
		log.Info().Msg("deliveries to loopback and private addresses are refused (HERMOD_DELIVERY_ALLOW_CIDRS=none)")
	} else {
		log.Warn().Str("allow", allow).Msg("development mode: deliveries may reach these addresses (HERMOD_DELIVERY_ALLOW_CIDRS)")
	}
	// The same components the separate binaries run.
	comps := append([]lifecycle.Component{ix.Component()}, apiParts.Components()...)
	comps = append(comps, rt.Components()...)
	comps = append(comps, dl.Components()...)
	printBanner(out, apiParts.Addr().String(), cfg.AdminKeys[0], generatedKey, cfg.DataDir)
	return lifecycle.Run(ctx, log, cfg.ShutdownTimeout, health, comps...)
}

// dataDirKeys fills in the admin key and the encryption key from the data
// dir (generated there on first start) when the environment gives none.
func dataDirKeys(cfg Config) (Config, *encryption.Box, bool, error) {
	generated := false
	if len(cfg.AdminKeys) == 0 {
		k, created, err := keyFile(cfg.DataDir, "admin_key", genAdminKey)
		if err != nil {
			return cfg, nil, false, err
		}
		cfg.AdminKeys, generated = []string{k}, created
	}
	if cfg.EncryptionKey == "" {
		k, _, err := keyFile(cfg.DataDir, "encryption_key", encryption.GenerateKey)
		if err != nil {
			return cfg, nil, false, err
		}
		cfg.EncryptionKey = k
	}
	rawKey, err := encryption.ParseKey(cfg.EncryptionKey)
	if err != nil {
		return cfg, nil, false, fmt.Errorf("encryption key in %s: %w", cfg.DataDir, err)
	}
	box, err := encryption.New(rawKey)
	return cfg, box, generated, err
}

// natsBackend is the all-in-one's NATS: HERMOD_NATS_URL's, or an embedded
// server (ns) with its JetStream store in the data dir.
type natsBackend struct {
	nc          *nats.Conn
	ns          *server.Server
	calloutSeed string // set when the embedded NATS sends agents to the callout
}

func (b *natsBackend) close() {
	b.nc.Close()
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
}

// openNATS connects to HERMOD_NATS_URL, or starts the embedded server.
func openNATS(cfg Config, log zerolog.Logger) (*natsBackend, error) {
	if cfg.NATSURL != "" {
		nc, err := connect.NATS(cfg.NATSURL, "hermod")
		if err != nil {
			return nil, err
		}
		log.Info().Str("nats", envconfig.MaskURL(cfg.NATSURL)).Msg("using external NATS")
		return &natsBackend{nc: nc}, nil
	}
	token, err := encryption.GenerateKey()
	if err != nil {
		return nil, err
	}
	// Listening for agents, the embedded NATS hands every connection but
	// the all-in-one's own user to the auth callout (the agents' grants, as
	// with hermod-api): see docs/agents.md.
	b := &natsBackend{}
	var auth *natsAuth
	if cfg.NATSListen != "" {
		if auth, err = newNATSAuth(cfg); err != nil {
			return nil, err
		}
		b.calloutSeed = auth.seed
	}
	if b.ns, err = startNATS(cfg, token, auth); err != nil {
		return nil, err
	}
	// The pipeline connects over loopback TCP, not an in-process pipe: under
	// load the synchronous pipe stalled deliveries for 1-2 s
	// (docs/benchmarks.md). Without HERMOD_NATS_LISTEN the port is a random
	// one on 127.0.0.1 guarded by a token generated per start.
	opts := []nats.Option{nats.Token(token)}
	if auth != nil {
		opts = []nats.Option{nats.UserInfo(natsServiceUser, auth.password)}
	}
	if b.nc, err = connect.NATS(b.ns.ClientURL(), "hermod", opts...); err != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
		return nil, err
	}
	where := "loopback only (random port, token per start)"
	if cfg.NATSListen != "" {
		where = "listening for agents on " + cfg.NATSListen + " (auth callout; other clients: user " + natsServiceUser +
			", password in " + filepath.Join(cfg.DataDir, natsPasswordFile) + ")"
	}
	log.Info().Str("store", filepath.Join(cfg.DataDir, "jetstream")).Str("nats", where).Msg("embedded JetStream")
	return b, nil
}

// openRedis is HERMOD_REDIS_URL, or a redis-server from PATH with its data
// in the data dir, or else the embedded Redis-protocol store; stop stops
// what it started.
func openRedis(cfg Config, log zerolog.Logger) (url string, stop func(), err error) {
	switch {
	case cfg.RedisURL == "" && cfg.RedisServer != "":
		rs, err := startRedis(cfg.RedisServer, filepath.Join(cfg.DataDir, "redis"))
		if err != nil {
			return "", nil, err
		}
		log.Info().Str("redis", rs.url).Str("data", rs.dir).Msg("started redis-server from PATH (append-only file in the data dir)")
		return rs.url, rs.stop, nil
	case cfg.RedisURL == "":
		er, err := startEmbeddedRedis(filepath.Join(cfg.DataDir, "redis"), log)
		if err != nil {
			return "", nil, err
		}
		log.Info().Str("redis", er.url()).Str("data", er.path).
			Msg("no redis-server on PATH: using the embedded Redis-protocol store (snapshot every second; for development)")
		return er.url(), er.close, nil
	}
	log.Info().Str("redis", envconfig.MaskURL(cfg.RedisURL)).Msg("using external Redis")
	return cfg.RedisURL, func() {}, nil
}

// natsServiceUser is the all-in-one's own user on its embedded NATS when it
// listens for agents (exempt from the auth callout); its password is kept in
// natsPasswordFile in the data dir, for other local clients (benchmarks).
const (
	natsServiceUser  = "hermod"
	natsPasswordFile = "nats_password"
)

// natsAuth is the embedded NATS's authorization when it listens for agents.
type natsAuth struct {
	password string // of natsServiceUser
	seed     string // the callout issuer's account seed
	issuer   string // its public key
}

func newNATSAuth(cfg Config) (*natsAuth, error) {
	pw, _, err := keyFile(cfg.DataDir, natsPasswordFile, encryption.GenerateKey)
	if err != nil {
		return nil, err
	}
	a := &natsAuth{password: pw, seed: cfg.CalloutSeed}
	if a.seed == "" {
		// The issuer only links the embedded server to the callout in this
		// process: a new one at each start is enough.
		if a.seed, a.issuer, err = agentauth.NewIssuerKey(); err != nil {
			return nil, err
		}
	} else if a.issuer, err = agentauth.IssuerOf(a.seed); err != nil {
		return nil, fmt.Errorf("HERMOD_AUTH_CALLOUT_SEED: %w", err)
	}
	return a, nil
}

// embeddedKick closes an agent's connections on the embedded server.
func embeddedKick(ns *server.Server) agentauth.KickFunc {
	return func(_ context.Context, agentID string) (int, error) {
		cz, err := ns.Connz(&server.ConnzOptions{Username: true, User: agentauth.UserName(agentID), Limit: 1024})
		if err != nil {
			return 0, fmt.Errorf("connz: %w", err)
		}
		n := 0
		for _, c := range cz.Conns {
			if ns.DisconnectClientByID(c.Cid) == nil {
				n++
			}
		}
		return n, nil
	}
}

func startNATS(cfg Config, token string, auth *natsAuth) (*server.Server, error) {
	opts := &server.Options{ServerName: "hermod", JetStream: true, StoreDir: filepath.Join(cfg.DataDir, "jetstream"),
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20}
	if cfg.NATSListen != "" {
		host, port, _ := net.SplitHostPort(cfg.NATSListen)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("HERMOD_NATS_LISTEN: %w", err)
		}
		opts.Host, opts.Port = host, p
		if auth != nil {
			opts.Users = []*server.User{{Username: natsServiceUser, Password: auth.password}}
			opts.AuthCallout = &server.AuthCallout{Issuer: auth.issuer, AuthUsers: []string{natsServiceUser}}
		}
	} else {
		opts.Host, opts.Port, opts.Authorization = "127.0.0.1", -1, token
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start")
	}
	return ns, nil
}

type redisProc struct {
	cmd *exec.Cmd
	url string
	dir string
}

func startRedis(bin, dir string) (*redisProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	rp := &redisProc{cmd: cmd, url: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", dir: dir}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
		err := c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return rp, nil
		}
		if time.Now().After(deadline) {
			rp.stop()
			return nil, fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *redisProc) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM) // flushes the append-only file
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

func printBanner(out io.Writer, addr, key string, generated bool, dataDir string) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, port)
	keyNote := "(from " + filepath.Join(dataDir, "admin_key") + ")"
	if generated {
		keyNote = "(generated now, kept in " + filepath.Join(dataDir, "admin_key") + ")"
	}
	fmt.Fprintf(out, `
Hermod is running: %[1]s
Admin key %[3]s:
  %[2]s

The Webhooks page: open %[1]s/ in a browser and sign in with the admin key.

Receive deliveries: in a second terminal, in this directory, run a local
receiver that creates a webhook pointing at itself and checks each
delivery's signature with that webhook's secret:
  export HERMODCTL_SERVER=%[1]s HERMODCTL_API_KEY=%[2]s
  bin/hermodctl listen --create --events 'deployment.*'

Send an event (the receiver prints it, verified):
  curl -s -X POST %[1]s/api/v1/events -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"event_type":"deployment.applied","data":{"deployment_id":"d-1"}}'
or, with the same exports: bin/hermodctl events send deployment.applied --data '{"deployment_id":"d-1"}'

See the webhooks and their deliveries:
  curl -s %[1]s/api/v1/webhooks -H 'Authorization: Bearer %[2]s'

`, base, key, keyNote)
}
